"""Calls to shards: one client per shard, concurrent fan-out, re-resolution after a shard restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from coordinator.catalog import CollectionSpec
from coordinator.deadline import deadline
from coordinator.metrics import CoordinatorMetrics
from coordinator.settings import CoordinatorSettings
from coordinator.shards import ShardPlacer
from protos.errors import Unavailable
from shard_node.client import ShardClient

T = TypeVar("T")
ShardCall = Callable[[ShardClient], Awaitable[T]]


class ShardPool:
    """Keeps a client per live shard and finds a shard again when it has moved."""

    def __init__(self, placer: ShardPlacer, settings: CoordinatorSettings, metrics: CoordinatorMetrics) -> None:
        self._placer = placer
        self._settings = settings
        self._metrics = metrics
        self._clients: dict[tuple[str, int], ShardClient] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def _client(self, spec: CollectionSpec, index: int, stale: ShardClient | None = None) -> ShardClient:
        key = (spec.uid, index)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            current = self._clients.get(key)
            if current is not None and current is not stale:
                return current
            where = await asyncio.to_thread(self._placer.locate, spec, index)
            client = ShardClient(where.address, self._settings.max_message_bytes)
            self._clients[key] = client
            if stale is not None:
                await stale.close()
            return client

    async def call(self, spec: CollectionSpec, index: int, fn: ShardCall[T], method: str) -> T:
        """Run fn against one shard; if it is unreachable, wait for Ray to bring it back and retry."""
        give_up = deadline(self._settings.shard_restart_wait_s)
        client = await self._client(spec, index)
        while True:
            start = time.perf_counter()
            try:
                result = await fn(client)
            except Unavailable:
                self._metrics.shard_calls.labels("unavailable").inc()
                if time.monotonic() >= give_up:
                    raise Unavailable(f"shard {index} of collection {spec.name!r} is unavailable") from None
                await asyncio.sleep(0.2)
                client = await self._client(spec, index, stale=client)
                continue
            except Exception:
                self._metrics.shard_calls.labels("error").inc()
                raise
            self._metrics.shard_calls.labels("ok").inc()
            self._metrics.shard_latency.labels(method).observe(time.perf_counter() - start)
            return result

    async def each(self, spec: CollectionSpec, indices: Sequence[int],
                   fn: Callable[[int, ShardClient], Awaitable[T]], method: str) -> list[T]:
        """fn on every listed shard concurrently; results in the order of `indices`."""
        self._metrics.fanout_width.observe(len(indices))
        return list(await asyncio.gather(*(
            self.call(spec, i, lambda c, i=i: fn(i, c), method) for i in indices
        )))

    async def forget(self, spec: CollectionSpec) -> None:
        """Close the clients of a dropped collection."""
        for i in range(spec.shards):
            client = self._clients.pop((spec.uid, i), None)
            if client is not None:
                await client.close()
