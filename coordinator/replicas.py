"""Replicated shards: every write carries one shard-wide LSN and counts once W replicas made it durable; reads go
only to replicas known to hold every acknowledged write, and a slow one is hedged.

What the coordinator knows of a shard (its last LSN, which replica holds it) is derived from the replicas' own
LSNs (Stats) whenever it is not known — at start-up, after a failed write — never kept only in memory: a
restarted coordinator asks the replicas. A replica that did not take a write is behind; writes skip it (it would
refuse them: its LSN does not follow) and reads avoid it until the repair loop (coordinator/repair.py) has
caught it up from a peer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from coordinator.breaker import Breaker
from coordinator.catalog import CollectionSpec
from coordinator.deadline import time_left
from coordinator.fanout import ShardPool
from coordinator.metrics import CoordinatorMetrics
from coordinator.settings import CoordinatorSettings
from coordinator.shards import replicas_of
from protos.errors import DeadlineExceeded, FailedPrecondition, ShoalError, Unavailable
from shard_node.client import ShardClient

T = TypeVar("T")
PARTIAL_BUDGET_SHARE = 0.8  # of the request's time left: the rest is for merging and replying
UNKNOWN = -1                # a replica whose LSN the coordinator does not know: neither read nor written
ShardFn = Callable[[int, ShardClient], Awaitable[T]]
WriteFn = Callable[[int, ShardClient, int], Awaitable[T]]  # (shard, client, lsn of this write)
log = logging.getLogger("shoal.coordinator.replicas")


def _seen(task: asyncio.Future[object]) -> None:
    """Mark a replica call's outcome as looked at (the write path decides what it means)."""
    if not task.cancelled():
        task.exception()


@dataclass
class ReplicaAnswer(Generic[T]):
    """One replica's answer, or why it gave none."""

    index: int
    replica: int
    result: T | None
    error: ShoalError | None


@dataclass
class ShardLog:
    """What the coordinator knows of one shard's sequence: its last acknowledged LSN and each replica's."""

    lsn: int = 0
    known: dict[int, int] = field(default_factory=dict)  # replica -> LSN it is known to hold
    synced: bool = False  # False: derive lsn and known from the replicas before the next read or write

    def up_to_date(self) -> list[int]:
        """Replicas holding every acknowledged write."""
        return sorted(r for r, lsn in self.known.items() if lsn == self.lsn) if self.synced else []

    def adopt(self, answered: dict[int, int], replicas: Sequence[int]) -> None:
        """Take the replicas' own LSNs as the truth: the shard is at the highest (an acknowledged write reached at
        least one replica that answered; see README on a replica unreachable at that moment)."""
        self.lsn = max([self.lsn if self.synced else 0, *answered.values()])
        self.known = {r: answered.get(r, UNKNOWN) for r in replicas}
        self.synced = True


class Replicator:
    """Routes a collection's shard calls over the replicas of each shard."""

    def __init__(self, pool: ShardPool, settings: CoordinatorSettings, metrics: CoordinatorMetrics,
                 breaker: Breaker | None = None) -> None:
        self.pool = pool
        self._settings = settings
        self.metrics = metrics
        self.breaker = breaker or Breaker(metrics.suspect_nodes.set)
        self._write_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._logs: dict[tuple[str, int], ShardLog] = {}
        self._turn: dict[tuple[str, int], int] = {}
        self._stragglers: set[asyncio.Task[None]] = set()

    def lock(self, spec: CollectionSpec, index: int) -> asyncio.Lock:
        """The lock that orders a shard's writes (the repair loop takes it to finish a catch-up)."""
        key = (spec.uid, index)
        lock = self._write_locks.get(key)
        if lock is None:
            lock = self._write_locks[key] = asyncio.Lock()
        return lock

    def shard_log(self, spec: CollectionSpec, index: int) -> ShardLog:
        """The coordinator's view of a shard's sequence."""
        return self._logs.setdefault((spec.uid, index), ShardLog())

    def up_to_date(self, spec: CollectionSpec, index: int, replica: int, reported: dict[int, int] | None = None
                   ) -> bool:
        """Whether a replica is known to hold every acknowledged write of its shard; for a shard not synced yet,
        whether it is at the highest of the LSNs its replicas just `reported`."""
        state = self.shard_log(spec, index)
        if state.synced or not reported:
            return replica in state.up_to_date()
        return reported.get(replica, UNKNOWN) == max(reported.values())

    def _count_behind(self) -> None:
        self.metrics.replicas_behind.set(sum(len(s.known) - len(s.up_to_date()) for s in self._logs.values()))

    async def replica_lsns(self, spec: CollectionSpec, index: int, timeout: float,
                           patience: float | None = 0.0) -> dict[int, int]:
        """Each answering replica's last LSN (replicas that do not answer within timeout are left out)."""
        async def one(r: int) -> tuple[int, int]:
            stats = await self.pool.call(spec, index, lambda c: c.stats(timeout), "Stats", replica=r,
                                         patience=patience)
            return r, int(stats.last_lsn)

        answers = await asyncio.gather(*(asyncio.wait_for(one(r), timeout) for r in replicas_of(spec)),
                                       return_exceptions=True)
        return dict(a for a in answers if isinstance(a, tuple))

    async def sync(self, spec: CollectionSpec, index: int) -> ShardLog:
        """Derive a shard's LSN and up-to-date replicas from the replicas themselves (caller holds its lock).

        When no replica answers at once, wait (shard_restart_wait_s) for Ray to bring one back."""
        state = self.shard_log(spec, index)
        timeout = min(self._settings.probe_timeout_s, time_left(self._settings.shard_timeout_s))
        answered = await self.replica_lsns(spec, index, timeout)
        if not answered:
            answered = await self.replica_lsns(spec, index, time_left(self._settings.shard_restart_wait_s),
                                               patience=None)
        if not answered:
            raise Unavailable(f"no replica of shard {index} of collection {spec.name!r} answered")
        state.adopt(answered, list(replicas_of(spec)))
        self._count_behind()
        return state

    async def _synced(self, spec: CollectionSpec, index: int) -> ShardLog:
        state = self.shard_log(spec, index)
        if state.synced and state.up_to_date():
            return state
        async with self.lock(spec, index):
            if not (state.synced and state.up_to_date()):
                await self.sync(spec, index)
        return state

    def caught_up(self, spec: CollectionSpec, index: int, replica: int, lsn: int) -> None:
        """The repair loop brought a replica to `lsn` (the caller holds the shard's lock)."""
        state = self.shard_log(spec, index)
        if state.synced:
            state.known[replica] = lsn
            state.lsn = max(state.lsn, lsn)
        self._count_behind()

    def mark_behind(self, spec: CollectionSpec, index: int, replica: int) -> None:
        """Keep a replica out of reads and writes until it is caught up (its content is about to be replaced)."""
        state = self.shard_log(spec, index)
        if state.synced:
            state.known[replica] = UNKNOWN
        self._count_behind()

    # ---- writes --------------------------------------------------------------------------
    async def write(self, spec: CollectionSpec, indices: Sequence[int], fn: WriteFn[T], method: str) -> list[T]:
        """fn on the up-to-date replicas of every listed shard, each shard's writes in LSN order; a shard's part
        is acknowledged once its collection's write consistency is met."""
        self.metrics.fanout_width.observe(len(indices))
        return list(await asyncio.gather(*(self._write_shard(spec, i, fn, method) for i in indices)))

    async def _write_shard(self, spec: CollectionSpec, index: int, fn: WriteFn[T], method: str) -> T:
        try:
            return await self._write_shard_once(spec, index, fn, method)
        except FailedPrecondition:
            # Every replica refused the LSN: the coordinator's view was stale (they moved on without it). The
            # view is derived again from the replicas; nothing was written, so one more try is safe.
            return await self._write_shard_once(spec, index, fn, method)

    async def _write_shard_once(self, spec: CollectionSpec, index: int, fn: WriteFn[T], method: str) -> T:
        lock = self.lock(spec, index)
        await lock.acquire()
        handed_over = False
        try:
            state = self.shard_log(spec, index)
            if not state.synced:
                await self.sync(spec, index)
            targets = state.up_to_date()
            need = min(spec.write_quorum, max(spec.replication_factor, 1))
            if len(targets) < need:
                raise Unavailable(f"shard {index} of collection {spec.name!r} has {len(targets)} up-to-date "
                                  f"replica(s) (of {max(spec.replication_factor, 1)}); its write consistency needs "
                                  f"{need}: the others are catching up, retry shortly")
            lsn = state.lsn + 1
            calls = {r: asyncio.ensure_future(self.pool.call(spec, index, lambda c: fn(index, c, lsn), method,
                                                             replica=r)) for r in targets}
            for t in calls.values():
                t.add_done_callback(_seen)
            acked = await self._quorum(calls, need)
            if len(acked) < need:
                state.synced = False  # some replica may hold it: ask them all before the next write
                pending = [t for t in calls.values() if not t.done()]
                if pending:  # let them land (or not) before the shard's next write derives its LSN
                    await asyncio.wait(pending, timeout=self._settings.write_straggler_ms / 1000.0)
                errors = [t.exception() for t in calls.values() if t.done() and not t.cancelled() and t.exception()]
                raise errors[0] if errors else Unavailable(
                    f"shard {index} of collection {spec.name!r}: fewer than {need} replicas took the write")
            state.lsn = lsn
            for r in acked:
                state.known[r] = lsn
            for r, t in calls.items():
                if t.done() and r not in acked:
                    state.known[r] = UNKNOWN  # it failed or refused the write: the repair loop finds out why
            result = calls[acked[0]].result()
            pending = {r: t for r, t in calls.items() if not t.done()}
            if pending:
                # Acknowledged now; the shard's next write waits (a short budget) for the other replicas.
                task = asyncio.ensure_future(self._stragglers_done(spec, index, pending, lsn, lock))
                self._stragglers.add(task)
                task.add_done_callback(self._stragglers.discard)
                handed_over = True
            self._count_behind()
            return result
        finally:
            if not handed_over:
                lock.release()

    @staticmethod
    async def _quorum(calls: dict[int, asyncio.Future[T]], need: int) -> list[int]:
        """Wait until `need` calls succeeded or that can no longer happen; the replicas that succeeded."""
        pending = set(calls.values())
        while pending:
            ok = [r for r, t in calls.items() if t.done() and not t.cancelled() and t.exception() is None]
            if len(ok) >= need or len(ok) + len(pending) < need:
                break
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        return [r for r, t in calls.items() if t.done() and not t.cancelled() and t.exception() is None]

    async def _stragglers_done(self, spec: CollectionSpec, index: int, pending: dict[int, asyncio.Future[T]],
                               lsn: int, lock: asyncio.Lock) -> None:
        """Give replicas still writing `lsn` the straggler budget, then release the shard's write lock; a replica
        that did not make it is behind (its call goes on: if it lands, the repair loop starts from there)."""
        state = self.shard_log(spec, index)
        try:
            await asyncio.wait(pending.values(), timeout=self._settings.write_straggler_ms / 1000.0)
            for r, t in pending.items():
                if t.done():
                    if not t.cancelled() and t.exception() is None:
                        state.known[r] = max(state.known.get(r, UNKNOWN), lsn)
                    else:
                        state.known[r] = UNKNOWN
                    continue
                self.breaker.trip(spec.node_of(index, r), f"a write to shard {index} of {spec.name!r} took longer "
                                                          f"than {self._settings.write_straggler_ms:.0f} ms")
            self._count_behind()
        finally:
            lock.release()

    # ---- reads ---------------------------------------------------------------------------
    async def read_orders(self, spec: CollectionSpec, indices: Sequence[int], wait: float | None = None
                          ) -> dict[int, list[int]]:
        """For each shard, its up-to-date replicas to try, rotating; replicas on suspect nodes go last. A shard
        whose replicas cannot say within `wait` (None: no limit) which of them are up to date gets none."""
        known = [self.shard_log(spec, i) for i in indices]
        if all(state.synced and state.up_to_date() for state in known):
            states: list[Any] = known  # the common case: no task per shard per read
        else:
            states = await asyncio.gather(*(asyncio.wait_for(self._synced(spec, i), wait) for i in indices),
                                          return_exceptions=wait is not None)
        orders = {}
        for i, state in zip(indices, states, strict=True):
            if isinstance(state, BaseException):
                if not isinstance(state, Unavailable | DeadlineExceeded | TimeoutError):
                    raise state
                orders[i] = []
                continue
            fresh = state.up_to_date()
            key = (spec.uid, i)
            turn = self._turn.get(key, 0)
            self._turn[key] = turn + 1
            rotated = [fresh[(turn + j) % len(fresh)] for j in range(len(fresh))]
            orders[i] = sorted(rotated, key=lambda r, i=i: self.breaker.suspect(spec.node_of(i, r)))
        return orders

    async def hedged(self, first: Callable[[], Awaitable[T]], node: int, hedge: Callable[[], Awaitable[T]] | None,
                     what: str) -> T:
        """first(); when it has not answered within hedge_after_ms (or failed as unavailable) and a hedge exists,
        hedge() too — the first success wins and the slow node is marked suspect."""
        if hedge is None:
            return await first()
        call = asyncio.ensure_future(first())
        done, _ = await asyncio.wait({call}, timeout=self._settings.hedge_after_ms / 1000.0)
        if done and (call.cancelled() or not isinstance(call.exception(), Unavailable | DeadlineExceeded)):
            return call.result()
        if not done:
            self.breaker.trip(node, f"{what} took longer than {self._settings.hedge_after_ms:.0f} ms")
            self.metrics.hedged_reads.inc()
        second = asyncio.ensure_future(hedge())
        racing = {call, second} if not done else {second}
        try:
            while racing:
                finished, racing = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
                for t in finished:
                    if t.exception() is None:
                        return t.result()
            return second.result()  # both failed: the hedge's error (it ran last)
        finally:
            for t in (call, second):
                if not t.done():
                    t.cancel()

    async def _read_shard(self, spec: CollectionSpec, index: int, order: list[int], fn: ShardFn[T], method: str,
                          patience: float | None) -> T:
        if not order:
            raise Unavailable(f"no replica of shard {index} of collection {spec.name!r} is known to be up to date")
        r, rest = order[0], order[1:]

        def first() -> Awaitable[T]:
            return self.pool.call(spec, index, lambda c: fn(index, c), method, replica=r,
                                  patience=0 if rest else patience)

        hedge = (lambda: self._read_shard(spec, index, rest, fn, method, patience)) if rest else None
        return await self.hedged(first, spec.node_of(index, r), hedge, f"a read of shard {index} of {spec.name!r}")

    async def read(self, spec: CollectionSpec, indices: Sequence[int], fn: ShardFn[T], method: str,
                   allow_partial: bool = False) -> tuple[list[T | None], list[int]]:
        """fn on one up-to-date replica of each listed shard: (results in the order of indices, shards that did
        not answer).

        Without allow_partial a shard that stays down fails the whole call with UNAVAILABLE. With it, a shard
        that is down (or hangs: its node went away) is left out once partial_wait_s has passed, or once most of
        the request's time is spent, so the answer still reaches the caller before its deadline."""
        self.metrics.fanout_width.observe(len(indices))
        patience = self._settings.partial_wait_s if allow_partial else None
        orders = await self.read_orders(spec, indices, patience)
        answers = await self._gather([self._read_shard(spec, i, orders[i], fn, method, patience) for i in indices],
                                     allow_partial)
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

        def ask(i: int, r: int) -> Awaitable[T]:
            call = self.pool.call(spec, i, lambda c: fn(i, c), method, replica=r, patience=patience)
            if allow_partial and self.breaker.suspect(spec.node_of(i, r)):
                return asyncio.wait_for(call, self._settings.probe_timeout_s)  # known to hang: not waited for
            return call

        answers = await self._gather([ask(i, r) for i, r in keys], allow_partial)
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

