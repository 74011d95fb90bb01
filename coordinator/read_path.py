"""The one read path: a batch of queries (with its filter, text match and plan inputs) sent as one request
per shard node, the nodes' packed columns merged for the whole batch at once.

Each shard is read from one up-to-date replica; the shards on one node travel in one request, encoded once
for every node (the node part is appended as bytes: protobuf merges concatenated messages). A node that does
not answer within hedge_after_ms, or is unavailable, is hedged: its shards are asked of their next replicas too
(first answer wins) and the node is marked suspect; with allow_partial, shards no replica answered for are left
out and listed, and a node that hangs is cut off before the request's deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coordinator.catalog import CollectionSpec
from coordinator.deadline import time_left
from coordinator.metrics import CoordinatorMetrics
from coordinator.replicas import PARTIAL_BUDGET_SHARE, Replicator
from coordinator.settings import CoordinatorSettings
from protos import common_pb2, query_pb2, shard_pb2
from protos.errors import DeadlineExceeded, ShoalError, Unavailable
from protos.topk import SMALL_ROW, merge_columns, merge_pairs, merge_ranked
from protos.wire import pack_matrix, unpack_floats
from shard_node.client import NodeClient


@dataclass
class ReadRequest:
    """What every node is asked, as plain values."""

    queries: np.ndarray                      # (rows, dim) float32; 0 rows for a text-only query
    k: int
    ef: int = 0
    with_payload: bool = False
    explain: bool = False
    filter: query_pb2.QueryNode | None = None
    match: query_pb2.Match | None = None
    strategy: str = ""
    exclude: list[query_pb2.Near] = field(default_factory=list)  # rank-form NOTs resolved in this round
    extra: int = 0                 # candidates asked for beyond k, so that k remain once the excluded go
    oversample: int = 0            # binary storage: Hamming candidates per hit (0 = the node's default)


@dataclass
class ReadResult:
    """The merged columns of every node's answer."""

    ids: np.ndarray                          # (rows, <=k) object, "" on padding
    distances: np.ndarray                    # (rows, <=k) float32, +inf on padding
    text_ids: list[str]
    text_scores: np.ndarray
    payloads: dict[str, common_pb2.Payload]
    missing_shards: list[int]
    plans: list[query_pb2.ShardPlan] = field(default_factory=list)
    nodes: list[query_pb2.NodeTiming] = field(default_factory=list)
    stage_ms: dict[str, float] = field(default_factory=dict)
    excluded: list[int] = field(default_factory=list)  # size of each rank-form NOT's global set


def _encode(req: ReadRequest) -> bytes:
    msg = shard_pb2.NodeSearchRequest(k=req.k, ef=req.ef, with_payload=req.with_payload, explain=req.explain,
                                      strategy=req.strategy, oversample=req.oversample)
    if len(req.queries):
        msg.queries.CopyFrom(pack_matrix(req.queries))
    if req.filter is not None:
        msg.filter.CopyFrom(req.filter)
    if req.match is not None:
        msg.match.CopyFrom(req.match)
    msg.exclude.extend(req.exclude)
    return msg.SerializeToString()


@dataclass(frozen=True)
class _Round:
    """What every node call of one read shares."""

    body: bytes          # the encoded request, without its partitions
    timeout: float
    give_up: float       # monotonic time a partial read stops waiting
    allow_partial: bool


_Answer = tuple[int, list[int], shard_pb2.NodeSearchResponse, float]  # node, its shards, reply, call ms
_Covered = tuple[list[_Answer], dict[int, ShoalError]]


def _without(ids: list[str], values: np.ndarray, excluded: np.ndarray) -> tuple[list[str], np.ndarray]:
    """A ranked list without the excluded ids."""
    arr = np.asarray(ids, dtype=object)
    keep = ~np.isin(arr, excluded)
    return arr[keep].tolist(), values[keep]


async def _together(parts: list[Coroutine[Any, Any, _Covered]]) -> list[_Covered]:
    """Every node part's outcome, run side by side; the last runs in the calling task (one task and one turn of
    the event loop fewer than gather on every read), the others as tasks, cancelled if the caller is."""
    if not parts:
        return []
    others = [asyncio.ensure_future(p) for p in parts[:-1]]
    try:
        last = await parts[-1]
        return [*[await t for t in others], last]
    finally:
        for t in others:
            if not t.done():
                t.cancel()
            elif not t.cancelled():
                t.exception()  # retrieved, so that a part given up on logs no "never retrieved" warning


class ReadPath:
    """Runs ReadRequests against a collection's shard nodes."""

    def __init__(self, replicas: Replicator, settings: CoordinatorSettings, metrics: CoordinatorMetrics) -> None:
        self._replicas = replicas
        self._pool = replicas.pool
        self._settings = settings
        self._metrics = metrics

    async def run(self, spec: CollectionSpec, req: ReadRequest, allow_partial: bool = False) -> ReadResult:
        """Every node's part of the request, merged; shards nobody answered for fail the call unless partial."""
        t0 = time.perf_counter()
        timeout = time_left(self._settings.shard_timeout_s)
        budget = timeout * PARTIAL_BUDGET_SHARE if allow_partial else timeout
        self._metrics.fanout_width.observe(spec.shards)
        orders = await self._replicas.read_orders(spec, range(spec.shards),
                                                  self._settings.partial_wait_s if allow_partial else None)
        ctx = _Round(_encode(req), timeout, time.monotonic() + budget, allow_partial)
        answers, errors = await self._cover(spec, orders, ctx)
        if errors and not allow_partial:
            raise next(iter(errors.values()))
        if not answers:
            raise Unavailable(f"no shard of collection {spec.name!r} is available")
        if errors:
            self._metrics.partial_answers.inc()
        t1 = time.perf_counter()
        out = self._merge(req, [a[2] for a in answers])
        out.missing_shards = sorted(errors)
        out.stage_ms = {"fanout": (t1 - t0) * 1000.0, "merge": (time.perf_counter() - t1) * 1000.0}
        if req.explain:
            for node, shards, resp, call_ms in answers:
                out.nodes.append(query_pb2.NodeTiming(node=node, shards=shards, call_ms=call_ms,
                                                      node_ms=resp.node_ms))
                out.plans.extend(resp.plans)
        return out

    async def _cover(self, spec: CollectionSpec, orders: dict[int, list[int]], ctx: _Round) -> _Covered:
        """Answers for every shard of `orders`, each from the first replica of its order (one request per node);
        shards no replica answered for come back as errors."""
        errors: dict[int, ShoalError] = {
            i: Unavailable(f"no replica of shard {i} of collection {spec.name!r} is known to be up to date")
            for i, order in orders.items() if not order}
        by_node: dict[int, list[int]] = defaultdict(list)
        for i, order in orders.items():
            if order:
                by_node[spec.node_of(i, order[0])].append(i)
        parts = await _together([self._node_part(spec, node, shards, orders, ctx) for node, shards in by_node.items()])
        answers: list[_Answer] = []
        for got, failed in parts:
            answers.extend(got)
            errors.update(failed)
        return answers, errors

    async def _node_part(self, spec: CollectionSpec, node: int, shards: list[int], orders: dict[int, list[int]],
                         ctx: _Round) -> _Covered:
        """One node's shards; hedged onto their next replicas when the node is slow or unavailable."""
        rest = {i: orders[i][1:] for i in shards}
        alternatives = all(rest.values())

        async def first() -> _Covered:
            resp, ms = await self._call(spec, node, [(i, orders[i][0]) for i in shards], alternatives, ctx)
            return [(node, shards, resp, ms)], {}

        def hedge() -> Awaitable[_Covered]:
            return self._cover(spec, rest, ctx)

        try:
            return await self._replicas.hedged(first, node, hedge if alternatives else None,
                                               f"a search of shard node {node}")
        except (Unavailable, DeadlineExceeded, TimeoutError) as exc:
            error = exc if isinstance(exc, ShoalError) else Unavailable(
                f"shards {shards} of collection {spec.name!r} did not answer in time")
            return [], {i: error for i in shards}

    async def _call(self, spec: CollectionSpec, node: int, parts: list[tuple[int, int]], alternatives: bool,
                    ctx: _Round) -> tuple[shard_pb2.NodeSearchResponse, float]:
        keys = [spec.partition_key(i, r) for i, r in parts]
        request = ctx.body + shard_pb2.NodeSearchRequest(partitions=keys).SerializeToString()
        # A node whose shards all have another replica gets one try; else wait for Ray to bring it back.
        patience = 0.0 if alternatives else (self._settings.partial_wait_s if ctx.allow_partial else None)
        start = time.perf_counter()

        async def ask(c: NodeClient) -> shard_pb2.NodeSearchResponse:
            return await c.node_search(request, ctx.timeout)

        call = self._pool.call_node(node, ask, "NodeSearch", patience,
                                    what=f"shards {[i for i, _ in parts]} of collection {spec.name!r}")
        resp = (await asyncio.wait_for(call, max(ctx.give_up - time.monotonic(), 0.001)) if ctx.allow_partial
                else await call)
        for i, _ in parts:
            self._metrics.shard_latency.labels(spec.name, str(i), "NodeSearch").observe(time.perf_counter() - start)
        return resp, (time.perf_counter() - start) * 1000.0

    @staticmethod
    def _merge(req: ReadRequest, answers: list[shard_pb2.NodeSearchResponse]) -> ReadResult:
        payloads: dict[str, common_pb2.Payload] = {}
        for a in answers:
            payloads.update(a.payloads)
        if (len(req.queries) == 1 and not req.exclude and not any(a.text_ids for a in answers)
                and sum(len(a.ids) for a in answers) <= SMALL_ROW):
            # One query's few hits: sorted straight from the replies, without building arrays to merge.
            one_ids, one_d = merge_pairs((p for a in answers
                                          for p in zip(unpack_floats(a.distances).tolist(), a.ids, strict=True)),
                                         req.k)
            return ReadResult(one_ids, one_d, [], np.empty(0, np.float32), payloads, [])
        rows = max(len(req.queries), 1)
        ids = np.concatenate([np.asarray(list(a.ids), dtype=object).reshape(rows, a.per_row) for a in answers],
                             axis=1)
        dists = np.concatenate([unpack_floats(a.distances).reshape(rows, a.per_row) for a in answers], axis=1)
        text = [(list(a.text_ids), unpack_floats(a.text_scores)) for a in answers]
        gone: set[str] = set()
        sizes = []
        for j, near in enumerate(req.exclude):  # the global top-K' of each NOT vector: exact, from local tops
            top_ids, _ = merge_ranked([(list(a.exclusions[j].ids), unpack_floats(a.exclusions[j].scores))
                                       for a in answers], int(near.top), higher_is_better=False)
            gone.update(top_ids)
            sizes.append(len(top_ids))
        if gone:
            excluded = np.fromiter(gone, dtype=object, count=len(gone))
            dists = np.where(np.isin(ids, excluded), np.inf, dists)
            text = [_without(t, v, excluded) for t, v in text]
        merged_ids, merged_d = merge_columns(ids, dists, req.k)
        text_ids, text_scores = merge_ranked(text, req.k, higher_is_better=True)
        return ReadResult(merged_ids, merged_d, text_ids, text_scores, payloads, [], excluded=sizes)

