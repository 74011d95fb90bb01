"""A durable shard: the partition plus its WAL and snapshots; recovery is snapshot + WAL replay."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protos import common_pb2, shard_pb2
from protos.errors import FailedPrecondition, InvalidArgument
from protos.wire import check_vectors, pack_matrix, payloads_from_proto, unpack_matrix
from shard_node import snapshot
from shard_node.partition import Partition
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.wal import WriteAheadLog

_SPEC_FILE = "spec.json"


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


class ShardStore:
    """Applies writes durably (WAL fsync before acknowledging) and recovers them at start-up."""

    def __init__(self, data_dir: Path, spec: PartitionSpec, settings: ShardSettings) -> None:
        self.data_dir = data_dir
        self.spec = spec
        self._settings = settings
        self._write_lock = threading.Lock()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._check_spec()
        loaded = snapshot.load_latest(self._snap_dir, spec, settings.search_threads)
        if loaded is None:
            self.partition = Partition(spec, capacity=settings.initial_capacity,
                                       search_threads=settings.search_threads)
            self._snapshot_lsn = 0
        else:
            self.partition, self._snapshot_lsn = loaded
        self._lsn = self._snapshot_lsn
        self._wal = WriteAheadLog(data_dir / "wal")
        self._ops_since_snapshot = 0
        for record in self._wal.replay(self._snapshot_lsn):
            self._apply(record)
            self._lsn = record.lsn
        self._wal.open_segment(self._lsn + 1)

    @property
    def _snap_dir(self) -> Path:
        return self.data_dir / "snapshots"

    def _check_spec(self) -> None:
        path = self.data_dir / _SPEC_FILE
        if path.exists():
            stored = PartitionSpec(**json.loads(path.read_text()))
            if stored != self.spec:
                raise FailedPrecondition(f"shard data in {self.data_dir} was made for {stored}, not {self.spec}")
        else:
            path.write_text(json.dumps(self.spec.to_dict()))

    def _apply(self, record: shard_pb2.WalRecord) -> int:
        op = record.WhichOneof("op")
        if op == "upsert":
            req = record.upsert
            vectors = unpack_matrix(req.vectors)
            payloads = payloads_from_proto(req.payloads) if len(req.payloads) else None
            n = self.partition.upsert(list(req.ids), vectors, payloads)
        else:
            n = self.partition.delete(list(record.delete.ids))
        self._ops_since_snapshot += len(record.upsert.ids) + len(record.delete.ids)
        return n

    def _log_and_apply(self, record: shard_pb2.WalRecord) -> tuple[int, int]:
        with self._write_lock:
            record.lsn = self._lsn + 1
            self._wal.append(record)
            self._lsn = record.lsn
            affected = self._apply(record)
            if (self._ops_since_snapshot >= self._settings.snapshot_every_ops
                    or self._wal.size_bytes >= self._settings.snapshot_wal_bytes):
                self._snapshot_locked()
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
        """Write a snapshot now and drop the WAL it covers."""
        with self._write_lock:
            self._snapshot_locked()

    def _snapshot_locked(self) -> None:
        lsn = self._lsn
        self._wal.open_segment(lsn + 1)
        snapshot.write_snapshot(self._snap_dir, self.partition, lsn)
        self._wal.drop_through(lsn)
        self._snapshot_lsn = lsn
        self._ops_since_snapshot = 0

    def figures(self) -> ShardFigures:
        """Counts and log positions."""
        p = self.partition
        return ShardFigures(live=p.live, tombstones=p.tombstones, capacity=p.capacity,
                            last_lsn=self._lsn, snapshot_lsn=self._snapshot_lsn,
                            wal_bytes=self._wal.size_bytes, documents=p.documents)

    def close(self) -> None:
        """Stop writing (the WAL is already durable)."""
        with self._write_lock:
            self._wal.close()
