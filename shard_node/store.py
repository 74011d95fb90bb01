"""A durable shard: the partition plus its WAL and snapshots; recovery is snapshot + WAL replay."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protos import common_pb2, shard_pb2
from protos.checksum import content_checksum
from protos.errors import FailedPrecondition, InvalidArgument
from protos.wire import check_vectors, pack_matrix, pack_vector, payload_to_proto, payloads_from_proto, unpack_matrix
from shard_node import snapshot
from shard_node.disk import BACKUP, REBUILD, SNAPSHOT, WAL, WRITE_REFUSED, disk_error, fault_kind
from shard_node.partition import MemoryFigures, Partition
from shard_node.rebuild import Rebuilder, RebuildFigures, RebuildObserver, build_partition, respec, tombstone_ratio
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.wal import FsyncObserver, WriteAheadLog

_SPEC_FILE = "spec.json"
_IDENTITY = ("dim", "metric", "storage")  # what a shard's data is; M and ef_construction may change on rebuild
SNAPSHOT_RETRY_S = 30.0  # after a periodic snapshot failed (disk full), writes do not try again sooner
log = logging.getLogger("shoal.shard_node.store")


@dataclass(frozen=True)
class ShardFigures:
    """What a shard reports about itself."""

    live: int
    tombstones: int
    capacity: int
    last_lsn: int
    snapshot_lsn: int
    wal_bytes: int
    documents: int
    slots_used: int
    m: int
    ef_construction: int
    memory_bytes: int
    disk_bytes: int
    rebuild: RebuildFigures
    disk_error: str = ""  # the last disk fault (full, read-only) of a write or snapshot; "" once one succeeds
    storage: str = "float32"
    memory: MemoryFigures = MemoryFigures()
    disk: MemoryFigures = MemoryFigures()  # snapshot files by what they hold (the WAL is wal_bytes)

    @property
    def tombstone_ratio(self) -> float:
        """Deleted share of the documents in the graph."""
        return tombstone_ratio(self.live, self.tombstones)


@dataclass(frozen=True)
class StoreObservers:
    """Callbacks the store reports timings to (the server points them at its metrics)."""

    wal_fsync: FsyncObserver | None = None
    rebuild_end: RebuildObserver | None = None
    disk_error: Callable[[str, str], None] | None = None  # (operation, kind) of each disk fault


@dataclass(frozen=True)
class BackupPoint:
    """A consistent point of a shard for a backup: its files (snapshot + WAL through `lsn`) and content."""

    lsn: int
    entries: int        # live index entries (chunks count one each)
    documents: int      # live documents
    checksum: str       # protos.checksum.content_checksum of the live entries
    files: list[tuple[str, Path]]  # (path relative to the data directory, absolute path)


@dataclass(frozen=True)
class Checksum:
    """A partition's content checksum and live count, both of its state at one LSN."""

    lsn: int
    live: int
    value: str   # protos.checksum.content_checksum


class ShardStore:
    """Applies writes durably (WAL fsync before acknowledging) and recovers them at start-up."""

    def __init__(self, data_dir: Path, spec: PartitionSpec, settings: ShardSettings,
                 observers: StoreObservers = StoreObservers(),  # noqa: B008 - frozen, never mutated
                 where: str = "") -> None:
        self.data_dir = data_dir
        self.where = where or f"shard in {data_dir}"  # how errors name this shard (collection, shard, replica)
        self._observers = observers
        self._disk_error = ""
        self._snapshot_retry_at = 0.0
        self.spec = spec
        self._settings = settings
        self._write_lock = threading.Lock()
        # One snapshot writer at a time: a rebuild holds it from start to swap, periodic snapshots skip meanwhile.
        self._snapshot_lock = threading.Lock()
        self._journal: list[shard_pb2.WalRecord] | None = None  # writes since a running rebuild copied the live set
        self._checksum: Checksum | None = None  # the last one computed (valid while the LSN stays)
        data_dir.mkdir(parents=True, exist_ok=True)
        self._check_spec()
        loaded = snapshot.load_latest(self._snap_dir, settings.search_threads, settings.allowed_cache_mb)
        if loaded is None:
            self.partition = Partition(spec, capacity=settings.initial_capacity,
                                       search_threads=settings.search_threads,
                                       allowed_cache_mb=settings.allowed_cache_mb)
            self._snapshot_lsn = 0
            meta = {}
        else:
            self.partition, meta = loaded
            self._snapshot_lsn = int(meta["lsn"])
        # The last rebuild's time and duration live in every snapshot's meta, so they survive restarts.
        self._rebuild_meta = {"rebuilt_at": float(meta.get("rebuilt_at", 0.0)),
                              "rebuild_seconds": float(meta.get("rebuild_seconds", 0.0))}
        self.rebuilder = Rebuilder(self._rebuild_meta["rebuilt_at"], self._rebuild_meta["rebuild_seconds"],
                                   observers.rebuild_end)
        self._lsn = self._snapshot_lsn
        self._wal = WriteAheadLog(data_dir / "wal", observers.wal_fsync)
        self._ops_since_snapshot = 0
        for record in self._wal.replay(self._snapshot_lsn):
            self._apply(record, self.partition)
            self._ops_since_snapshot += len(record.upsert.ids) + len(record.delete.ids)
            self._lsn = record.lsn
        self._wal.open_segment(self._lsn + 1)
        if self.partition.migrated:
            self._resnapshot_migrated()

    def _resnapshot_migrated(self) -> None:
        """Write a snapshot of a partition converted at load, so later starts do not convert it again."""
        try:
            self._snapshot_locked()
        except OSError as exc:  # the old snapshot still loads (converting again); nothing is lost
            self._disk_fault(exc, SNAPSHOT, "write the snapshot of a partition converted at load",
                             "the older snapshot stays in charge and is converted again at the next start")

    @property
    def _snap_dir(self) -> Path:
        return self.data_dir / "snapshots"

    def _check_spec(self) -> None:
        path = self.data_dir / _SPEC_FILE
        if path.exists():
            stored = PartitionSpec(**json.loads(path.read_text()))
            if any(getattr(stored, f) != getattr(self.spec, f) for f in _IDENTITY):
                raise FailedPrecondition(f"shard data in {self.data_dir} was made for {stored}, not {self.spec}")
        else:
            path.write_text(json.dumps(self.spec.to_dict()))

    def _apply(self, record: shard_pb2.WalRecord, partition: Partition) -> int:
        op = record.WhichOneof("op")
        if op == "upsert":
            req = record.upsert
            vectors = unpack_matrix(req.vectors)
            payloads = payloads_from_proto(req.payloads) if len(req.payloads) else None
            n = partition.upsert(list(req.ids), vectors, payloads)
        else:
            n = partition.delete(list(record.delete.ids))
        return n

    def _disk_fault(self, exc: OSError, operation: str, doing: str, outcome: str = WRITE_REFUSED) -> Exception:
        """Record a disk fault (figures, metric, log) and return the error to raise for it."""
        mapped = disk_error(exc, doing, self.where, self.data_dir, outcome)
        self._disk_error = str(mapped or f"{type(exc).__name__}: {exc}")
        if self._observers.disk_error is not None:
            self._observers.disk_error(operation, fault_kind(exc))
        log.warning("%s", self._disk_error)
        return mapped or exc

    def _check_follows(self, last: int, lsn: int) -> None:
        if lsn != last + 1:
            raise FailedPrecondition(f"{self.where} is at LSN {last}; a write with LSN {lsn} "
                                     f"does not follow it (this replica is behind, or the write was already "
                                     f"applied): it must catch up from a peer first")

    def _log_and_apply(self, record: shard_pb2.WalRecord) -> tuple[int, int]:
        """Append (fsync) and apply one record; record.lsn 0 takes the next LSN, any other must follow the last."""
        with self._write_lock:
            if record.lsn:
                self._check_follows(self._lsn, record.lsn)
            else:
                record.lsn = self._lsn + 1
            try:
                self._wal.append(record)
            except OSError as exc:  # the WAL cut the record off again: nothing logged, nothing applied
                raise self._disk_fault(exc, WAL, "append to the write-ahead log") from None
            self._disk_error = ""
            return self._applied_locked(record)

    def _applied_locked(self, record: shard_pb2.WalRecord) -> tuple[int, int]:
        """Apply a record already in the WAL (caller holds the write lock); snapshot when one is due."""
        self._lsn = record.lsn
        affected = self._apply(record, self.partition)
        self._ops_since_snapshot += len(record.upsert.ids) + len(record.delete.ids)
        if self._journal is not None:
            self._journal.append(record)
        if (self._ops_since_snapshot >= self._settings.snapshot_every_ops
                or self._wal.size_bytes >= self._settings.snapshot_wal_bytes) \
                and time.monotonic() >= self._snapshot_retry_at \
                and self._snapshot_lock.acquire(blocking=False):
            try:
                self._snapshot_locked()
            except OSError as exc:  # the write is durable in the WAL: acknowledge it, snapshot later
                self._disk_fault(exc, SNAPSHOT, "write a snapshot",
                                 f"the write is durable in the WAL; the snapshot is tried again in "
                                 f"{SNAPSHOT_RETRY_S:.0f} s")
                self._snapshot_retry_at = time.monotonic() + SNAPSHOT_RETRY_S
            finally:
                self._snapshot_lock.release()
        return record.lsn, affected

    def upsert(self, ids: Sequence[str], vectors: np.ndarray,
               payloads: Sequence[common_pb2.Payload] = ()) -> tuple[int, int]:
        """Durably insert or replace documents; returns (lsn, count)."""
        if np.ndim(vectors) != 2:
            raise InvalidArgument(f"vectors must be a 2-D array (rows x dim), got {np.ndim(vectors)} dimensions")
        # Pack first, then check what will be logged: a finite float64 can overflow to Inf as float32.
        with np.errstate(over="ignore"):
            packed = pack_matrix(vectors)
        return self.upsert_request(shard_pb2.ShardUpsertRequest(ids=ids, vectors=packed, payloads=payloads))

    def upsert_request(self, req: shard_pb2.ShardUpsertRequest) -> tuple[int, int]:
        """Check an upsert as it arrived on the wire and log that very message (its lsn moves to the WAL record:
        0 = the next one); returns (lsn, count)."""
        vectors = unpack_matrix(req.vectors)
        check_vectors(vectors, self.spec.dim, "vector", self.spec.metric)
        if len(vectors) != len(req.ids):
            raise InvalidArgument(f"{len(req.ids)} ids but {len(vectors)} vectors")
        if req.payloads and len(req.payloads) != len(req.ids):
            raise InvalidArgument(f"{len(req.ids)} ids but {len(req.payloads)} payloads")
        if any(not i for i in req.ids):
            raise InvalidArgument("document ids must be non-empty strings")
        lsn = req.lsn
        req.ClearField("lsn")
        return self._log_and_apply(shard_pb2.WalRecord(lsn=lsn, upsert=req))

    def delete(self, ids: Sequence[str], lsn: int = 0) -> tuple[int, int]:
        """Durably delete documents (lsn 0 = the next one); returns (lsn, how many existed)."""
        return self._log_and_apply(shard_pb2.WalRecord(lsn=lsn, delete=shard_pb2.ShardDeleteRequest(ids=ids)))

    # ---- catch-up from peers ---------------------------------------------------------------
    def read_log(self, after_lsn: int, max_bytes: int) -> tuple[list[shard_pb2.WalRecord] | None, int]:
        """(records after after_lsn up to about max_bytes, or None when the WAL no longer holds them; last LSN)."""
        last = self._lsn
        if after_lsn >= last:
            return [], last
        if after_lsn < self._snapshot_lsn:
            return None, last
        return self._wal.read_after(after_lsn, last, max_bytes), last

    def apply_log(self, records: Sequence[shard_pb2.WalRecord]) -> int:
        """Append and apply a peer's records in order (one fsync for all); each must follow the last; returns
        the last LSN."""
        with self._write_lock:
            expected = self._lsn
            for record in records:
                self._check_follows(expected, record.lsn)
                expected = record.lsn
            # Appended and applied one by one (a snapshot due midway covers what came before it), synced once.
            for record in records:
                self._wal.append(record, sync=False)
                self._applied_locked(record)
            if records:
                self._wal.sync()
            return self._lsn

    def copy_documents(self) -> tuple[int, list[str], np.ndarray, list[dict[str, object]]]:
        """(LSN, ids, vectors, payloads) of every live document, one consistent state (writers wait for it)."""
        with self._write_lock:
            ids, vectors, payloads = self.partition.live_documents()
            return self._lsn, ids, vectors, payloads

    def install(self, lsn: int, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, object]]) -> int:
        """Replace the content by a peer's copy at `lsn`: the WAL goes first, then the copy's snapshot is written,
        so a crash in between leaves an older, consistent state that is caught up again. Returns the LSN.

        A running rebuild finishes first (it holds the snapshot lock until its swap)."""
        with self._snapshot_lock:
            fresh = build_partition(self.partition.spec, ids, vectors, payloads, self._settings.search_threads,
                                    self._settings.rebuild_threads, lambda _: None, lambda: False,
                                    self._settings.allowed_cache_mb)
            with self._write_lock:
                self._wal.reset(lsn + 1)
                snapshot.write_snapshot(self._snap_dir, fresh, lsn, self._rebuild_meta)
                self.partition = fresh
                self._lsn = self._snapshot_lsn = lsn
                self._ops_since_snapshot = 0
                self._checksum = None
                return lsn

    def checksum(self) -> Checksum:
        """The content checksum and live count at the current LSN (computed once per LSN)."""
        with self._write_lock:
            cached = self._checksum
            if cached is not None and cached.lsn == self._lsn:
                return cached
            lsn = self._lsn
            ids, vectors, payloads = self.partition.live_documents()
        return self._hashed(lsn, ids, vectors, payloads)  # outside the lock: the copy is of the state at `lsn`

    def _hashed(self, lsn: int, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> Checksum:
        """The checksum of the live documents at `lsn`, kept for the next caller at the same LSN."""
        value = Checksum(lsn, len(ids), content_checksum(ids, [pack_vector(v) for v in vectors],
                                                         [payload_to_proto(p) for p in payloads]))
        self._checksum = value
        return value

    def snapshot(self) -> None:
        """Write a snapshot now and drop the WAL it covers (after a running rebuild, which writes its own)."""
        with self._snapshot_lock, self._write_lock:
            try:
                self._snapshot_locked()
            except OSError as exc:
                raise self._disk_fault(exc, SNAPSHOT, "write a snapshot",
                                       "every write stays in the WAL and the last snapshot stays in charge") from None

    def _snapshot_locked(self) -> None:
        lsn = self._lsn
        self._wal.open_segment(lsn + 1)
        snapshot.write_snapshot(self._snap_dir, self.partition, lsn, self._rebuild_meta)
        self._wal.drop_through(lsn)
        self._snapshot_lsn = lsn
        self._ops_since_snapshot = 0

    # ---- rebuild -------------------------------------------------------------------------
    def rebuild(self, m: int = 0, ef_construction: int = 0, reason: str = "request") -> bool:
        """Start rebuilding the index from the live documents in the background (0 keeps a parameter).

        Returns False when a rebuild is already running. Reads and writes go on throughout."""
        spec = respec(self.partition.spec, m, ef_construction)
        return self.rebuilder.start(lambda r: self._rebuild(r, spec), reason)

    def _replay(self, target: Partition, journal: list[shard_pb2.WalRecord], start: int) -> int:
        """Apply journal[start:] to target (writers may append meanwhile); returns where it stopped."""
        pos = start
        while pos < len(journal):
            self._apply(journal[pos], target)
            pos += 1
        return pos

    def _rebuild(self, r: Rebuilder, spec: PartitionSpec) -> None:
        with self._snapshot_lock:
            with self._write_lock:
                start_lsn = self._lsn
                # A new WAL segment here lets the swap drop everything the rebuilt snapshot covers.
                self._wal.open_segment(start_lsn + 1)
                journal: list[shard_pb2.WalRecord] = []
                self._journal = journal
                ids, vectors, payloads = self.partition.live_documents()
            try:
                r.phase("build")
                fresh = build_partition(spec, ids, vectors, payloads, self._settings.search_threads,
                                        self._settings.rebuild_threads, r.progress, r.cancelled,
                                        self._settings.allowed_cache_mb)
                del ids, vectors, payloads
                r.phase("catch-up")
                done = self._replay(fresh, journal, 0)
                lsn = journal[done - 1].lsn if done else start_lsn
                r.phase("snapshot")
                # Written outside the write lock: only this thread touches `fresh` until the swap.
                rebuild_meta = {"rebuilt_at": time.time(), "rebuild_seconds": r.elapsed()}
                try:
                    snapshot.write_snapshot(self._snap_dir, fresh, lsn, rebuild_meta)
                except OSError as exc:  # the old index and its files stay in charge
                    raise self._disk_fault(exc, REBUILD, "write the rebuilt index's snapshot",
                                           "the old index keeps serving") from None
                r.phase("catch-up")
                done = self._replay(fresh, journal, done)
                r.phase("swap")
                with self._write_lock:
                    self._replay(fresh, journal, done)
                    self.partition = fresh
                    self._journal = None
                    self._snapshot_lsn = lsn
                    self._rebuild_meta = rebuild_meta
                    self._wal.drop_through(lsn)
                    self._ops_since_snapshot = 0
            finally:
                if self._journal is not None:
                    with self._write_lock:
                        self._journal = None

    def figures(self) -> ShardFigures:
        """Counts, sizes, log positions and rebuild state."""
        p = self.partition
        wal = self._wal.size_bytes
        memory, disk = p.memory(), snapshot.disk_figures(self._snap_dir)
        return ShardFigures(live=p.live, tombstones=p.tombstones, capacity=p.capacity,
                            last_lsn=self._lsn, snapshot_lsn=self._snapshot_lsn, wal_bytes=wal,
                            documents=p.documents, slots_used=p.slots_used, m=p.spec.m,
                            ef_construction=p.spec.ef_construction,
                            memory_bytes=memory.total, disk_bytes=disk.total + wal,
                            rebuild=self.rebuilder.figures(), disk_error=self._disk_error, storage=p.spec.storage,
                            memory=memory, disk=disk)

    # ---- backup --------------------------------------------------------------------------
    @contextmanager
    def backup_point(self) -> Iterator[BackupPoint]:
        """Pin a consistent point for a backup while the caller copies its files; writes go on meanwhile.

        The WAL moves to a fresh segment, so the snapshot and the closed segments hold exactly the writes
        through the point; holding the snapshot lock keeps a snapshot or rebuild from replacing them."""
        with self._snapshot_lock:
            with self._write_lock:
                lsn = self._lsn
                try:
                    self._wal.open_segment(lsn + 1)
                except OSError as exc:
                    raise self._disk_fault(exc, BACKUP, "start a WAL segment for a backup",
                                           "no backup was taken") from None
                cached = self._checksum if self._checksum is not None and self._checksum.lsn == lsn else None
                live = None if cached else self.partition.live_documents()
                documents = self.partition.documents
                files = [(p.relative_to(self.data_dir).as_posix(), p) for p in self._backup_files(lsn)]
            point = cached or self._hashed(lsn, *live)  # a repair round may have hashed this very LSN already
            yield BackupPoint(lsn, point.live, documents, point.value, files)

    def _backup_files(self, lsn: int) -> list[Path]:
        spec = self.data_dir / _SPEC_FILE
        snaps = snapshot.complete_snapshots(self._snap_dir)
        snap_files = sorted(p for p in snaps[-1].iterdir() if p.is_file()) if snaps else []
        return [spec, *snap_files, *self._wal.segments_through(lsn)]

    def close(self) -> None:
        """Stop writing (the WAL is already durable); a running rebuild is abandoned, its files never used."""
        self.rebuilder.cancel()
        with self._write_lock:
            self._wal.close()
