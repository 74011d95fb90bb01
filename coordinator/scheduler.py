"""The compaction scheduler: reads every shard replica's figures, decides which need a rebuild, and starts
at most `max_concurrent_rebuilds` at a time across the cluster so that it keeps its serving capacity."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from dataclasses import dataclass, field

from coordinator.catalog import Catalog, CollectionSpec
from coordinator.fanout import Key
from coordinator.metrics import CoordinatorMetrics
from coordinator.replicas import ReplicaAnswer, Replicator
from coordinator.settings import CoordinatorSettings
from protos import shard_pb2
from protos.errors import ShoalError
from shard_node.client import ShardClient
from shard_node.rebuild import tombstone_ratio

log = logging.getLogger("shoal.coordinator.scheduler")


@dataclass
class RebuildJob:
    """One replica's rebuild, asked for by a policy or by a Compact call."""

    spec: CollectionSpec
    index: int
    replica: int
    reason: str  # tombstones, full, request
    m: int = 0
    ef_construction: int = 0
    done: asyncio.Future[shard_pb2.ShardStats] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def key(self) -> Key:
        """Which replica this job rebuilds."""
        return (self.spec.uid, self.index, self.replica)


def policy_reason(spec: CollectionSpec, stats: shard_pb2.ShardStats, settings: CoordinatorSettings) -> str:
    """Why a replica needs a rebuild now ("" = it does not)."""
    if stats.rebuild.running or stats.tombstones < max(settings.compaction_min_tombstones, 1):
        return ""
    if tombstone_ratio(stats.live, stats.tombstones) >= spec.tombstone_threshold:
        return "tombstones"
    if stats.capacity and stats.slots_used >= settings.compaction_full_ratio * stats.capacity:
        return "full"  # rebuilding reclaims the dead slots instead of doubling an index that carries them
    return ""


class CompactionScheduler:
    """Starts rebuilds by policy (periodically) and on request, never more than the limit at once."""

    def __init__(self, catalog: Catalog, replicator: Replicator, settings: CoordinatorSettings,
                 metrics: CoordinatorMetrics) -> None:
        self._catalog = catalog
        self._replicator = replicator
        self._settings = settings
        self._metrics = metrics
        self._queue: list[RebuildJob] = []
        self._running: dict[Key, RebuildJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    @property
    def running(self) -> int:
        """Rebuilds this coordinator has under way."""
        return len(self._running)

    def request(self, spec: CollectionSpec, indices: list[int], m: int = 0, ef_construction: int = 0,
                ) -> list[RebuildJob]:
        """Queue a rebuild of every replica of the listed shards; the jobs' `done` resolve when each finishes."""
        replicas = range(max(spec.replication_factor, 1))
        jobs = [RebuildJob(spec, i, r, "request", m, ef_construction) for i in indices for r in replicas]
        self._queue.extend(jobs)
        self._wake.set()
        return jobs

    async def run(self) -> None:
        """Run until cancelled: a round every compaction_interval_s, or sooner when a job is asked for or ends."""
        interval = self._settings.compaction_interval_s
        while True:
            try:
                await self.round(poll=interval > 0)
            except Exception:  # noqa: BLE001 - one bad round must not stop the scheduler
                log.exception("compaction round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval if interval > 0 else None)
            self._wake.clear()

    async def _figures(self, spec: CollectionSpec) -> list[ReplicaAnswer[shard_pb2.ShardStats]]:
        async def stats(i: int, c: ShardClient) -> shard_pb2.ShardStats:
            return await c.stats(self._settings.shard_timeout_s)

        return await self._replicator.each_replica(spec, stats, "Stats", allow_partial=True)

    async def round(self, poll: bool = True) -> list[RebuildJob]:
        """Read the figures, then start queued and policy rebuilds up to the limit; returns the jobs started."""
        busy: set[Key] = set(self._running)
        candidates: list[tuple[float, RebuildJob]] = []
        specs = self._catalog.all()
        for spec in specs:
            if not poll and not self._queue:
                continue
            for a in await self._figures(spec):
                self._metrics.observe_shard(spec.name, a.index, a.replica, a.result)
                if a.result is None:
                    continue
                key = (spec.uid, a.index, a.replica)
                if a.result.rebuild.running:
                    busy.add(key)
                elif poll and key not in self._running:
                    reason = policy_reason(spec, a.result, self._settings)
                    if reason:
                        ratio = tombstone_ratio(a.result.live, a.result.tombstones)
                        candidates.append((-ratio, RebuildJob(spec, a.index, a.replica, reason)))
        self._metrics.rebuilds_running.set(len(busy))
        wanted = list(self._queue) + [j for _, j in sorted(candidates, key=lambda c: c[0])]
        started: list[RebuildJob] = []
        for job in wanted:
            if len(busy) >= self._settings.max_concurrent_rebuilds:
                break
            if job.key in busy or any(k[:2] == job.key[:2] for k in busy):
                continue  # one replica of a shard at a time keeps the shard's reads served at full speed
            if job in self._queue:
                self._queue.remove(job)
            busy.add(job.key)
            self._start(job)
            started.append(job)
        return started

    def _start(self, job: RebuildJob) -> None:
        self._running[job.key] = job
        self._metrics.rebuilds_scheduled.labels(job.reason).inc()
        log.info("rebuilding shard %d replica %d of %s (%s)", job.index, job.replica, job.spec.name, job.reason)
        # A fresh context: the job must not inherit the deadline of the request that asked for it.
        task = asyncio.get_running_loop().create_task(self._run_job(job), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: RebuildJob) -> None:
        timeout = self._settings.rebuild_timeout_s

        async def rebuild(i: int, c: ShardClient) -> shard_pb2.ShardStats:
            return await c.rebuild(job.m, job.ef_construction, job.reason, True, timeout)

        try:
            stats = await self._replicator.pool.call(job.spec, job.index, lambda c: rebuild(job.index, c), "Rebuild",
                                                     replica=job.replica)
            if stats.rebuild.last_error:
                raise ShoalError(f"rebuild of shard {job.index} replica {job.replica} failed: "
                                 f"{stats.rebuild.last_error}")
            self._metrics.observe_shard(job.spec.name, job.index, job.replica, stats)
            if not job.done.done():
                job.done.set_result(stats)
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits for the job, and logged
            log.warning("rebuild of shard %d replica %d of %s failed: %s", job.index, job.replica, job.spec.name, exc)
            self._metrics.rebuilds_failed.labels(job.reason).inc()
            if not job.done.done():
                job.done.set_exception(exc)
                job.done.exception()  # policy jobs have no waiter: mark it seen (a Compact waiter still gets it)
        finally:
            del self._running[job.key]
            self._wake.set()

    async def stop(self) -> None:
        """Cancel the jobs' waits (the shards finish their rebuilds on their own)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
