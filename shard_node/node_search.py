"""The node's one read: a batch of queries over several hosted partitions, each searched on its own thread
(hnswlib and numpy release the GIL), merged on the node into packed columns."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from protos import query_pb2, shard_pb2
from protos.errors import InvalidArgument
from protos.topk import merge_columns, merge_ranked, pad_rows
from protos.wire import check_vectors, pack_floats, pack_vector, payload_to_proto, unpack_floats, unpack_matrix
from shard_node.near import top_similar
from shard_node.planner import HAMMING
from shard_node.query import run_query
from shard_node.store import ShardStore

HNSW = "hnsw"


@dataclass
class PartitionAnswer:
    """One partition's hits for every query, padded to one width."""

    ids: np.ndarray            # (queries, width) object, "" on padding
    dists: np.ndarray          # (queries, width) float32, +inf on padding
    text: tuple[list[str], np.ndarray] = ([], np.empty(0, np.float32))
    plans: list[query_pb2.ShardPlan] = field(default_factory=list)     # with explain, or from the planner
    exclusions: list[tuple[list[str], np.ndarray]] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)                # one per query (the plan metric)


def local_top(store: ShardStore, near: query_pb2.Near) -> tuple[list[str], np.ndarray]:
    """A partition's exact top-`near.top` of `near.vector` over its live documents, as negated similarities
    (lower is better, like every other column this node merges)."""
    if near.top == 0:
        return [], np.empty(0, np.float32)
    ids, sims = top_similar(store.partition, np.asarray(near.vector, dtype=np.float32), int(near.top))
    return ids, -sims


def _with_exclusions(answer: PartitionAnswer, store: ShardStore, req: shard_pb2.NodeSearchRequest
                     ) -> PartitionAnswer:
    answer.exclusions = [local_top(store, near) for near in req.exclude]
    for plan in answer.plans:
        plan.exclusion_candidates = sum(len(ids) for ids, _ in answer.exclusions)
    return answer


def _plain(req: shard_pb2.NodeSearchRequest) -> bool:
    # Rank-form NOTs resolved in this round take the planner too: it scans small partitions exactly.
    return req.filter.WhichOneof("node") is None and not req.match.field and not req.strategy and not req.exclude


def search_partition(store: ShardStore, shard: int, req: shard_pb2.NodeSearchRequest, queries: np.ndarray
                     ) -> PartitionAnswer:
    """One partition's part of a node request: its hits, and its local top of every rank-form NOT vector."""
    return _with_exclusions(_search_partition(store, shard, req, queries), store, req)


def _search_partition(store: ShardStore, shard: int, req: shard_pb2.NodeSearchRequest, queries: np.ndarray
                      ) -> PartitionAnswer:
    """Plain HNSW for the whole batch, else the partition's planner per query."""
    start = time.perf_counter()
    part = store.partition
    k, ef = int(req.k), int(req.ef)
    if len(queries):
        check_vectors(queries, part.spec.dim, "query vector", part.spec.metric)
    if _plain(req) and len(queries):
        ids, dists = part.search_matrix(queries, k, ef or None, int(req.oversample))
        strategy = HNSW if part.has_graph else HAMMING
        if not req.explain:  # the hot path: no plan message per partition per call
            return PartitionAnswer(ids, dists, strategies=[strategy])
        ms = (time.perf_counter() - start) * 1000.0
        plan = query_pb2.ShardPlan(shard=shard, strategy=strategy, live=part.live, allowed=part.live, rounds=1,
                                   ef=max(ef or part.spec.ef_search, k), latency_ms=ms)
        return PartitionAnswer(ids, dists, plans=[plan], strategies=[strategy])
    rows = queries if len(queries) else [None]
    ranked, plans = [], []
    text: tuple[list[str], np.ndarray] = ([], np.empty(0, np.float32))
    for row in rows:
        one = shard_pb2.ShardQueryRequest(filter=req.filter, k=k, ef=ef, explain=req.explain, strategy=req.strategy)
        if row is not None:
            one.vector = pack_vector(row)
        if req.match.field:
            one.match.CopyFrom(req.match)
        resp = run_query(part, one, shard)
        ranked.append((list(resp.vector_hits.ids), unpack_floats(resp.vector_hits.scores)))
        if req.match.field:
            text = (list(resp.text_hits.ids), unpack_floats(resp.text_hits.scores))
        plans.append(resp.plan)
    ids, dists = pad_rows(ranked) if len(queries) else pad_rows([([], np.empty(0, np.float32))])
    return PartitionAnswer(ids, dists, text, plans, strategies=[p.strategy for p in plans])


def node_search(stores: Sequence[tuple[ShardStore, int]], req: shard_pb2.NodeSearchRequest,
                executor: Executor | None, observe_plan: Callable[[int, str], None] | None = None
                ) -> shard_pb2.NodeSearchResponse:
    """Answer a NodeSearchRequest over the given (store, shard index) pairs."""
    start = time.perf_counter()
    if req.k == 0:
        raise InvalidArgument("k must be at least 1")
    queries = unpack_matrix(req.queries, "queries") if req.queries.rows else np.empty((0, 0), np.float32)
    if not len(queries) and not req.match.field:
        raise InvalidArgument("a search needs query vectors or a text to match")
    if len(stores) == 1 or executor is None:
        answers = [search_partition(s, shard, req, queries) for s, shard in stores]
    else:
        futures = [executor.submit(search_partition, s, shard, req, queries) for s, shard in stores]
        answers = [f.result() for f in futures]
    k = int(req.k)
    if len(answers) == 1 and answers[0].ids.shape[1] <= k:
        # One partition's rows are its top-k already, best first; the coordinator's merge orders ties by id.
        ids, dists = answers[0].ids, answers[0].dists
    else:
        ids, dists = merge_columns(np.concatenate([a.ids for a in answers], axis=1),
                                   np.concatenate([a.dists for a in answers], axis=1), k)
    resp = shard_pb2.NodeSearchResponse(rows=ids.shape[0], per_row=ids.shape[1], ids=ids.ravel().tolist(),
                                        distances=pack_floats(dists.ravel()))
    if req.match.field:
        text_ids, text_scores = merge_ranked([a.text for a in answers], k, higher_is_better=True)
        resp.text_ids.extend(text_ids)
        resp.text_scores = pack_floats(text_scores)
    for j, near in enumerate(req.exclude):
        top_ids, top_d = merge_ranked([a.exclusions[j] for a in answers], int(near.top), higher_is_better=False)
        resp.exclusions.add(ids=top_ids, scores=pack_floats(top_d))
    if req.with_payload:
        _add_payloads(resp, stores, answers)
    for (_, shard), a in zip(stores, answers, strict=True):
        if req.explain:
            resp.plans.extend(a.plans)
        if observe_plan is not None:
            for strategy in a.strategies:
                observe_plan(shard, strategy)
    resp.node_ms = (time.perf_counter() - start) * 1000.0
    return resp


def _add_payloads(resp: shard_pb2.NodeSearchResponse, stores: Sequence[tuple[ShardStore, int]],
                  answers: Sequence[PartitionAnswer]) -> None:
    wanted = {i for i in resp.ids if i} | set(resp.text_ids)
    for (store, _), answer in zip(stores, answers, strict=True):
        mine = [i for i in dict.fromkeys([*answer.ids.ravel().tolist(), *answer.text[0]]) if i in wanted]
        for doc_id, payload in zip(mine, store.partition.payloads_of(mine), strict=True):
            payload_to_proto(payload, into=resp.payloads[doc_id])
