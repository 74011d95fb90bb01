"""The per-shard vector planner: exact scan of the allowed set, post-filtered HNSW that searches deeper
until k allowed documents are found, or HNSW with hnswlib's filter callback inside the traversal.

hnswlib's filter callback costs a Python call per visited node (see `make bench-filter`), so the
planner prefers post-filtering: the graph is searched unfiltered with k and ef grown by the filter's
selectivity, and the allowed mask is applied to the candidates in one numpy step. When the allowed set
is small, scanning it exactly is cheaper than any graph search and its answer is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shard_node.partition import Partition, exact_distances, top_k_rows
from shard_node.settings import (
    PLAN_ANTI_CORRELATED,
    PLAN_EF_PER_WANT,
    PLAN_EXACT_ALWAYS,
    PLAN_EXACT_PER_HNSW_EF,
    PLAN_GROWTH,
    PLAN_MAX_EF,
    PLAN_OVERSAMPLE,
)

EXACT, HNSW, HNSW_FILTER, EMPTY = "exact", "hnsw", "hnsw_filter", "empty"
STRATEGIES = (EXACT, HNSW, HNSW_FILTER)


@dataclass
class VectorResult:
    """A shard's local top-k among the allowed documents, and how it was found."""

    labels: np.ndarray
    distances: np.ndarray
    strategy: str
    rounds: int = 0
    ef: int = 0


def first_k(allowed: int, live: int, k: int) -> int:
    """How many neighbours post-filtered HNSW asks for first, given the filter's selectivity."""
    selectivity = max(allowed, 1) / max(live, 1)
    return min(live, max(k, math.ceil(k / selectivity * PLAN_OVERSAMPLE)))


def beam(ef: int, want: int, allowed: int, live: int) -> int:
    """ef of a post-filtered round: room for `want` candidates, and for about ef allowed ones among them."""
    return min(PLAN_MAX_EF, max(ef, PLAN_EF_PER_WANT * want, math.ceil(ef * live / max(allowed, 1))))


def choose(allowed: int, live: int, k: int, ef: int) -> str:
    """The cheaper plan for `allowed` of `live` documents: exact scan or post-filtered HNSW."""
    if allowed == 0:
        return EMPTY
    if allowed <= max(k, PLAN_EXACT_ALWAYS) or allowed >= live and live <= PLAN_EXACT_ALWAYS:
        return EXACT
    hnsw_ef = beam(ef, first_k(allowed, live, k), allowed, live)
    return EXACT if allowed < hnsw_ef * PLAN_EXACT_PER_HNSW_EF else HNSW


def exact(part: Partition, query: np.ndarray, mask: np.ndarray | None, k: int) -> VectorResult:
    """Brute force over the allowed labels (every live one when mask is None)."""
    with part.searching(part.spec.ef_search):
        live = part.live_mask()
        if mask is not None:
            live[: len(mask)] &= mask  # documents deleted since the mask was taken drop out
            live[len(mask):] = False
        labels = np.flatnonzero(live)
        if len(labels) == 0:
            return VectorResult(labels, np.empty(0, np.float32), EXACT)
        rows = part.vectors[labels]
        norms = part.norms[labels] if part.spec.metric == "cosine" else None
    if norms is not None:
        # Stored norms save normalising every allowed row on every query.
        dists = (1.0 - (rows @ query) / (norms * max(float(np.linalg.norm(query)), 1e-30)))[None, :]
    else:
        dists = exact_distances(part.spec.metric, query.reshape(1, -1), rows)
    cols, vals = top_k_rows(dists, k)
    return VectorResult(labels[cols[0]], vals[0].astype(np.float32), EXACT)


def _allowed(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # Labels written after the mask was taken are past its end: they were not allowed then.
    inside = labels < len(mask)
    keep = np.zeros(len(labels), dtype=bool)
    keep[inside] = mask[labels[inside]]
    return keep


def hnsw_post_filter(part: Partition, query: np.ndarray, mask: np.ndarray | None, allowed: int, k: int,
                     ef: int) -> VectorResult:
    """Search the graph unfiltered, keep the allowed candidates; go deeper until k of them are found."""
    live = part.live
    want = k if mask is None else first_k(allowed, live, k)
    rounds = 0
    while True:
        want = min(want, part.live)
        # The candidates past the first k are what a filter keeps, so they need the graph's full precision too.
        # The beam must also hold about ef allowed documents, as a filtered walk at ef would.
        round_ef = max(ef, want) if mask is None else beam(ef, want, allowed, live)
        rounds += 1
        try:
            with part.searching(round_ef):
                labels, dists = part.graph.knn_query(query.reshape(1, -1), k=want, num_threads=1)
        except RuntimeError:
            # Tombstones can leave the walk short of `want` live nodes: answer exactly.
            result = exact(part, query, mask, k)
            result.rounds = rounds
            return result
        labels, dists = labels[0].astype(np.int64), dists[0]
        if mask is not None:
            keep = _allowed(labels, mask)
            labels, dists = labels[keep], dists[keep]
        if len(labels) >= k or want >= part.live:
            return VectorResult(labels[:k], dists[:k].astype(np.float32), HNSW, rounds, round_ef)
        if mask is not None and allowed < want * PLAN_GROWTH / PLAN_OVERSAMPLE * PLAN_EXACT_PER_HNSW_EF:
            result = exact(part, query, mask, k)  # deeper search would cost more than scanning the set
            result.rounds = rounds
            return result
        if mask is not None and len(labels) / want < PLAN_ANTI_CORRELATED * allowed / live:
            # The filter removes the query's neighbourhood (an exclusion eating the top): the allowed documents
            # lie far down the unfiltered ranking, so search with the filter inside the traversal instead.
            # Its neighbours are excluded ones, so the walk needs a wider beam to reach the allowed region.
            result = hnsw_filter(part, query, mask, allowed, k, PLAN_EF_PER_WANT * max(ef, want))
            result.rounds += rounds
            return result
        want *= PLAN_GROWTH


def hnsw_filter(part: Partition, query: np.ndarray, mask: np.ndarray, allowed: int, k: int,
                ef: int) -> VectorResult:
    """hnswlib's own filtered search: the allowed-label check runs as a Python callback per visited node."""
    allowed_labels = set(np.flatnonzero(mask).tolist())
    want = min(k, allowed)
    round_ef = max(ef, want)
    try:
        with part.searching(round_ef):
            labels, dists = part.graph.knn_query(query.reshape(1, -1), k=want, num_threads=1,
                                                 filter=allowed_labels.__contains__)
    except RuntimeError:
        result = exact(part, query, mask, k)  # the filtered walk found fewer than k
        result.rounds = 1
        return result
    return VectorResult(labels[0].astype(np.int64), dists[0].astype(np.float32), HNSW_FILTER, 1, round_ef)


def vector_top_k(part: Partition, query: np.ndarray, mask: np.ndarray | None, k: int, ef: int,
                 strategy: str = "") -> VectorResult:
    """Local top-k by vector among the allowed documents (mask None = every live one): k whenever k qualify."""
    live = part.live
    allowed = live if mask is None else int(mask.sum())
    if strategy not in STRATEGIES:
        strategy = HNSW if mask is None and live > PLAN_EXACT_ALWAYS else choose(allowed, live, k, ef)
    if strategy == EMPTY or allowed == 0:
        return VectorResult(np.empty(0, np.int64), np.empty(0, np.float32), EMPTY)
    if strategy == EXACT:
        return exact(part, query, mask, k)
    if strategy == HNSW_FILTER and mask is not None:
        return hnsw_filter(part, query, mask, allowed, k, ef)
    return hnsw_post_filter(part, query, mask, allowed, k, ef)
