"""The circuit breaker: a tripped node is suspect until a probe answers; probes that fail or hang keep it so."""

from __future__ import annotations

import asyncio

from coordinator.breaker import Breaker


def test_trip_clear_and_order() -> None:
    now = [0.0]
    changes: list[int] = []
    b = Breaker(changes.append, clock=lambda: now[0])
    b.trip(3, "slow")
    now[0] = 1.0
    b.trip(1, "slow")
    b.trip(3, "again")  # already suspect: keeps its first time
    assert b.suspect(3) and b.suspect(1) and not b.suspect(0)
    assert b.suspects() == [3, 1]
    b.clear(3)
    b.clear(7)  # never suspect: nothing changes
    assert b.suspects() == [1] and changes == [1, 2, 1]


def test_probe_clears_only_nodes_that_answer_in_time() -> None:
    b = Breaker()
    for n in (0, 1, 2):
        b.trip(n, "slow")

    async def probe(node: int) -> None:
        if node == 1:
            raise ConnectionError("refused")
        if node == 2:
            await asyncio.sleep(10)  # hung: the probe's timeout cuts it off

    cleared = asyncio.run(b.probe_once(probe, 0.05))
    assert cleared == [0] and b.suspects() == [1, 2]
