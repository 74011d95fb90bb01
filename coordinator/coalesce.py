"""Concurrent searches that ask the same thing of the same collection travel to the nodes as one batch.

A read with no text match, no NOT and no explain differs from another only by its query rows when collection,
k, ef, payload flag, filter and plan inputs agree. While `in_flight` such reads of one key are on the nodes,
the next ones wait and leave together as one batch when a read finishes: one request per node instead of
one per query, and hnswlib searches the rows of a batch back to back. A lone client never waits (its read
finds nothing in flight), so single-query latency is unchanged; under concurrent load the node RPCs, the
coordinator's encode/merge and the nodes' per-request work are shared by a batch.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from coordinator.catalog import CollectionSpec
from coordinator.deadline import deadline
from coordinator.read_path import ReadRequest, ReadResult

Run = Callable[[CollectionSpec, ReadRequest, bool], Awaitable[ReadResult]]
Key = tuple[object, ...]
UNBOUNDED_S = 1e9   # "no deadline" when comparing members' deadlines


@dataclass
class _Waiting:
    """A read queued behind the ones in flight."""

    req: ReadRequest
    answer: asyncio.Future[ReadResult]
    context: contextvars.Context   # its deadline travels with it


@dataclass
class _Lane:
    """The reads of one key: how many are on the nodes, and who waits."""

    in_flight: int = 0
    waiting: list[_Waiting] = field(default_factory=list)


def _key(spec: CollectionSpec, req: ReadRequest, allow_partial: bool) -> Key | None:
    """What reads must share to travel together; None for one that travels alone."""
    if req.explain or req.match is not None or req.exclude or not len(req.queries):
        return None
    where = req.filter.SerializeToString(deterministic=True) if req.filter is not None else b""
    return (spec.uid, req.k, req.ef, req.with_payload, req.strategy, req.oversample, where, allow_partial)


def _rows(result: ReadResult, start: int, stop: int) -> ReadResult:
    """One member's rows of a batch's result (payloads are looked up by id, so the shared dict serves all)."""
    return dataclasses.replace(result, ids=result.ids[start:stop], distances=result.distances[start:stop],
                               missing_shards=list(result.missing_shards), stage_ms=dict(result.stage_ms))


class Coalescer:
    """Runs reads through `run`, batching those of one key that arrive while `in_flight` are on the nodes."""

    def __init__(self, run: Run, in_flight: int, max_rows: int, on_batch: Callable[[int], None]) -> None:
        self._run = run
        self._in_flight = in_flight
        self._max_rows = max_rows
        self._on_batch = on_batch       # told the size of every batch of more than one read
        self._lanes: dict[Key, _Lane] = {}

    async def run(self, spec: CollectionSpec, req: ReadRequest, allow_partial: bool) -> ReadResult:
        """The read's result, alone or as part of a batch."""
        key = _key(spec, req, allow_partial) if self._in_flight > 0 else None
        if key is None or len(req.queries) >= self._max_rows:
            return await self._run(spec, req, allow_partial)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        if lane.in_flight >= self._in_flight:
            answer: asyncio.Future[ReadResult] = asyncio.get_running_loop().create_future()
            lane.waiting.append(_Waiting(req, answer, contextvars.copy_context()))
            return await answer
        lane.in_flight += 1
        try:
            return await self._run(spec, req, allow_partial)
        finally:
            self._next(key, lane, spec, allow_partial)

    def _next(self, key: Key, lane: _Lane, spec: CollectionSpec, allow_partial: bool) -> None:
        """A read of the lane finished: send who waits as one batch (as many rows as a request may carry)."""
        lane.in_flight -= 1
        lane.waiting = [w for w in lane.waiting if not w.answer.done()]  # callers that gave up
        if not lane.waiting:
            if lane.in_flight == 0:
                del self._lanes[key]
            return
        batch, rows = [], 0
        while lane.waiting and rows + len(lane.waiting[0].req.queries) <= self._max_rows:
            w = lane.waiting.pop(0)
            batch.append(w)
            rows += len(w.req.queries)
        lane.in_flight += 1
        # The batch runs under the latest deadline among its members: an early one must not cut the others off
        # (a member whose own deadline passes is cancelled by its call and skipped).
        latest = max(batch, key=lambda w: w.context.run(deadline, UNBOUNDED_S))
        asyncio.get_running_loop().create_task(self._batch(key, lane, spec, allow_partial, batch),
                                               context=latest.context)

    async def _batch(self, key: Key, lane: _Lane, spec: CollectionSpec, allow_partial: bool,
                     batch: list[_Waiting]) -> None:
        try:
            if len(batch) > 1:
                self._on_batch(len(batch))
            req = dataclasses.replace(batch[0].req, queries=np.concatenate([w.req.queries for w in batch]))
            try:
                result = await self._run(spec, req, allow_partial)
            except BaseException as exc:  # noqa: BLE001 - every member hears the batch's error
                for w in batch:
                    if not w.answer.done():
                        if isinstance(exc, Exception):
                            w.answer.set_exception(exc)
                        else:
                            w.answer.cancel()
                if not isinstance(exc, Exception):
                    raise
                return
            start = 0
            for w in batch:
                stop = start + len(w.req.queries)
                if not w.answer.done():
                    w.answer.set_result(_rows(result, start, stop))
                start = stop
        finally:
            self._next(key, lane, spec, allow_partial)
