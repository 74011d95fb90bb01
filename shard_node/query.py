"""One shard's part of a query: filter mask, then each ranking's local top-k among the allowed documents."""

from __future__ import annotations

import time

import numpy as np

from protos import query_pb2, shard_pb2
from protos.errors import InvalidArgument
from protos.wire import check_vectors, pack_floats, payload_to_proto, unpack_vector
from shard_node.filters import FilterContext, evaluate
from shard_node.partition import Partition, exact_distances
from shard_node.planner import EXACT, vector_top_k


def _within_fn(part: Partition):  # noqa: ANN202 - a closure over the partition
    metric = part.spec.metric

    def within(vector: np.ndarray, labels: np.ndarray | None, tau: float) -> np.ndarray:
        # The coordinator binds near vectors first, but a shard answers whoever calls it with a clear status.
        check_vectors(vector.reshape(1, -1), part.spec.dim, "near vector", metric)
        rows = part.vectors[: part.size] if labels is None else part.vectors[labels]
        dists = exact_distances(metric, vector.reshape(1, -1), rows)[0]
        # cosine / ip: similarity = 1 - distance >= tau; l2: tau is the largest squared distance.
        return dists <= tau if metric == "l2" else dists <= 1.0 - tau

    return within


def _text_top_k(part: Partition, match: query_pb2.Match, allowed: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray, int]:
    if match.field not in part.text.fields:
        raise InvalidArgument(f"match needs a text field; {match.field!r} is not one of {part.text.fields}")
    labels, scores = part.text.scores(match.field, match.text)
    inside = labels < len(allowed)
    labels, scores = labels[inside], scores[inside]
    keep = allowed[labels]
    labels, scores = labels[keep], scores[keep]
    matched = len(labels)
    if matched > k:
        top = np.argpartition(-scores, k - 1)[:k]
        labels, scores = labels[top], scores[top]
    order = np.lexsort((labels, -scores))
    return labels[order], scores[order], matched


def run_query(part: Partition, req: shard_pb2.ShardQueryRequest, shard_index: int) -> shard_pb2.ShardQueryResponse:
    """Answer a ShardQueryRequest on this partition."""
    start = time.perf_counter()
    if req.k == 0:
        raise InvalidArgument("k must be at least 1")
    k, ef = int(req.k), int(req.ef) or part.spec.ef_search
    vector = None
    if req.vector:
        vector = unpack_vector(req.vector)
        check_vectors(vector.reshape(1, -1), part.spec.dim, "query vector", part.spec.metric)
    has_filter = req.filter.WhichOneof("node") is not None
    resp = shard_pb2.ShardQueryResponse()
    with part.searching(part.spec.ef_search):
        live = part.live_mask()
        ctx = FilterContext(part.fields, part.text, live, part.labels_of, _within_fn(part))
        mask = evaluate(ctx, req.filter)[0] if has_filter else None
        allowed_mask = live if mask is None else mask
        allowed = int(allowed_mask.sum())
        if req.match.field:
            t_labels, t_scores, matched = _text_top_k(part, req.match, allowed_mask, k)
            resp.text_hits.ids.extend(part.ids_of(t_labels))
            resp.text_hits.scores = pack_floats(t_scores)
            resp.plan.text_matches = matched
    plan = resp.plan
    plan.shard, plan.live, plan.allowed = shard_index, part.live, allowed
    if vector is not None:
        result = vector_top_k(part, vector, mask, k, ef, req.strategy)
        resp.vector_hits.ids.extend(part.ids_of(result.labels))
        resp.vector_hits.scores = pack_floats(result.distances)
        plan.strategy, plan.rounds, plan.ef = result.strategy, result.rounds, result.ef
    elif req.match.field:
        plan.strategy = "bm25"
    if req.with_payload:
        ids = list(dict.fromkeys([*resp.vector_hits.ids, *resp.text_hits.ids]))
        for doc_id, payload in zip(ids, part.payloads_of(ids), strict=True):
            resp.payloads[doc_id].CopyFrom(payload_to_proto(payload))
    if req.explain:
        for f in ctx.figures:
            plan.clauses.add(clause=f.clause, estimated=f.estimated, actual=f.actual)
    plan.latency_ms = (time.perf_counter() - start) * 1000.0
    if plan.strategy == "":
        plan.strategy = EXACT if allowed else "empty"
    return resp
