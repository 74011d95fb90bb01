"""A shard on a real full or read-only filesystem (a small tmpfs): refused writes name the shard and the path,
leave nothing behind in the WAL or the index, and writes resume once space is back."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from protos import shard_pb2
from protos.errors import ResourceExhausted, Unavailable
from protos.wire import pack_matrix
from shard_node.metrics import ShardMetrics
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.store import ShardStore
from shard_node.wal import WriteAheadLog, read_segment
from tests.support.tmpfs import fill, free, set_read_only, small_tmpfs
from tests.unit.shard_node.test_metrics import sample

DIM = 8
SPEC = PartitionSpec(dim=DIM, metric="l2", m=8, ef_construction=50, ef_search=32)
WHERE = "collection 'c' shard 3 replica 1"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs."""
    with small_tmpfs(tmp_path / "mnt", 4 << 20) as root:
        yield root


def record(lsn: int, n: int, seed: int = 0) -> shard_pb2.WalRecord:
    """An upsert record of n documents."""
    vectors = np.random.default_rng(seed).standard_normal((n, DIM))
    return shard_pb2.WalRecord(lsn=lsn, upsert=shard_pb2.ShardUpsertRequest(
        ids=[f"d{lsn}-{i}" for i in range(n)], vectors=pack_matrix(vectors)))


def test_a_wal_append_that_does_not_fit_leaves_no_torn_record(disk: Path) -> None:
    wal = WriteAheadLog(disk / "wal")
    wal.append(record(1, 10))
    segment = next((disk / "wal").glob("wal-*.log"))
    size = segment.stat().st_size
    fill(disk, leave=3000)  # room for part of the next record: the write is short, then ENOSPC
    with pytest.raises(OSError) as info:
        wal.append(record(2, 400))
    assert info.value.errno == errno.ENOSPC
    assert segment.stat().st_size == size  # cut back: nothing of record 2 is on disk
    free(disk)
    wal.append(record(2, 400))
    wal.append(record(3, 5))
    wal.close()
    assert [r.lsn for r in WriteAheadLog(disk / "wal").replay(0)] == [1, 2, 3]
    records, end = read_segment(sorted((disk / "wal").glob("wal-*.log"))[-1])
    assert end == sorted((disk / "wal").glob("wal-*.log"))[-1].stat().st_size


LABELS = ("c", "3", "1")


def open_store(root: Path, metrics: ShardMetrics | None = None, **kw: int) -> ShardStore:
    """A store in root/shard, named as a node names it (reporting to metrics when given)."""
    observers = metrics.observers(LABELS) if metrics is not None else ShardMetrics().observers(LABELS)
    return ShardStore(root / "shard", SPEC, ShardSettings(initial_capacity=64, **kw), observers, where=WHERE)


def upsert(store: ShardStore, start: int, n: int) -> list[str]:
    """Upsert n documents numbered from start; returns their ids."""
    ids = [f"doc{i}" for i in range(start, start + n)]
    store.upsert(ids, np.random.default_rng(start).standard_normal((n, DIM)))
    return ids


def test_full_disk_refuses_the_write_names_shard_and_path_and_resumes(disk: Path) -> None:
    metrics = ShardMetrics()
    store = open_store(disk, metrics)
    acked = upsert(store, 0, 50)
    before = store.figures()
    fill(disk)
    with pytest.raises(ResourceExhausted) as info:
        upsert(store, 50, 500)  # more than the slack of the WAL's last page
    message = str(info.value)
    assert WHERE in message and str(disk / "shard") in message and "ENOSPC" in message
    after = store.figures()
    assert (after.last_lsn, after.live) == (before.last_lsn, before.live)  # nothing applied
    assert "ENOSPC" in after.disk_error
    faults = dict(collection="c", shard="3", replica="1", operation="wal", kind="no_space")
    assert sample(metrics, "shoal_shard_disk_errors_total", **faults) == 1
    assert store.partition.get(["doc50"], False) == []
    assert len(store.partition.get(acked, False)) == 50  # reads go on
    free(disk)
    acked += upsert(store, 50, 500)  # no restart: the next write just works
    assert store.figures().disk_error == ""
    store.close()
    again = open_store(disk)
    assert again.figures().live == 550 and len(again.partition.get(acked, False)) == 550
    again.close()


def test_a_snapshot_that_does_not_fit_keeps_the_write_acknowledged(disk: Path) -> None:
    store = open_store(disk, snapshot_every_ops=100)
    acked = upsert(store, 0, 60)
    fill(disk, leave=16 * 1024)  # the WAL record fits, the snapshot of the index does not
    acked += upsert(store, 60, 60)  # passes snapshot_every_ops: the snapshot fails, the write stands
    f = store.figures()
    assert f.snapshot_lsn == 0 and f.live == 120 and "snapshot" in f.disk_error
    assert not list((disk / "shard" / "snapshots").glob("*.tmp"))  # the torn temp snapshot gave its space back
    with pytest.raises(ResourceExhausted, match="snapshot"):
        store.snapshot()
    free(disk)
    store.snapshot()
    assert store.figures().snapshot_lsn == f.last_lsn
    store.close()
    again = open_store(disk)
    assert len(again.partition.get(acked, False)) == 120
    again.close()


def test_read_only_disk_answers_unavailable_and_resumes(disk: Path) -> None:
    store = open_store(disk)
    acked = upsert(store, 0, 20)
    fill(disk)
    with pytest.raises(ResourceExhausted):
        upsert(store, 20, 500)  # the WAL closes its segment: the filesystem has no writer left
    free(disk)
    set_read_only(disk, True)
    try:
        with pytest.raises(Unavailable) as info:
            upsert(store, 20, 500)
        assert WHERE in str(info.value) and str(disk / "shard") in str(info.value) and "EROFS" in str(info.value)
        assert len(store.partition.get(acked, False)) == 20 and store.figures().live == 20
    finally:
        set_read_only(disk, False)
    acked += upsert(store, 20, 500)
    store.close()
    again = open_store(disk)
    assert len(again.partition.get(acked, False)) == 520
    again.close()


def test_a_rebuild_that_does_not_fit_fails_and_the_old_index_serves(disk: Path) -> None:
    store = open_store(disk)
    acked = upsert(store, 0, 300)
    store.delete(acked[:100])
    fill(disk, leave=8 * 1024)
    assert store.rebuild(reason="test") and store.rebuilder.wait(60)
    f = store.figures()
    assert "no space" in f.rebuild.last_error and "rebuild" in f.disk_error
    assert f.rebuild.total == 0 and f.tombstones == 100  # the old index still serves, tombstones and all
    assert not list((disk / "shard" / "snapshots").glob("*.tmp"))
    assert len(store.partition.get(acked[100:], False)) == 200
    free(disk)
    assert store.rebuild(reason="test") and store.rebuilder.wait(60)
    assert store.figures().rebuild.total == 1 and store.figures().tombstones == 0
    store.close()
