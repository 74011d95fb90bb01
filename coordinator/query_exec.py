"""Running a bound query across shards: resolve rank-form NOTs, fan out, merge each ranking, fuse."""

from __future__ import annotations

import time
from collections.abc import Sequence

from coordinator.catalog import CollectionSpec
from coordinator.deadline import time_left
from coordinator.fusion import rrf
from coordinator.merge import merge_top_k
from coordinator.negation import TopSearch, resolve_rank_sets
from coordinator.query_bind import BM25, HYBRID, VECTOR, BoundQuery
from coordinator.replicas import Replicator
from protos import common_pb2, query_pb2, shard_pb2
from protos import query_tree as q
from protos.wire import pack_vector, unpack_floats
from shard_node.client import ShardClient
from shard_node.settings import HYBRID_DEPTH


def _merged(lists: Sequence[shard_pb2.RankedList], k: int, higher_is_better: bool) -> list[tuple[str, float]]:
    ids = [list(r.ids) for r in lists]
    values = [unpack_floats(r.scores) for r in lists]
    keys = [-v for v in values] if higher_is_better else values
    shards, pos = merge_top_k(ids, keys, k)
    return [(ids[s][p], float(values[s][p])) for s, p in zip(shards, pos, strict=True)]


def _score(metric: str, distance: float) -> float:
    return distance if metric == "l2" else 1.0 - distance


class QueryRunner:
    """Executes bound queries for the engine."""

    def __init__(self, replicas: Replicator, shard_timeout_s: float) -> None:
        self._replicas = replicas
        self._timeout_s = shard_timeout_s

    async def run(self, spec: CollectionSpec, bound: BoundQuery, k: int, ef: int, with_payload: bool,
                  explain: bool, top_search: TopSearch, weights: tuple[float, float] = (1.0, 1.0),
                  strategy: str = "") -> tuple[list[tuple[str, float, float, common_pb2.Payload | None]],
                                               query_pb2.QueryPlan]:
        """Global top-k hits (id, score, distance, payload) and the plan."""
        start = time.perf_counter()
        plan = query_pb2.QueryPlan(ranking=bound.ranking)
        flt = query_pb2.QueryNode()
        if bound.filter is not None:
            flt.CopyFrom(bound.filter)
            for text, size in await resolve_rank_sets(flt, top_search):
                plan.resolved.add(clause=text, estimated=size, actual=size)
        depth = max(k, HYBRID_DEPTH) if bound.ranking == HYBRID else k
        req = shard_pb2.ShardQueryRequest(filter=flt, k=depth, ef=ef, with_payload=with_payload, explain=explain,
                                          strategy=strategy)
        if bound.vector is not None:
            req.vector = pack_vector(bound.vector)
        if bound.match is not None:
            req.match.CopyFrom(bound.match)
        timeout = time_left(self._timeout_s)

        async def local(_: int, c: ShardClient) -> shard_pb2.ShardQueryResponse:
            return await c.query(req, timeout)

        answers, _ = await self._replicas.read(spec, range(spec.shards), local, "Query")
        replies = [a for a in answers if a is not None]
        payloads: dict[str, common_pb2.Payload] = {}
        for r in replies:
            payloads.update(r.payloads)
        if bound.ranking == VECTOR:
            ranked = [(i, _score(spec.metric, d), d) for i, d in _merged([r.vector_hits for r in replies], k, False)]
        elif bound.ranking == BM25:
            ranked = [(i, s, -s) for i, s in _merged([r.text_hits for r in replies], k, True)]
        else:
            by_vector = _merged([r.vector_hits for r in replies], depth, False)
            by_text = _merged([r.text_hits for r in replies], depth, True)
            fused = rrf([[i for i, _ in by_vector], [i for i, _ in by_text]], weights, k)
            ranked = [(i, s, -s) for i, s in fused]
        hits = [(i, s, d, payloads.get(i) if with_payload else None) for i, s, d in ranked]
        if explain:
            plan.tree = q.render(flt) if bound.filter is not None else ""
            plan.shards.extend(r.plan for r in replies)
            plan.latency_ms = (time.perf_counter() - start) * 1000.0
        return hits, plan


def weights_of(vector_weight: float, text_weight: float) -> tuple[float, float]:
    """RRF weights, 0 meaning the default 1.0; negative weights are refused by the engine."""
    return (vector_weight or 1.0, text_weight or 1.0)

