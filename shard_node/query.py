"""One shard's part of a query: filter mask, then each ranking's local top-k among the allowed documents."""

from __future__ import annotations

import time

import numpy as np

from protos import query_pb2, shard_pb2
from protos.errors import InvalidArgument
from protos.wire import check_vectors, pack_floats, payload_to_proto, unpack_vector
from shard_node.allowed import Allowed
from shard_node.fields import labels_array
from shard_node.filters import Exclusion, Figures, FilterContext, evaluate, mentions_near, split_exclusions
from shard_node.near import near_set
from shard_node.partition import Partition
from shard_node.planner import EMPTY, EXACT, VectorResult, admitted, exact_gathered, exact_held, plan, vector_top_k


def allowed_set(part: Partition, node: query_pb2.QueryNode, explain: bool = False
                ) -> tuple[Allowed | None, tuple, list[Exclusion], list[Figures]]:
    """The filter's allowed set (None = every live document) from the partition's cache or its postings, the
    cache key it lives under (() when not cached), the NOT near exclusions left for the planner, and (explain
    only) clause figures.

    Call it while `searching`."""
    rest, exclusions = split_exclusions(node)
    if rest is None:
        return None, (), exclusions, []
    key = (rest.SerializeToString(deterministic=True), part.version)
    entry = None if explain else part.allowed_cache.get(key)
    if entry is not None:
        return entry, key, exclusions, []
    ctx = FilterContext(part.fields, part.text, part.live_bitmap(), part.labels_of,
                        lambda vector, tau: near_set(part, vector, tau), record=explain)
    entry = Allowed(labels_array(evaluate(ctx, rest)), part.version)
    if mentions_near(rest):
        return entry, (), exclusions, ctx.figures  # a set for one query vector: not worth a cache slot
    part.allowed_cache.put(key, entry)
    return entry, key, exclusions, ctx.figures


def _gathered_scan(part: Partition, req: shard_pb2.ShardQueryRequest, vector: np.ndarray, k: int, ef: int
                   ) -> tuple[Allowed, VectorResult] | None:
    """The exact plan straight from a cached allowed set with its rows gathered, without holding the gate (the
    rows are the entry's own copy, of the version the key names); None when the query needs the full path."""
    if req.match.field or req.explain or req.strategy not in ("", EXACT) or not req.filter.WhichOneof("node"):
        return None
    entry = part.allowed_cache.peek((req.filter.SerializeToString(deterministic=True), part.version))
    if entry is None or entry.rows is None or plan(part, entry, k, ef, req.strategy)[0] != EXACT:
        return None  # (a filter with NOT near exclusions is cached under its other clauses' key: never found here)
    return entry, exact_gathered(part.spec.metric, entry, vector, k)


def _text_top_k(part: Partition, match: query_pb2.Match, allowed: Allowed | None, exclusions: list[Exclusion],
                k: int) -> tuple[np.ndarray, np.ndarray, int]:
    if match.field not in part.text.fields:
        raise InvalidArgument(f"match needs a text field; {match.field!r} is not one of {part.text.fields}")
    labels, scores = part.text.scores(match.field, match.text)
    keep = admitted(part, labels, allowed, exclusions)
    labels, scores = labels[keep], scores[keep]
    matched = len(labels)
    if matched > k:
        top = np.argpartition(-scores, k - 1)[:k]
        labels, scores = labels[top], scores[top]
    order = np.lexsort((labels, -scores))
    return labels[order], scores[order], matched


def _query_vector(part: Partition, packed: bytes) -> np.ndarray:
    vector = unpack_vector(packed)
    check_vectors(vector.reshape(1, -1), part.spec.dim, "query vector", part.spec.metric)
    return vector


def run_query(part: Partition, req: shard_pb2.ShardQueryRequest, shard_index: int) -> shard_pb2.ShardQueryResponse:
    """Answer a ShardQueryRequest on this partition."""
    start = time.perf_counter()
    if req.k == 0:
        raise InvalidArgument("k must be at least 1")
    k, ef = int(req.k), int(req.ef) or part.spec.ef_search
    vector = _query_vector(part, req.vector) if req.vector else None
    resp = shard_pb2.ShardQueryResponse()
    fast = _gathered_scan(part, req, vector, k, ef) if vector is not None else None
    if fast is not None:
        allowed, result = fast
        return _response(part, req, resp, shard_index, allowed.count, result, [], start)
    result = None
    with part.searching(part.spec.ef_search):
        allowed, key, exclusions, figures = allowed_set(part, req.filter, req.explain)
        n_allowed = part.live if allowed is None else allowed.count
        cached = allowed.nbytes() if allowed is not None else 0
        if req.match.field:
            t_labels, t_scores, matched = _text_top_k(part, req.match, allowed, exclusions, k)
            resp.text_hits.ids.extend(part.ids_of(t_labels))
            resp.text_hits.scores = pack_floats(t_scores)
            resp.plan.text_matches = matched
        if vector is not None:
            strategy, plan_set = plan(part, allowed, k, ef, req.strategy)
            if strategy == EXACT:  # it runs at this gate's ef: no second hold
                result = exact_held(part, vector[None], plan_set, k, exclusions)[0]
    if vector is not None:
        if result is None:
            result = vector_top_k(part, vector, plan_set, k, ef, strategy, exclusions)
        if key and allowed.nbytes() != cached:
            part.allowed_cache.put(key, allowed)  # it gathered its rows or mask: account for them
    return _response(part, req, resp, shard_index, n_allowed, result, figures, start)


def _response(part: Partition, req: shard_pb2.ShardQueryRequest, resp: shard_pb2.ShardQueryResponse,
              shard_index: int, n_allowed: int, result: VectorResult | None, figures: list[Figures], start: float
              ) -> shard_pb2.ShardQueryResponse:
    info = resp.plan
    info.shard, info.live, info.allowed = shard_index, part.live, n_allowed
    if result is not None:
        resp.vector_hits.ids.extend(part.ids_of(result.labels))
        resp.vector_hits.scores = pack_floats(result.distances)
        info.strategy, info.rounds, info.ef = result.strategy, result.rounds, result.ef
    elif req.match.field:
        info.strategy = "bm25"
    if req.with_payload:
        ids = list(dict.fromkeys([*resp.vector_hits.ids, *resp.text_hits.ids]))
        for doc_id, payload in zip(ids, part.payloads_of(ids), strict=True):
            resp.payloads[doc_id].CopyFrom(payload_to_proto(payload))
    if req.explain:
        for f in figures:
            info.clauses.add(clause=f.clause, estimated=f.estimated, actual=f.actual)
    info.latency_ms = (time.perf_counter() - start) * 1000.0
    if info.strategy == "":
        info.strategy = EXACT if n_allowed else EMPTY
    return resp
