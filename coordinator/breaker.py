"""Circuit breaker over shard nodes: a node that was slow to answer is suspect (reads avoid it) until it
answers a health probe again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("shoal.coordinator.breaker")
Probe = Callable[[int], Awaitable[object]]  # raises when the node does not answer


class Breaker:
    """Which shard nodes are suspect, since when, and why."""

    def __init__(self, on_change: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._suspect: dict[int, float] = {}
        self._on_change = on_change
        self._clock = clock

    def trip(self, node: int, why: str) -> None:
        """Mark a node suspect (it did not answer in time)."""
        if node not in self._suspect:
            self._suspect[node] = self._clock()
            log.warning("shard node %d is suspect: %s; reads avoid it until it answers a probe", node, why)
            self._changed()

    def clear(self, node: int) -> None:
        """A node answered a probe: it serves again."""
        if self._suspect.pop(node, None) is not None:
            log.info("shard node %d answered a probe; it serves reads again", node)
            self._changed()

    def suspect(self, node: int) -> bool:
        """Whether reads should avoid the node."""
        return node in self._suspect

    def suspects(self) -> list[int]:
        """Every suspect node, longest suspect first."""
        return sorted(self._suspect, key=self._suspect.__getitem__)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(len(self._suspect))

    async def probe_once(self, probe: Probe, timeout: float) -> list[int]:
        """Probe every suspect node once, side by side; clear those that answer; returns the ones cleared."""
        nodes = self.suspects()

        async def one(node: int) -> bool:
            try:
                await asyncio.wait_for(probe(node), timeout)
            except Exception:  # noqa: BLE001 - any failure keeps it suspect
                return False
            return True

        answered = await asyncio.gather(*(one(n) for n in nodes))
        cleared = [n for n, ok in zip(nodes, answered, strict=True) if ok]
        for n in cleared:
            self.clear(n)
        return cleared

    async def run(self, probe: Probe, interval: float, timeout: float) -> None:
        """Probe suspect nodes every interval until cancelled."""
        while True:
            with contextlib.suppress(Exception):
                await self.probe_once(probe, timeout)
            await asyncio.sleep(interval)
