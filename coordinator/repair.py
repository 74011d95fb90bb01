"""The repair loop: brings replicas that are behind up to date from a peer, and replaces diverged ones.

Every round asks each replica of every replicated shard for its last LSN (Stats), so its picture is rebuilt
from the replicas themselves after any coordinator restart. A replica behind the most advanced one is caught
up from it by LSN range (ReadLog on the peer, ApplyLog on the replica), or — when the peer's WAL no longer holds
the range because a snapshot dropped it — from a consistent copy of the peer's live documents at one LSN
(CopyPartition → InstallPartition), then the WAL tail after it. The bulk of a catch-up runs beside the shard's
writes; the last few records are applied under the shard's write lock, and only then does the replica count
as up to date again.

Divergence: replicas at the same LSN compare (live count, content checksum) every checksum_interval_s. The
rule: the content most replicas hold wins; on a tie the lowest-numbered replica among the up-to-date ones wins
(with RF=2 there is no majority to ask, see README). The others are replaced by a copy of the winner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from coordinator.catalog import Catalog, CollectionSpec
from coordinator.metrics import CoordinatorMetrics
from coordinator.replicas import Replicator
from coordinator.settings import CoordinatorSettings
from coordinator.shards import replicas_of
from protos import shard_pb2
from protos.errors import ShoalError
from shard_node.client import ShardClient

T = TypeVar("T")
log = logging.getLogger("shoal.coordinator.repair")
LOCKED_TAIL = 64          # records left to copy when the catch-up takes the shard's write lock to finish
MAX_PASSES = 1000         # ReadLog batches per catch-up before it yields to the next round


class RepairLoop:
    """Catches up and repairs the replicas of every replicated collection."""

    def __init__(self, catalog: Catalog, replicator: Replicator, settings: CoordinatorSettings,
                 metrics: CoordinatorMetrics) -> None:
        self._catalog = catalog
        self._replicas = replicator
        self._pool = replicator.pool
        self._settings = settings
        self._metrics = metrics
        self._checked: dict[tuple[str, int], float] = {}  # shard -> when its checksums last agreed

    async def run(self) -> None:
        """Rounds every repair_interval_s until cancelled."""
        while True:
            try:
                await self.round()
            except Exception:  # noqa: BLE001 - one bad round must not stop the loop
                log.exception("repair round failed")
            await asyncio.sleep(self._settings.repair_interval_s)

    async def round(self) -> int:
        """One pass over every replicated shard; returns how many replicas it brought up to date or replaced."""
        fixed = 0
        for spec in self._catalog.all():
            if spec.replication_factor < 2:
                continue
            results = await asyncio.gather(*(self.repair_shard(spec, i) for i in range(spec.shards)),
                                           return_exceptions=True)
            for i, r in enumerate(results):
                if isinstance(r, BaseException):
                    log.warning("repair of shard %d of %s stopped: %s", i, spec.name, r)
                else:
                    fixed += r
        return fixed

    def _call_timeout(self) -> float:
        return self._settings.repair_call_timeout_s

    async def _on(self, spec: CollectionSpec, index: int, replica: int, fn: Callable[[ShardClient], Awaitable[T]],
                  method: str, timeout: float | None = None) -> T:
        """One quick call to a replica (no waiting for a restart; the next round tries again)."""
        return await asyncio.wait_for(self._pool.call(spec, index, fn, method, replica=replica, patience=0),
                                      timeout or self._call_timeout())

    def _usable(self, spec: CollectionSpec, index: int, replica: int) -> bool:
        return not self._replicas.breaker.suspect(spec.node_of(index, replica))

    async def repair_shard(self, spec: CollectionSpec, index: int) -> int:
        """Bring every replica of one shard to the most advanced one's LSN; then check for divergence."""
        timeout = self._settings.probe_timeout_s  # a hung replica must not stall the round
        answered = await self._replicas.replica_lsns(spec, index, timeout)
        answered = {r: lsn for r, lsn in answered.items() if self._usable(spec, index, r)}
        if not answered:
            return 0
        state = self._replicas.shard_log(spec, index)
        if not state.synced:
            async with self._replicas.lock(spec, index):
                if not state.synced:
                    state.adopt(await self._replicas.replica_lsns(spec, index, timeout), list(replicas_of(spec)))
        fresh = set(state.up_to_date())
        source = max(answered, key=lambda r: (answered[r], r in fresh, -r))
        fixed = 0
        # A replica counted up to date but at a lower LSN is taking the write in flight: left alone.
        for r in answered:
            if r != source and r not in fresh and await self.catch_up(spec, index, source, r):
                fixed += 1
        if fixed == 0 and len(answered) == len(replicas_of(spec)) and len(set(answered.values())) == 1:
            fixed += await self._check_divergence(spec, index, fresh)
        return fixed

    async def catch_up(self, spec: CollectionSpec, index: int, source: int, target: int) -> bool:
        """Copy what target lacks from source; True once target counts as up to date again."""
        remaining = await self._copy_tail(spec, index, source, target, LOCKED_TAIL, self._call_timeout())
        if remaining is None:
            return False
        # Writes wait meanwhile: the calls get the short probe budget, so a replica hanging now holds them little.
        quick = self._settings.probe_timeout_s
        async with self._replicas.lock(spec, index):
            state = self._replicas.shard_log(spec, index)
            if await self._copy_tail(spec, index, source, target, 0, quick) != 0:
                return False
            try:
                lsn = int((await self._on(spec, index, target, lambda c: c.stats(quick), "Stats", quick)).last_lsn)
            except (ShoalError, TimeoutError):
                return False
            if lsn < state.lsn:
                return False  # the source itself is behind the acknowledged LSN: another round, another source
            self._replicas.caught_up(spec, index, target, lsn)
        log.info("replica %d of shard %d of %s caught up from replica %d (LSN %d)", target, index, spec.name, source,
                 lsn)
        return True

    async def _copy_tail(self, spec: CollectionSpec, index: int, source: int, target: int, leave: int,
                         timeout: float) -> int | None:
        """Apply source's records after target's LSN to target until at most `leave` remain; returns how many
        remain (None when a call failed: the next round tries again)."""
        try:
            at = int((await self._on(spec, index, target, lambda c: c.stats(timeout), "Stats", timeout)).last_lsn)
            for _ in range(MAX_PASSES):
                got: shard_pb2.ReadLogResponse = await self._on(
                    spec, index, source, lambda c, at=at: c.read_log(at, timeout), "ReadLog", timeout)
                if got.truncated:
                    at = await self._install_copy(spec, index, source, target)
                    self._metrics.catchups.labels("copy").inc()
                    continue
                if not got.records:
                    return 0
                records = list(got.records)
                stats = await self._on(spec, index, target, lambda c, rs=records: c.apply_log(rs, timeout), "ApplyLog",
                                       timeout)
                at = int(stats.last_lsn)
                self._metrics.catchups.labels("log").inc()
                left = int(got.last_lsn) - at
                if left <= leave:
                    return left
            return None
        except (ShoalError, TimeoutError) as exc:
            log.info("catch-up of replica %d of shard %d of %s from replica %d paused: %s", target, index, spec.name,
                     source, exc)
            return None

    async def _install_copy(self, spec: CollectionSpec, index: int, source: int, target: int) -> int:
        """Replace target's content by a consistent copy of source's; returns the LSN the copy stands for."""
        self._replicas.mark_behind(spec, index, target)
        timeout = self._settings.shard_timeout_s

        async def install(c: ShardClient) -> shard_pb2.ShardStats:
            src = await self._pool.client(spec, index, source)
            return await c.install(src.copy(timeout), timeout)

        stats = await asyncio.wait_for(self._pool.call(spec, index, install, "InstallPartition", replica=target,
                                                       patience=0), timeout)
        log.warning("replica %d of shard %d of %s replaced by a copy of replica %d at LSN %d", target, index,
                    spec.name, source, stats.last_lsn)
        return int(stats.last_lsn)

    async def _check_divergence(self, spec: CollectionSpec, index: int, fresh: set[int]) -> int:
        """Replicas at one LSN with other content are replaced by the winner's copy (see the module's rule)."""
        key = (spec.uid, index)
        interval = self._settings.checksum_interval_s
        if interval <= 0 or time.monotonic() - self._checked.get(key, -interval) < interval:
            return 0
        timeout = self._call_timeout()
        sums: dict[int, tuple[int, int, int]] = {}
        for r in replicas_of(spec):
            with contextlib.suppress(ShoalError, TimeoutError):
                s = await self._on(spec, index, r, lambda c: c.stats(timeout, checksum=True), "Stats")
                sums[r] = (int(s.checksum_lsn), int(s.checksum_live), s.checksum)
        if len(sums) < len(replicas_of(spec)) or len({v[0] for v in sums.values()}) != 1:
            return 0  # not all at one LSN any more: a later round compares
        self._checked[key] = time.monotonic()
        votes = Counter(sums.values())
        if len(votes) == 1:
            return 0
        top = max(votes.values())
        winners = [r for r in sorted(sums, key=lambda r: (r not in fresh, r)) if votes[sums[r]] == top]
        winner = winners[0]
        losers = [r for r in sums if sums[r] != sums[winner]]
        self._metrics.divergences.inc(len(losers))
        log.error("shard %d of %s: replicas %s hold other content than replica %d at LSN %d (live, checksum: %s); "
                  "replacing them by its copy", index, spec.name, losers, winner, sums[winner][0], sums)
        fixed = 0
        for r in losers:
            try:
                await self._install_copy(spec, index, winner, r)
            except (ShoalError, TimeoutError) as exc:
                log.warning("replacing replica %d of shard %d of %s failed: %s", r, index, spec.name, exc)
                continue
            if await self.catch_up(spec, index, winner, r):
                fixed += 1
        return fixed

