"""Shard metrics fed by the store's observers: WAL fsync timings and bytes, rebuild durations by outcome."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np

from protos import shard_pb2
from shard_node.disk import DISK_OPERATIONS, FAULT_KINDS, fault_kind
from shard_node.metrics import ShardMetrics
from shard_node.rebuild import Rebuilder
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.store import ShardStore
from shard_node.wal import WriteAheadLog

LABELS = ("docs", "0", "0")


def sample(m: ShardMetrics, name: str, **labels: str) -> float:
    value = m.registry.get_sample_value(name, {"collection": "docs", "shard": "0", "replica": "0", **labels})
    return 0.0 if value is None else value


def test_wal_reports_each_fsync_with_the_bytes_it_added(tmp_path: Path) -> None:
    seen: list[tuple[float, int]] = []
    wal = WriteAheadLog(tmp_path, lambda s, n: seen.append((s, n)))
    sizes = [wal.append(shard_pb2.WalRecord(lsn=i + 1, delete=shard_pb2.ShardDeleteRequest(ids=["x" * i])))
             for i in range(3)]
    wal.close()
    assert [n for _, n in seen] == sizes and all(s >= 0 for s, _ in seen)


def test_store_writes_and_rebuild_land_in_the_histograms(tmp_path: Path) -> None:
    m = ShardMetrics()
    store = ShardStore(tmp_path, PartitionSpec(dim=4, metric="l2"), ShardSettings(), m.observers(LABELS))
    try:
        assert sample(m, "shoal_shard_rebuild_seconds_count", outcome="error") == 0.0  # exported before any rebuild
        store.upsert(["a", "b", "c"], np.eye(3, 4, dtype=np.float32))
        store.delete(["a"])
        assert sample(m, "shoal_shard_wal_fsync_seconds_count") == 2
        assert sample(m, "shoal_shard_wal_appended_bytes_total") == store.figures().wal_bytes > 0
        assert store.rebuild()
        assert store.rebuilder.wait(60)
        assert sample(m, "shoal_shard_rebuild_seconds_count", outcome="ok") == 1
        assert sample(m, "shoal_shard_rebuild_seconds_count", outcome="error") == 0
        m.observe_figures(LABELS, store.figures())
        assert sample(m, "shoal_shard_rebuild_elapsed_seconds") == 0.0
        assert sample(m, "shoal_shard_vectors") == 2 and sample(m, "shoal_shard_tombstones") == 0
    finally:
        store.close()


def test_failed_rebuild_is_reported_as_error() -> None:
    ended: list[tuple[str, float]] = []
    r = Rebuilder(on_end=lambda outcome, s: ended.append((outcome, s)))

    def job(_: Rebuilder) -> None:
        raise RuntimeError("disk full")

    assert r.start(job, "request") and r.wait(10)
    assert [o for o, _ in ended] == ["error"] and r.figures().last_error == "RuntimeError: disk full"


def test_figure_gauges_are_refreshed_at_every_scrape(tmp_path: Path) -> None:
    m = ShardMetrics()
    store = ShardStore(tmp_path, PartitionSpec(dim=4, metric="l2"), ShardSettings(), m.observers(LABELS))
    try:
        m.refresh_on_scrape(LABELS, store.figures)
        store.upsert(["a", "b"], np.eye(2, 4, dtype=np.float32))  # no servicer here: nothing set the gauges
        assert sample(m, "shoal_shard_vectors") == 2
        store.delete(["b"])
        assert sample(m, "shoal_shard_vectors") == 1 and sample(m, "shoal_shard_tombstones") == 1
    finally:
        store.close()


def test_every_disk_fault_series_is_exported_at_zero_before_any_fault() -> None:
    m = ShardMetrics()
    m.observers(LABELS)
    names = {"collection": "docs", "shard": "0", "replica": "0"}
    for operation in DISK_OPERATIONS:
        for kind in FAULT_KINDS:
            labels = {**names, "operation": operation, "kind": kind}
            assert m.registry.get_sample_value("shoal_shard_disk_errors_total", labels) == 0.0, labels
    assert {fault_kind(OSError(e, "x")) for e in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)} \
        == set(FAULT_KINDS)
