"""Calls to shard replicas: one client per replica, re-resolution after a replica restarts, bounded patience."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from coordinator.catalog import CollectionSpec
from coordinator.deadline import deadline
from coordinator.discovery import ShardTargets
from coordinator.metrics import CoordinatorMetrics
from coordinator.settings import CoordinatorSettings
from coordinator.shards import ShardLocation, ShardPlacer, replicas_of
from protos.errors import Unavailable
from shard_node.client import ShardClient

T = TypeVar("T")
ShardCall = Callable[[ShardClient], Awaitable[T]]
Key = tuple[str, int, int]  # collection uid, shard index, replica
RETRY_PAUSE_S = 0.2
STALE_CLOSE_DELAY_S = 10.0  # calls still running on a replaced channel finish (or fail) before it closes


class ShardPool:
    """Keeps a client per live shard replica and finds a replica again when Ray has restarted it elsewhere.

    One look-up per replica runs at a time, shared by every caller; a caller waits for it only as long as
    its own patience allows, so a request that accepts partial results is not held up by a dead shard."""

    def __init__(self, placer: ShardPlacer, settings: CoordinatorSettings, metrics: CoordinatorMetrics,
                 targets: ShardTargets | None = None) -> None:
        self._placer = placer
        self._settings = settings
        self._metrics = metrics
        self.targets = targets or ShardTargets()
        self._clients: dict[Key, ShardClient] = {}
        self._locating: dict[Key, asyncio.Future[ShardClient]] = {}

    def _relocating(self, spec: CollectionSpec, index: int, replica: int,
                    stale: ShardClient | None) -> asyncio.Future[ShardClient]:
        key = (spec.uid, index, replica)
        task = self._locating.get(key)
        if task is None:
            task = asyncio.ensure_future(self._relocate(spec, index, replica, stale))
            self._locating[key] = task

            def done(t: asyncio.Future[ShardClient]) -> None:
                if self._locating.get(key) is t:
                    del self._locating[key]
                if not t.cancelled():
                    t.exception()  # retrieved here; every waiter gets it too

            task.add_done_callback(done)
        return task

    async def _relocate(self, spec: CollectionSpec, index: int, replica: int,
                        stale: ShardClient | None) -> ShardClient:
        where = await asyncio.to_thread(self._placer.locate, spec, index, replica)
        self.targets.located(spec, index, replica, where.address, where.metrics_port)
        client = ShardClient(where.address, self._settings.max_message_bytes, self._settings.internal_tls())
        self._clients[(spec.uid, index, replica)] = client
        if stale is not None:
            asyncio.get_running_loop().call_later(STALE_CLOSE_DELAY_S, lambda: asyncio.ensure_future(stale.close()))
        return client

    async def _client(self, spec: CollectionSpec, index: int, replica: int, stale: ShardClient | None,
                      wait_s: float) -> ShardClient:
        current = self._clients.get((spec.uid, index, replica))
        if current is not None and current is not stale:
            return current
        task = self._relocating(spec, index, replica, stale)
        try:
            return await asyncio.wait_for(asyncio.shield(task), max(wait_s, 0.001))
        except TimeoutError:
            raise Unavailable(f"shard {index} (replica {replica}) of collection {spec.name!r} is restarting") from None

    async def call(self, spec: CollectionSpec, index: int, fn: ShardCall[T], method: str, replica: int = 0,
                   patience: float | None = None) -> T:
        """Run fn against one replica; while it is unreachable, wait for Ray to bring it back and retry.

        `patience` bounds that wait (default: shard_restart_wait_s); 0 means one attempt."""
        wait = self._settings.shard_restart_wait_s if patience is None else patience
        give_up = deadline(wait)
        client = await self._client(spec, index, replica, None, give_up - time.monotonic())
        while True:
            start = time.perf_counter()
            try:
                result = await fn(client)
            except Unavailable:
                self._metrics.shard_calls.labels("unavailable").inc()
                left = give_up - time.monotonic()
                if left <= 0:
                    self._relocating(spec, index, replica, client)  # so that later calls find it sooner
                    raise Unavailable(f"shard {index} (replica {replica}) of collection {spec.name!r} "
                                      "is unavailable") from None
                await asyncio.sleep(min(RETRY_PAUSE_S, left))
                client = await self._client(spec, index, replica, client, give_up - time.monotonic())
                continue
            except Exception:
                self._metrics.shard_calls.labels("error").inc()
                raise
            self._metrics.shard_calls.labels("ok").inc()
            self._metrics.shard_latency.labels(spec.name, str(index), method).observe(time.perf_counter() - start)
            return result

    def located(self, spec: CollectionSpec, where: list[ShardLocation]) -> None:
        """Record where every replica of a collection serves (the placer's answer, in shard then replica order)."""
        keys = [(i, r) for i in range(spec.shards) for r in replicas_of(spec)]
        for (i, r), w in zip(keys, where, strict=True):
            self.targets.located(spec, i, r, w.address, w.metrics_port)

    async def forget(self, spec: CollectionSpec) -> None:
        """Close the clients of a dropped collection and drop its discovery targets and per-shard series."""
        self.targets.forget(spec)
        self._metrics.forget_collection(spec.name)
        for i in range(spec.shards):
            for r in replicas_of(spec):
                client = self._clients.pop((spec.uid, i, r), None)
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()
