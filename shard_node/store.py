"""A durable shard: the partition plus its WAL and snapshots; recovery is snapshot + WAL replay."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protos import common_pb2, shard_pb2
from protos.errors import FailedPrecondition, InvalidArgument
from protos.wire import check_vectors, pack_matrix, payloads_from_proto, unpack_matrix
from shard_node import snapshot
from shard_node.partition import MemoryFigures, Partition
from shard_node.rebuild import Rebuilder, RebuildFigures, RebuildObserver, build_partition, respec, tombstone_ratio
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.wal import FsyncObserver, WriteAheadLog

_SPEC_FILE = "spec.json"
_IDENTITY = ("dim", "metric", "storage")  # what a shard's data is; M and ef_construction may change on rebuild


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


class ShardStore:
    """Applies writes durably (WAL fsync before acknowledging) and recovers them at start-up."""

    def __init__(self, data_dir: Path, spec: PartitionSpec, settings: ShardSettings,
                 observers: StoreObservers = StoreObservers()) -> None:  # noqa: B008 - frozen, never mutated
        self.data_dir = data_dir
        self.spec = spec
        self._settings = settings
        self._write_lock = threading.Lock()
        # One snapshot writer at a time: a rebuild holds it from start to swap, periodic snapshots skip meanwhile.
        self._snapshot_lock = threading.Lock()
        self._journal: list[shard_pb2.WalRecord] | None = None  # writes since a running rebuild copied the live set
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

    def _log_and_apply(self, record: shard_pb2.WalRecord) -> tuple[int, int]:
        with self._write_lock:
            record.lsn = self._lsn + 1
            self._wal.append(record)
            self._lsn = record.lsn
            affected = self._apply(record, self.partition)
            self._ops_since_snapshot += len(record.upsert.ids) + len(record.delete.ids)
            if self._journal is not None:
                self._journal.append(record)
            if (self._ops_since_snapshot >= self._settings.snapshot_every_ops
                    or self._wal.size_bytes >= self._settings.snapshot_wal_bytes) \
                    and self._snapshot_lock.acquire(blocking=False):
                try:
                    self._snapshot_locked()
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
        """Check an upsert as it arrived on the wire and log that very message; returns (lsn, count)."""
        vectors = unpack_matrix(req.vectors)
        check_vectors(vectors, self.spec.dim, "vector", self.spec.metric)
        if len(vectors) != len(req.ids):
            raise InvalidArgument(f"{len(req.ids)} ids but {len(vectors)} vectors")
        if req.payloads and len(req.payloads) != len(req.ids):
            raise InvalidArgument(f"{len(req.ids)} ids but {len(req.payloads)} payloads")
        if any(not i for i in req.ids):
            raise InvalidArgument("document ids must be non-empty strings")
        return self._log_and_apply(shard_pb2.WalRecord(upsert=req))

    def delete(self, ids: Sequence[str]) -> tuple[int, int]:
        """Durably delete documents; returns (lsn, how many existed)."""
        return self._log_and_apply(shard_pb2.WalRecord(delete=shard_pb2.ShardDeleteRequest(ids=ids)))

    def snapshot(self) -> None:
        """Write a snapshot now and drop the WAL it covers (after a running rebuild, which writes its own)."""
        with self._snapshot_lock, self._write_lock:
            self._snapshot_locked()

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
                snapshot.write_snapshot(self._snap_dir, fresh, lsn, rebuild_meta)
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
                            rebuild=self.rebuilder.figures(), storage=p.spec.storage, memory=memory, disk=disk)

    def close(self) -> None:
        """Stop writing (the WAL is already durable); a running rebuild is abandoned, its files never used."""
        self.rebuilder.cancel()
        with self._write_lock:
            self._wal.close()
