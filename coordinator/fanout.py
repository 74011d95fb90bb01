"""Calls to shard replicas: one client per shard node, re-resolution after a node restarts, bounded patience."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from coordinator.catalog import CollectionSpec
from coordinator.deadline import deadline
from coordinator.discovery import ShardTargets
from coordinator.metrics import CoordinatorMetrics
from coordinator.settings import CoordinatorSettings
from coordinator.shards import ShardLocation, ShardPlacer
from protos.errors import DiskUnavailable, Unavailable
from shard_node.client import NodeClient, ShardClient

T = TypeVar("T")
ShardCall = Callable[[ShardClient], Awaitable[T]]
Key = tuple[str, int, int]  # collection uid, shard index, replica
RETRY_PAUSE_S = 0.2
STALE_CLOSE_DELAY_S = 10.0  # calls still running on a replaced channel finish (or fail) before it closes


class ShardPool:
    """Keeps a client per shard node and finds a node again when Ray has restarted it elsewhere.

    A call names a collection's shard replica; the pool sends it to the node hosting that partition.
    One look-up per node runs at a time, shared by every caller; a caller waits for it only as long as
    its own patience allows, so a request that accepts partial results is not held up by a dead node."""

    def __init__(self, placer: ShardPlacer, settings: CoordinatorSettings, metrics: CoordinatorMetrics,
                 targets: ShardTargets | None = None) -> None:
        self._placer = placer
        self._settings = settings
        self._metrics = metrics
        self.targets = targets or ShardTargets()
        self._clients: dict[int, NodeClient] = {}
        self._machines: dict[int, str] = {}
        self._locating: dict[int, asyncio.Future[NodeClient]] = {}

    def _relocating(self, node: int, stale: NodeClient | None) -> asyncio.Future[NodeClient]:
        task = self._locating.get(node)
        if task is None:
            task = asyncio.ensure_future(self._relocate(node, stale))
            self._locating[node] = task

            def done(t: asyncio.Future[NodeClient]) -> None:
                if self._locating.get(node) is t:
                    del self._locating[node]
                if not t.cancelled():
                    t.exception()  # retrieved here; every waiter gets it too

            task.add_done_callback(done)
        return task

    async def _relocate(self, node: int, stale: NodeClient | None) -> NodeClient:
        where = await asyncio.to_thread(self._placer.locate, node)
        return self._connect(node, where, stale)

    def _connect(self, node: int, where: ShardLocation, stale: NodeClient | None) -> NodeClient:
        self.targets.located(node, where.address, where.metrics_port)
        self._machines[node] = where.machine
        current = self._clients.get(node)
        if current is not None and current.address == where.address and current is not stale:
            return current
        client = NodeClient(where.address, self._settings.max_message_bytes, self._settings.internal_tls())
        self._clients[node] = client
        old = stale or current
        if old is not None:
            asyncio.get_running_loop().call_later(STALE_CLOSE_DELAY_S, lambda: asyncio.ensure_future(old.close()))
        return client

    async def _node_client(self, node: int, stale: NodeClient | None, wait_s: float) -> NodeClient:
        current = self._clients.get(node)
        if current is not None and current is not stale:
            return current
        task = self._relocating(node, stale)
        try:
            return await asyncio.wait_for(asyncio.shield(task), max(wait_s, 0.001))
        except TimeoutError:
            raise Unavailable(f"shard node {node} is restarting") from None

    async def call_node(self, node: int, fn: Callable[[NodeClient], Awaitable[T]], method: str,
                        patience: float | None = None, what: str = "") -> T:
        """Run fn against one shard node; while it is unreachable, wait for Ray to bring it back and retry.

        `patience` bounds that wait (default: shard_restart_wait_s); 0 means one attempt."""
        what = what or f"shard node {node}"
        wait = self._settings.shard_restart_wait_s if patience is None else patience
        give_up = deadline(wait)
        client = await self._node_client(node, None, give_up - time.monotonic())
        while True:
            start = time.perf_counter()
            try:
                result = await fn(client)
            except DiskUnavailable:  # the node answered: waiting for it to come back would not help
                self._metrics.shard_calls.labels("error").inc()
                raise
            except Unavailable:
                self._metrics.shard_calls.labels("unavailable").inc()
                left = give_up - time.monotonic()
                if left <= 0:
                    self._relocating(node, client)  # so that later calls find it sooner
                    raise Unavailable(f"{what} is unavailable (shard node {node} at {client.address})") from None
                await asyncio.sleep(min(RETRY_PAUSE_S, left))
                client = await self._node_client(node, client, give_up - time.monotonic())
                continue
            except Exception:
                self._metrics.shard_calls.labels("error").inc()
                raise
            self._metrics.shard_calls.labels("ok").inc()
            self._metrics.node_latency.labels(str(node), method).observe(time.perf_counter() - start)
            return result

    async def call(self, spec: CollectionSpec, index: int, fn: ShardCall[T], method: str, replica: int = 0,
                   patience: float | None = None) -> T:
        """Run fn against one shard replica, on the node that hosts it (see call_node for the waiting)."""
        key = spec.partition_key(index, replica)
        start = time.perf_counter()
        result = await self.call_node(spec.node_of(index, replica), lambda c: fn(c.partition(key)), method,
                                      patience, what=f"shard {index} (replica {replica}) of collection {spec.name!r}")
        self._metrics.shard_latency.labels(spec.name, str(index), method).observe(time.perf_counter() - start)
        return result

    async def client(self, spec: CollectionSpec, index: int, replica: int) -> ShardClient:
        """A client of one shard replica as its node serves now (no retries: for streams the caller drives)."""
        node = spec.node_of(index, replica)
        client = await self._node_client(node, None, self._settings.repair_call_timeout_s)
        return client.partition(spec.partition_key(index, replica))

    def nodes_located(self, where: list[ShardLocation]) -> None:
        """Record where shard nodes 0..n-1 serve (the placer's answer, in node order)."""
        for node, w in enumerate(where):
            self._connect(node, w, None)

    def machines(self, nodes: int) -> list[str]:
        """The machine (Ray node) each of shard nodes 0..nodes-1 was last found on ("" = not known)."""
        return [self._machines.get(n, "") for n in range(nodes)]

    async def forget(self, spec: CollectionSpec) -> None:
        """Drop a dropped collection's per-shard series (the node clients stay: other collections use them)."""
        self._metrics.forget_collection(spec.name)
