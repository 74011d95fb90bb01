"""Compaction scheduler on its own: which figures call for a rebuild, the cluster-wide limit, requests first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from coordinator.catalog import Catalog, CollectionSpec
from coordinator.metrics import CoordinatorMetrics
from coordinator.replicas import ReplicaAnswer
from coordinator.scheduler import CompactionScheduler, policy_reason
from coordinator.settings import CoordinatorSettings
from protos import common_pb2, shard_pb2
from tests.support.waiting import wait_until_async

SETTINGS = CoordinatorSettings(compaction_min_tombstones=10, compaction_full_ratio=0.9, max_concurrent_rebuilds=1)


def stats(live: int, tombstones: int, capacity: int = 1 << 20, running: bool = False) -> shard_pb2.ShardStats:
    return shard_pb2.ShardStats(live=live, tombstones=tombstones, capacity=capacity, slots_used=live + tombstones,
                                rebuild=common_pb2.RebuildStatus(running=running))


SPEC = CollectionSpec.new("c", 4, "l2", 3, 16, 100, 64, tombstone_threshold=0.2)


@pytest.mark.parametrize(("figures", "reason"), [
    (stats(1000, 100), ""),                       # 0.09: under the threshold
    (stats(1000, 300), "tombstones"),             # 0.23
    (stats(20, 9), ""),                           # past the ratio, but fewer tombstones than the minimum
    (stats(1000, 300, running=True), ""),         # already rebuilding
    (stats(900, 50, capacity=1024), "full"),      # 0.05 deleted, but the index is 93% used
    (stats(900, 0, capacity=1024), ""),           # full without tombstones: growing in place is cheaper
])
def test_policy(figures: shard_pb2.ShardStats, reason: str) -> None:
    """Tombstone ratio past the collection's threshold, or a nearly full index carrying tombstones."""
    assert policy_reason(SPEC, figures, SETTINGS) == reason


class FakeReplicator:
    """Figures per (shard, replica); rebuild calls wait until released."""

    def __init__(self, figures: dict[tuple[int, int], shard_pb2.ShardStats]) -> None:
        self.figures = figures
        self.release = asyncio.Event()
        self.rebuilt: list[tuple[int, int, str]] = []
        self.pool = self

    async def each_replica(self, spec: CollectionSpec, fn: Any, method: str, allow_partial: bool = False
                           ) -> list[ReplicaAnswer[shard_pb2.ShardStats]]:
        return [ReplicaAnswer(i, r, s, None) for (i, r), s in sorted(self.figures.items())]

    async def call(self, spec: CollectionSpec, index: int, fn: Any, method: str, replica: int = 0,
                   patience: float | None = None) -> shard_pb2.ShardStats:
        client = self

        class Client:
            async def rebuild(self, m: int, ef: int, reason: str, wait: bool, timeout: float) -> shard_pb2.ShardStats:
                client.rebuilt.append((index, replica, reason))
                await client.release.wait()
                return stats(100, 0)

        return await fn(Client())


def test_limit_requests_first_and_one_replica_per_shard(tmp_path: Path) -> None:
    """Three shards need a rebuild, the limit is one: the queued request goes first, the rest wait their turn,
    the worst ratio next; two replicas of one shard never rebuild together."""
    catalog = Catalog(tmp_path)
    spec = CollectionSpec.new("c", 4, "l2", 3, 16, 100, 64, replication_factor=2)
    catalog.add(spec)
    fake = FakeReplicator({(0, 0): stats(100, 50), (0, 1): stats(100, 50), (1, 0): stats(100, 90),
                           (1, 1): stats(100, 0), (2, 0): stats(100, 0), (2, 1): stats(100, 0)})

    async def scenario() -> None:
        sched = CompactionScheduler(catalog, fake, SETTINGS, CoordinatorMetrics())  # type: ignore[arg-type]
        jobs = sched.request(spec, [2])
        first = await sched.round()
        assert [(j.index, j.replica, j.reason) for j in first] == [(2, 0, "request")]
        assert await sched.round() == []  # limit reached
        fake.release.set()
        await asyncio.wait_for(jobs[0].done, 5)
        await wait_until_async(lambda: sched.running == 0, 5, "the first job to leave the running set")
        fake.release.clear()
        second = await sched.round()
        assert [(j.index, j.replica, j.reason) for j in second] == [(2, 1, "request")]
        fake.release.set()
        await asyncio.wait_for(jobs[1].done, 5)
        await wait_until_async(lambda: sched.running == 0, 5, "the second job to leave the running set")
        fake.release.clear()
        third = await sched.round()
        assert [(j.index, j.replica, j.reason) for j in third] == [(1, 0, "tombstones")]  # ratio 0.47 beats 0.33
        fake.figures[(0, 0)] = stats(100, 50, running=True)  # a rebuild some other coordinator started
        fake.release.set()
        await wait_until_async(lambda: sched.running == 0, 5, "the tombstone job to finish")
        fake.release.clear()
        assert await sched.round() == []  # shard 0 replica 0 runs: neither it nor its peer is started
        await sched.stop()

    asyncio.run(scenario())
    assert fake.rebuilt == [(2, 0, "request"), (2, 1, "request"), (1, 0, "tombstones")]
