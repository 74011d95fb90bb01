"""Concurrent reads of one key leave as one batch while others are in flight; each gets its own rows back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np
import pytest

from coordinator.catalog import CollectionSpec
from coordinator.coalesce import UNBOUNDED_S, Coalescer
from coordinator.deadline import deadline, set_request_deadline
from coordinator.read_path import ReadRequest, ReadResult
from protos.errors import Unavailable

SPEC = CollectionSpec("c", "u", 2, "cosine", 1, 16, 200, 64, "2026-01-01T00:00:00Z")


class Nodes:
    """Stands in for the read path: answers each row with an id naming the row's first value; can be held."""

    def __init__(self) -> None:
        self.calls: list[ReadRequest] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None

    async def run(self, spec: CollectionSpec, req: ReadRequest, allow_partial: bool) -> ReadResult:
        self.calls.append(req)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        ids = np.array([[f"q{int(v)}"] * req.k for v in req.queries[:, 0]], dtype=object).reshape(-1, req.k)
        dists = np.repeat(req.queries[:, :1], req.k, axis=1).astype(np.float32)
        return ReadResult(ids, dists, [], np.empty(0, np.float32), {}, [], stage_ms={"fanout": 1.0})


def _req(value: float, k: int = 3, explain: bool = False) -> ReadRequest:
    return ReadRequest(np.array([[value, 0.0]], dtype=np.float32), k, explain=explain)


def _coalescer(nodes: Nodes, in_flight: int = 1, max_rows: int = 100) -> tuple[Coalescer, list[int]]:
    sizes: list[int] = []
    return Coalescer(nodes.run, in_flight, max_rows, sizes.append), sizes


async def _started(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def _held(nodes: Nodes, c: Coalescer, values: Sequence[float], k: int = 3) -> list[asyncio.Future[ReadResult]]:
    """Reads of `values` started while the nodes hold every answer (until nodes.release is set)."""
    nodes.release.clear()
    tasks = [asyncio.ensure_future(c.run(SPEC, _req(v, k), False)) for v in values]
    await _started(len(values) + 2)
    return tasks


def test_reads_waiting_behind_one_in_flight_travel_as_one_batch() -> None:
    async def main() -> None:
        nodes = Nodes()
        c, sizes = _coalescer(nodes)
        (first,) = await _held(nodes, c, [1])
        later = [asyncio.ensure_future(c.run(SPEC, _req(v), False)) for v in (2, 3, 4)]
        await _started(3)
        assert len(nodes.calls) == 1  # the three wait
        nodes.release.set()
        results = await asyncio.gather(first, *later)
        assert [len(r.queries) for r in nodes.calls] == [1, 3]
        assert sizes == [3]
        for v, r in zip((1, 2, 3, 4), results, strict=True):
            assert r.ids.tolist() == [[f"q{v}"] * 3] and r.distances.shape == (1, 3)
        assert results[1].stage_ms is not results[2].stage_ms
        assert not c._lanes  # nothing left behind
    asyncio.run(main())


def test_a_lone_read_and_reads_of_other_keys_never_wait() -> None:
    async def main() -> None:
        nodes = Nodes()
        c, sizes = _coalescer(nodes)
        assert (await c.run(SPEC, _req(7), False)).ids.tolist() == [["q7"] * 3]
        (held,) = await _held(nodes, c, [1])
        others = [asyncio.ensure_future(c.run(SPEC, r, p)) for r, p in
                  ((_req(2, k=5), False), (_req(3, explain=True), False), (_req(4), True))]
        await _started(3)
        assert len(nodes.calls) == 5  # another k, an explain, another allow_partial: each went straight out
        nodes.release.set()
        await asyncio.gather(held, *others)
        assert sizes == []
    asyncio.run(main())


def test_a_batch_holds_at_most_max_rows_and_the_rest_follows() -> None:
    async def main() -> None:
        nodes = Nodes()
        c, sizes = _coalescer(nodes, max_rows=2)
        tasks = await _held(nodes, c, range(6))
        nodes.release.set()
        results = await asyncio.gather(*tasks)
        assert [len(r.queries) for r in nodes.calls] == [1, 2, 2, 1]
        assert [r.ids[0, 0] for r in results] == [f"q{v}" for v in range(6)]
    asyncio.run(main())


def test_a_batch_error_reaches_every_member_and_a_caller_that_left_is_skipped() -> None:
    async def main() -> None:
        nodes = Nodes()
        c, _ = _coalescer(nodes)
        (first,) = await _held(nodes, c, [1])
        gone = asyncio.ensure_future(c.run(SPEC, _req(2), False))
        waiting = [asyncio.ensure_future(c.run(SPEC, _req(v), False)) for v in (3, 4)]
        await _started(3)
        gone.cancel()
        nodes.fail = Unavailable("shard node 0 is down")
        nodes.release.set()
        with pytest.raises(Unavailable):
            await first
        for t in waiting:
            with pytest.raises(Unavailable, match="node 0 is down"):
                await t
        assert [len(r.queries) for r in nodes.calls] == [1, 2]  # the cancelled read was not sent
        assert not c._lanes
    asyncio.run(main())


def test_in_flight_zero_turns_batching_off() -> None:
    async def main() -> None:
        nodes = Nodes()
        c, _ = _coalescer(nodes, in_flight=0)
        tasks = await _held(nodes, c, range(3))
        assert len(nodes.calls) == 3
        nodes.release.set()
        await asyncio.gather(*tasks)
    asyncio.run(main())


def test_a_batch_runs_under_its_members_latest_deadline() -> None:
    async def main() -> None:
        nodes = Nodes()
        seen: list[float] = []
        run = nodes.run

        async def recording(spec: CollectionSpec, req: ReadRequest, allow_partial: bool) -> ReadResult:
            seen.append(deadline(UNBOUNDED_S))
            return await run(spec, req, allow_partial)

        c = Coalescer(recording, 1, 100, lambda n: None)
        (first,) = await _held(nodes, c, [1])

        async def within(seconds: float | None, value: float) -> ReadResult:
            set_request_deadline(seconds)
            return await c.run(SPEC, _req(value), False)

        soon = asyncio.ensure_future(within(30.0, 2))
        late = asyncio.ensure_future(within(600.0, 3))
        await _started(3)
        nodes.release.set()
        await asyncio.gather(first, soon, late)
        assert len(seen) == 2 and seen[1] - time.monotonic() > 500  # the batch got the 600 s deadline
    asyncio.run(main())
