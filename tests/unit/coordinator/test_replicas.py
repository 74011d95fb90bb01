"""Replicator on its own (the shard pool replaced by an in-memory stand-in): write order, missed writes handed
over before a replica serves again, reads falling over to a healthy replica, partial answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from coordinator.catalog import CollectionSpec
from coordinator.metrics import CoordinatorMetrics
from coordinator.replicas import Replicator
from coordinator.settings import CoordinatorSettings
from protos.errors import InvalidArgument, Unavailable


class FakeReplica:
    """Records the writes it applied; can be down."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.down = False


class FakePool:
    """ShardPool's call() over in-memory replicas: a down replica raises Unavailable."""

    def __init__(self, shards: int, replicas: int) -> None:
        self.replicas = {(i, r): FakeReplica() for i in range(shards) for r in range(replicas)}
        self.calls: list[tuple[int, int]] = []

    async def call(self, spec: CollectionSpec, index: int, fn: Callable[[Any], Awaitable[Any]], method: str,
                   replica: int = 0, patience: float | None = None) -> Any:
        self.calls.append((index, replica))
        rep = self.replicas[(index, replica)]
        if rep.down:
            raise Unavailable(f"replica {replica} of shard {index} is down")
        return await fn(rep)


def make(shards: int = 2, replicas: int = 2) -> tuple[Replicator, FakePool, CollectionSpec]:
    spec = CollectionSpec.new("c", 4, "l2", shards, 16, 100, 64, replication_factor=replicas)
    pool = FakePool(shards, replicas)
    return Replicator(pool, CoordinatorSettings(), CoordinatorMetrics()), pool, spec  # type: ignore[arg-type]


def writer(tag: str) -> Callable[[int, FakeReplica], Awaitable[int]]:
    async def write(i: int, rep: FakeReplica) -> int:
        rep.applied.append(tag)
        return 1

    return write


def test_a_replica_that_missed_a_write_gets_it_before_newer_ones_and_before_serving_reads() -> None:
    """Write w1 fails on replica 1 (down): the call fails, replica 0 has it, replica 1 is out of reads; once back,
    the next write hands w1 over first, so both replicas hold the same writes in the same order."""
    rep, pool, spec = make(shards=1)

    async def scenario() -> None:
        await rep.write(spec, [0], writer("w0"), "Upsert")
        pool.replicas[(0, 1)].down = True
        with pytest.raises(Unavailable):
            await rep.write(spec, [0], writer("w1"), "Upsert")
        assert rep.behind(spec, 0, 1) == 1
        pool.calls.clear()
        for _ in range(4):
            await rep.read(spec, [0], writer("read"), "Search")
        assert {r for _, r in pool.calls} == {0}, "a replica that is behind must not serve reads"
        pool.replicas[(0, 1)].down = False
        await rep.write(spec, [0], writer("w2"), "Upsert")
        assert rep.behind(spec, 0, 1) == 0

    asyncio.run(scenario())
    writes = [[w for w in pool.replicas[(0, r)].applied if w != "read"] for r in (0, 1)]
    assert writes[0] == writes[1] == ["w0", "w1", "w2"]


def test_heal_hands_missed_writes_over_without_a_new_write() -> None:
    """The scheduler's heal() replays missed writes to a replica that came back."""
    rep, pool, spec = make(shards=1)

    async def scenario() -> None:
        pool.replicas[(0, 0)].down = True
        with pytest.raises(Unavailable):
            await rep.write(spec, [0], writer("w1"), "Delete")
        assert await rep.heal(spec) == 1  # still down
        pool.replicas[(0, 0)].down = False
        assert await rep.heal(spec) == 0

    asyncio.run(scenario())
    assert pool.replicas[(0, 0)].applied == pool.replicas[(0, 1)].applied == ["w1"]


def test_reads_fall_over_to_a_healthy_replica_and_spread_over_both() -> None:
    """With one replica down every read still answers; with both up, reads alternate."""
    rep, pool, spec = make(shards=2)

    async def scenario() -> None:
        pool.replicas[(1, 0)].down = True
        for _ in range(3):
            results, missing = await rep.read(spec, [0, 1], writer("r"), "Search")
            assert results == [1, 1] and missing == []
        pool.replicas[(1, 0)].down = False
        pool.calls.clear()
        for _ in range(4):
            await rep.read(spec, [0], writer("r"), "Search")
        assert sorted(r for _, r in pool.calls) == [0, 0, 1, 1]

    asyncio.run(scenario())


def test_partial_reads_name_missing_shards_and_full_reads_fail() -> None:
    """A shard with every replica down: missing with allow_partial, UNAVAILABLE without; other errors propagate."""
    rep, pool, spec = make(shards=3, replicas=1)
    pool.replicas[(2, 0)].down = True

    async def scenario() -> None:
        results, missing = await rep.read(spec, [0, 1, 2], writer("r"), "Search", allow_partial=True)
        assert results == [1, 1, None] and missing == [2]
        with pytest.raises(Unavailable):
            await rep.read(spec, [0, 1, 2], writer("r"), "Search")

        async def bad(i: int, r: FakeReplica) -> int:
            raise InvalidArgument("k must be at least 1")

        with pytest.raises(InvalidArgument):
            await rep.read(spec, [0, 1], bad, "Search", allow_partial=True)

    asyncio.run(scenario())
