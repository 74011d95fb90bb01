"""Replicated shards: writes go to every replica in one order before they count; reads go to one healthy replica.

A replica that fails a write its peers applied is behind: it is kept out of reads until the writes it missed
have been replayed to it, in order, before any newer write (hinted hand-off, held in the coordinator's memory).
A replica that merely restarted is not behind: it recovers every write it acknowledged from its own WAL
before it serves, and writes to its shard wait for it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from coordinator.catalog import CollectionSpec
from coordinator.deadline import time_left
from coordinator.fanout import Key, ShardPool
from coordinator.metrics import CoordinatorMetrics
from coordinator.settings import CoordinatorSettings
from coordinator.shards import replicas_of
from protos.errors import DeadlineExceeded, ShoalError, Unavailable
from shard_node.client import ShardClient

T = TypeVar("T")
PARTIAL_BUDGET_SHARE = 0.8  # of the request's time left: the rest is for merging and replying
ShardFn = Callable[[int, ShardClient], Awaitable[T]]
log = logging.getLogger("shoal.coordinator.replicas")


@dataclass
class ReplicaAnswer(Generic[T]):
    """One replica's answer, or why it gave none."""

    index: int
    replica: int
    result: T | None
    error: ShoalError | None


class Replicator:
    """Routes a collection's shard calls over the replicas of each shard."""

    def __init__(self, pool: ShardPool, settings: CoordinatorSettings, metrics: CoordinatorMetrics) -> None:
        self.pool = pool
        self._settings = settings
        self.metrics = metrics
        self._write_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._missed: dict[Key, list[Callable[[ShardClient], Awaitable[object]]]] = {}
        self._turn: dict[tuple[str, int], int] = {}

    def _lock(self, spec: CollectionSpec, index: int) -> asyncio.Lock:
        key = (spec.uid, index)
        lock = self._write_locks.get(key)
        if lock is None:
            lock = self._write_locks[key] = asyncio.Lock()
        return lock

    def behind(self, spec: CollectionSpec, index: int, replica: int) -> int:
        """Writes a replica has missed and not yet been given."""
        return len(self._missed.get((spec.uid, index, replica), ()))

    # ---- writes --------------------------------------------------------------------------
    async def write(self, spec: CollectionSpec, indices: Sequence[int], fn: ShardFn[T], method: str) -> list[T]:
        """fn on every replica of every listed shard; each shard's replicas see its writes in the same order."""
        self.metrics.fanout_width.observe(len(indices))
        return list(await asyncio.gather(*(self._write_shard(spec, i, fn, method) for i in indices)))

    async def _write_shard(self, spec: CollectionSpec, index: int, fn: ShardFn[T], method: str) -> T:
        async with self._lock(spec, index):
            replicas = list(replicas_of(spec))
            answers = await asyncio.gather(*(self._write_replica(spec, index, r, fn, method) for r in replicas),
                                           return_exceptions=True)
            failed = [r for r, a in zip(replicas, answers, strict=True) if isinstance(a, BaseException)]
            if not failed:
                return answers[0]  # type: ignore[return-value]
            if len(failed) < len(replicas):
                for r in failed:  # its peers applied this write: it must get it before it serves again
                    self._missed.setdefault((spec.uid, index, r), []).append(lambda c, i=index: fn(i, c))
                    log.warning("replica %d of shard %d of %s missed a write; it is out of reads until it has it",
                                r, index, spec.name)
            error = next(a for a in answers if isinstance(a, BaseException))
            raise error

    async def _write_replica(self, spec: CollectionSpec, index: int, replica: int, fn: ShardFn[T],
                             method: str) -> T:
        await self._hand_over(spec, index, replica)
        return await self.pool.call(spec, index, lambda c: fn(index, c), method, replica=replica)

    async def _hand_over(self, spec: CollectionSpec, index: int, replica: int) -> None:
        """Replay the writes a replica missed, oldest first (caller holds the shard's write lock)."""
        missed = self._missed.get((spec.uid, index, replica))
        while missed:
            await self.pool.call(spec, index, missed[0], "HandOver", replica=replica)
            missed.pop(0)
        self._missed.pop((spec.uid, index, replica), None)

    async def heal(self, spec: CollectionSpec) -> int:
        """Hand missed writes to the replicas of a collection that are back; returns how many are still behind."""
        behind = 0
        for (uid, index, replica) in list(self._missed):
            if uid != spec.uid:
                continue
            async with self._lock(spec, index):
                try:
                    await self._hand_over(spec, index, replica)
                except ShoalError:
                    behind += 1
        return behind

    # ---- reads ---------------------------------------------------------------------------
    def read_order(self, spec: CollectionSpec, index: int) -> list[int]:
        """Replicas to try, up to date ones first, rotating so that reads spread over them."""
        key = (spec.uid, index)
        turn = self._turn.get(key, 0)
        self._turn[key] = turn + 1
        n = max(spec.replication_factor, 1)
        order = [(turn + j) % n for j in range(n)]
        return [r for r in order if not self.behind(spec, index, r)] or order

    async def _read_shard(self, spec: CollectionSpec, index: int, fn: ShardFn[T], method: str,
                          patience: float | None) -> T:
        order = self.read_order(spec, index)
        for r in order[:-1]:  # a replica that does not answer at once makes way for the next
            try:
                return await self.pool.call(spec, index, lambda c: fn(index, c), method, replica=r, patience=0)
            except Unavailable:
                continue
        return await self.pool.call(spec, index, lambda c: fn(index, c), method, replica=order[-1], patience=patience)

    async def read(self, spec: CollectionSpec, indices: Sequence[int], fn: ShardFn[T], method: str,
                   allow_partial: bool = False) -> tuple[list[T | None], list[int]]:
        """fn on one replica of each listed shard: (results in the order of indices, shards that did not answer).

        Without allow_partial a shard that stays down fails the whole call with UNAVAILABLE. With it, a shard
        that is down (or hangs: its node went away) is left out once partial_wait_s has passed, or once most of
        the request's time is spent, so the answer still reaches the caller before its deadline."""
        self.metrics.fanout_width.observe(len(indices))
        patience = self._settings.partial_wait_s if allow_partial else None
        answers = await self._gather([self._read_shard(spec, i, fn, method, patience) for i in indices], allow_partial)
        results: list[T | None] = []
        missing: list[int] = []
        for i, a in zip(indices, answers, strict=True):
            if isinstance(a, Unavailable | DeadlineExceeded | TimeoutError):
                missing.append(i)
                results.append(None)
            elif isinstance(a, BaseException):
                raise a
            else:
                results.append(a)
        if missing:
            self.metrics.partial_answers.inc()
        return results, missing

    async def _gather(self, calls: list[Awaitable[T]], allow_partial: bool) -> list[T | BaseException]:
        """Await calls together. Allowing partial answers, a call still running when most of the request's time
        is spent is cut off (TimeoutError in its place) so the answer reaches the caller before its deadline."""
        if not allow_partial:
            return list(await asyncio.gather(*calls))
        budget = time_left(self._settings.shard_timeout_s) * PARTIAL_BUDGET_SHARE
        return list(await asyncio.gather(*(asyncio.wait_for(c, budget) for c in calls), return_exceptions=True))

    async def each_replica(self, spec: CollectionSpec, fn: ShardFn[T], method: str,
                           allow_partial: bool = False) -> list[ReplicaAnswer[T]]:
        """fn on every replica of every shard. Allowing partial answers, replicas that are down or do not answer
        in time are reported with their error instead of being waited for."""
        keys = [(i, r) for i in range(spec.shards) for r in replicas_of(spec)]
        patience = self._settings.partial_wait_s if allow_partial else None
        answers = await self._gather([self.pool.call(spec, i, lambda c, i=i: fn(i, c), method, replica=r,
                                                     patience=patience) for i, r in keys], allow_partial)
        out: list[ReplicaAnswer[T]] = []
        for (i, r), a in zip(keys, answers, strict=True):
            if isinstance(a, TimeoutError):
                a = Unavailable(f"shard {i} (replica {r}) of collection {spec.name!r} did not answer in time")
            if isinstance(a, ShoalError):
                out.append(ReplicaAnswer(i, r, None, a))
            elif isinstance(a, BaseException):
                raise a
            else:
                out.append(ReplicaAnswer(i, r, a, None))
        return out
