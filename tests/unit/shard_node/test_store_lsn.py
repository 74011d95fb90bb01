"""ShardStore's shard-wide sequence numbers: a write must follow the last LSN (a gap or a repeat is refused and
changes nothing), and a replica catches up from a peer by LSN range, or by a copy once the peer's WAL dropped the
range; content checksums agree exactly when the content does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protos import shard_pb2
from protos.errors import FailedPrecondition
from protos.wire import pack_matrix
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.store import ShardStore

DIM = 4
SPEC = PartitionSpec(dim=DIM, metric="l2", m=8, ef_construction=50, ef_search=32)


def settings(**kw: Any) -> ShardSettings:
    """Small stores that snapshot only when asked."""
    return ShardSettings(**({"initial_capacity": 16, "snapshot_every_ops": 10**9, "snapshot_wal_bytes": 10**12}
                            | kw))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[list[ShardStore]]:
    """Two replicas of one shard (and whatever a test reopens), closed at the end."""
    opened = [ShardStore(tmp_path / f"r{i}", SPEC, settings()) for i in range(2)]
    yield opened
    for s in opened:
        s.close()


def vec(seed: int) -> np.ndarray:
    """One deterministic vector."""
    return np.random.default_rng(seed).standard_normal((1, DIM)).astype(np.float32)


def test_a_write_that_does_not_follow_the_last_lsn_is_refused_and_changes_nothing(stores: list[ShardStore]) -> None:
    a = stores[0]
    assert a.upsert(["x"], vec(1))[0] == 1
    gap = shard_pb2.ShardUpsertRequest(ids=["y"], vectors=pack_matrix(vec(2)), lsn=3)
    with pytest.raises(FailedPrecondition, match="at LSN 1; a write with LSN 3"):
        a.upsert_request(gap)
    with pytest.raises(FailedPrecondition, match="at LSN 1; a write with LSN 1"):
        a.delete(["x"], lsn=1)  # a repeat of an applied LSN is refused too: the delete is not applied twice
    assert a.figures().last_lsn == 1 and a.partition.live == 1
    assert a.delete(["x"], lsn=2) == (2, 1)
    assert a.figures().last_lsn == 2 and a.partition.live == 0


def test_catch_up_by_lsn_range_replays_deletes_and_checksums_agree(stores: list[ShardStore], tmp_path: Path) -> None:
    a, b = stores
    for i in range(5):
        for s in (a, b):
            s.upsert([f"d{i}"], vec(i), ())
    b_before = b.checksum()
    assert a.checksum() == b_before
    a.delete(["d1"])
    a.upsert(["d2"], vec(99))  # replaced
    a.upsert(["d9"], vec(9))
    assert a.checksum().value != b.checksum().value
    records, last = a.read_log(b.figures().last_lsn, 1 << 20)
    assert last == 8 and [r.lsn for r in records] == [6, 7, 8]
    with pytest.raises(FailedPrecondition):
        b.apply_log(records[1:])  # a gap: nothing applied
    assert b.figures().last_lsn == 5
    assert b.apply_log(records) == 8
    assert a.checksum() == b.checksum() and b.partition.get(["d1"]) == []
    b.close()
    reopened = ShardStore(tmp_path / "r1", SPEC, settings())  # what catch-up wrote is durable
    stores.append(reopened)
    assert reopened.checksum() == a.checksum()


def test_a_peer_whose_wal_dropped_the_range_answers_truncated_and_a_copy_replaces_the_content(
        stores: list[ShardStore], tmp_path: Path) -> None:
    a, b = stores
    b.upsert(["only-on-b"], vec(5))  # b diverged: the copy must remove it
    for i in range(4):
        a.upsert([f"d{i}"], vec(i))
    a.delete(["d0"])
    a.snapshot()  # drops the WAL the snapshot covers
    a.upsert(["d7"], vec(7))
    records, _ = a.read_log(1, 1 << 20)
    assert records is None, "the range 2.. is no longer in the WAL: the peer must say so"
    lsn, ids, vectors, payloads = a.copy_documents()
    assert lsn == 6 and sorted(ids) == ["d1", "d2", "d3", "d7"]
    assert b.install(lsn, ids, vectors, payloads) == 6
    assert b.checksum() == a.checksum()
    a.upsert(["d8"], vec(8))
    more, _ = a.read_log(6, 1 << 20)
    assert [r.lsn for r in more] == [7]
    b.apply_log(more)
    b.close()
    reopened = ShardStore(tmp_path / "r1", SPEC, settings())
    stores.append(reopened)
    assert reopened.figures().last_lsn == 7 and reopened.checksum() == a.checksum()
    assert reopened.partition.get(["only-on-b"]) == []
