"""Replicator on its own (the shard pool replaced by in-memory replicas that keep an LSN and refuse a write that
does not follow it): write consistency, a hung replica that neither blocks writes nor serves reads, the view
derived again from the replicas' LSNs after a coordinator restart, hedged reads, partial answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from coordinator.catalog import CollectionSpec, default_write_consistency
from coordinator.engine import check_write_consistency
from coordinator.metrics import CoordinatorMetrics
from coordinator.replicas import Replicator
from coordinator.settings import CoordinatorSettings
from protos import shard_pb2
from protos.errors import FailedPrecondition, InvalidArgument, Unavailable

SETTINGS = CoordinatorSettings(write_straggler_ms=50, hedge_after_ms=30, probe_timeout_s=0.2)


class FakeReplica:
    """A replica's log: applied writes by LSN; can be down, or hung (its calls wait until released)."""

    def __init__(self) -> None:
        self.applied: list[tuple[int, str]] = []
        self.down = False
        self.thaw = asyncio.Event()
        self.thaw.set()

    @property
    def lsn(self) -> int:
        return self.applied[-1][0] if self.applied else 0

    async def stats(self, timeout: float, checksum: bool = False) -> shard_pb2.ShardStats:
        await self.thaw.wait()
        return shard_pb2.ShardStats(last_lsn=self.lsn)

    async def write(self, tag: str, lsn: int) -> int:
        await self.thaw.wait()
        if lsn != self.lsn + 1:
            raise FailedPrecondition(f"at LSN {self.lsn}; a write with LSN {lsn} does not follow it")
        self.applied.append((lsn, tag))
        return 1


class FakePool:
    """ShardPool.call() over in-memory replicas: a down replica raises Unavailable; each replica is its own node."""

    def __init__(self, shards: int, replicas: int) -> None:
        self.replicas = {(i, r): FakeReplica() for i in range(shards) for r in range(replicas)}
        self.calls: list[tuple[int, int, str]] = []

    async def call(self, spec: CollectionSpec, index: int, fn: Callable[[Any], Awaitable[Any]], method: str,
                   replica: int = 0, patience: float | None = None) -> Any:
        self.calls.append((index, replica, method))
        rep = self.replicas[(index, replica)]
        if rep.down:
            raise Unavailable(f"replica {replica} of shard {index} is down")
        return await fn(rep)


def make(shards: int = 1, replicas: int = 2, w: int = 0, pool: FakePool | None = None
         ) -> tuple[Replicator, FakePool, CollectionSpec]:
    spec = CollectionSpec.new("c", 4, "l2", shards, 16, 100, 64, replication_factor=replicas, write_consistency=w,
                              placement=[[i * replicas + r for r in range(replicas)] for i in range(shards)])
    pool = pool or FakePool(shards, replicas)
    return Replicator(pool, SETTINGS, CoordinatorMetrics()), pool, spec  # type: ignore[arg-type]


def writer(tag: str) -> Callable[[int, FakeReplica, int], Awaitable[int]]:
    async def write(i: int, rep: FakeReplica, lsn: int) -> int:
        return await rep.write(tag, lsn)

    return write


async def reader(i: int, rep: FakeReplica) -> int:
    await rep.thaw.wait()
    return rep.lsn


def test_write_consistency_defaults_and_limits() -> None:
    assert [default_write_consistency(rf) for rf in (1, 2, 3, 4, 5)] == [1, 1, 2, 3, 3]
    assert check_write_consistency(2, 3) == 2
    for bad in (0, 4):
        with pytest.raises(InvalidArgument, match=r"between 1 and the replication factor \(3\), got"):
            check_write_consistency(bad, 3)


def test_a_hung_replica_does_not_hold_writes_beyond_the_budget_and_serves_no_reads_while_behind() -> None:
    rep, pool, spec = make()
    hung = pool.replicas[(0, 1)]

    async def scenario() -> None:
        await rep.write(spec, [0], writer("w1"), "Upsert")
        assert rep.shard_log(spec, 0).up_to_date() == [0, 1]
        hung.thaw.clear()
        start = time.monotonic()
        for n in range(2, 6):
            await rep.write(spec, [0], writer(f"w{n}"), "Upsert")
        elapsed = time.monotonic() - start
        assert elapsed < 1.0, f"4 writes took {elapsed:.2f}s with one replica hung (budget 50 ms once)"
        assert rep.shard_log(spec, 0).up_to_date() == [0]
        assert rep.breaker.suspect(spec.node_of(0, 1))
        pool.calls.clear()
        for _ in range(4):
            (lsn,), _ = await rep.read(spec, [0], reader, "Get")
            assert lsn == 5
        assert {r for _, r, _ in pool.calls} == {0}, "a replica that is behind must not serve reads"
        hung.thaw.set()
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert [t for _, t in pool.replicas[(0, 0)].applied] == ["w1", "w2", "w3", "w4", "w5"]
    # The hung replica took the write that was in flight when it froze, then refused nothing else: no gap.
    assert [lsn for lsn, _ in hung.applied] == [1, 2]


def test_write_consistency_two_needs_two_up_to_date_replicas() -> None:
    rep, pool, spec = make(w=2)

    async def scenario() -> None:
        await rep.write(spec, [0], writer("w1"), "Upsert")
        pool.replicas[(0, 1)].down = True
        with pytest.raises(Unavailable):  # the down replica failed it: fewer than W
            await rep.write(spec, [0], writer("w2"), "Upsert")
        with pytest.raises(Unavailable, match="write consistency needs 2"):
            await rep.write(spec, [0], writer("w3"), "Upsert")

    asyncio.run(scenario())
    assert [t for _, t in pool.replicas[(0, 1)].applied] == ["w1"]


def test_a_restarted_coordinator_derives_the_shard_lsn_from_the_replicas() -> None:
    """The first coordinator wrote w2 only to replica 0; a new one (empty memory) asks the replicas, continues at
    LSN 3 and counts only replica 0 up to date: replica 1 (at LSN 1) serves no read."""
    rep, pool, spec = make()

    async def scenario() -> None:
        await rep.write(spec, [0], writer("w1"), "Upsert")
        pool.replicas[(0, 1)].down = True
        await rep.write(spec, [0], writer("w2"), "Upsert")
        pool.replicas[(0, 1)].down = False
        fresh, _, _ = make(pool=pool)
        fresh_spec = spec
        await fresh.write(fresh_spec, [0], writer("w3"), "Upsert")
        assert fresh.shard_log(fresh_spec, 0).lsn == 3
        assert fresh.shard_log(fresh_spec, 0).up_to_date() == [0]
        pool.calls.clear()
        for _ in range(3):
            await fresh.read(fresh_spec, [0], reader, "Get")
        assert {r for _, r, m in pool.calls if m == "Get"} == {0}

    asyncio.run(scenario())
    assert [lsn for lsn, _ in pool.replicas[(0, 0)].applied] == [1, 2, 3]


def test_a_slow_read_is_hedged_to_a_peer_and_the_slow_node_becomes_suspect_until_probed() -> None:
    rep, pool, spec = make(shards=2)

    async def scenario() -> None:
        await rep.write(spec, [0, 1], writer("w1"), "Upsert")
        slow = pool.replicas[(1, 0)]
        slow.thaw.clear()
        start = time.monotonic()
        for _ in range(4):
            results, missing = await rep.read(spec, [0, 1], reader, "Get")
            assert results == [1, 1] and missing == []
        assert time.monotonic() - start < 1.0
        node = spec.node_of(1, 0)
        assert rep.breaker.suspect(node)

        async def probe(n: int) -> None:
            await slow.thaw.wait()

        assert await rep.breaker.probe_once(probe, 0.05) == []
        slow.thaw.set()
        assert await rep.breaker.probe_once(probe, 0.05) == [node]
        assert not rep.breaker.suspect(node)

    asyncio.run(scenario())


def test_partial_reads_name_missing_shards_and_full_reads_fail() -> None:
    """A shard with every replica down: missing with allow_partial, UNAVAILABLE without; other errors propagate."""
    rep, pool, spec = make(shards=3, replicas=1)

    async def scenario() -> None:
        await rep.write(spec, [0, 1, 2], writer("w1"), "Upsert")
        pool.replicas[(2, 0)].down = True
        results, missing = await rep.read(spec, [0, 1, 2], reader, "Get", allow_partial=True)
        assert results == [1, 1, None] and missing == [2]
        with pytest.raises(Unavailable):
            await rep.read(spec, [0, 1, 2], reader, "Get")

        async def bad(i: int, r: FakeReplica) -> int:
            raise InvalidArgument("k must be at least 1")

        with pytest.raises(InvalidArgument):
            await rep.read(spec, [0, 1], bad, "Get", allow_partial=True)

    asyncio.run(scenario())
