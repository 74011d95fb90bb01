"""The per-shard vector planner: exact scan of the allowed set, post-filtered HNSW that searches deeper
until k allowed documents are found, or HNSW with hnswlib's filter inside the traversal.

The allowed set's exact size comes from the field postings, so the choice needs no estimate. The planner's
thresholds were measured when hnswlib's filter was a Python callback per visited node; `make bench-filter` on
the graph that checks the allowed set's mask in C (2026-12-07, BENCHMARKS.md) left the choices standing: the
filtered walk beats post-filtering only at ~10 % selectivity (134 against 87 q/s on the real corpus), where the
exact scan answers at 4,256, and is within a few percent of it at 50-100 %. So post-filtering stays the graph
plan: the graph is searched unfiltered with k and ef grown by the filter's selectivity, and the candidates are
checked against the allowed mask in one numpy step. When the allowed set is small, scanning it exactly is
cheaper than any graph search and its answer is exact: its rows are gathered once per (filter, partition
version) and kept in the partition's allowed-rows cache, so a query is one gemv.

`NOT near:v@tau` exclusions are checked on the candidates only, exactly, from the stored norms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shard_node.allowed import Allowed
from shard_node.fields import bitmap_of, labels_array
from shard_node.filters import Exclusion
from shard_node.near import excluded
from shard_node.partition import Partition
from shard_node.settings import (
    PLAN_ANTI_CORRELATED,
    PLAN_EF_PER_WANT,
    PLAN_EXACT_ALWAYS,
    PLAN_EXACT_PER_HNSW_EF,
    PLAN_EXCLUSION_DEPTH,
    PLAN_FULL_SCAN_SHARE,
    PLAN_GROWTH,
    PLAN_MAX_EF,
    PLAN_OVERSAMPLE,
    PLAN_SMALL_SORT,
)

EXACT, HNSW, HNSW_FILTER, EMPTY = "exact", "hnsw", "hnsw_filter", "empty"
HAMMING = "hamming"  # what HNSW plans run as on a binary partition: Hamming pass, float16 rescoring
STRATEGIES = (EXACT, HNSW, HNSW_FILTER)


@dataclass
class VectorResult:
    """A shard's local top-k among the allowed documents, and how it was found."""

    labels: np.ndarray
    distances: np.ndarray
    strategy: str
    rounds: int = 0
    ef: int = 0


def _empty(strategy: str = EMPTY) -> VectorResult:
    return VectorResult(np.empty(0, np.int64), np.empty(0, np.float32), strategy)


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


def _distances(metric: str, rows: np.ndarray, row_sq: np.ndarray | None, queries: np.ndarray) -> np.ndarray:
    """hnswlib-compatible distances of queries (m x dim) to prepared rows (unit rows for cosine)."""
    if len(queries) == 1:
        return _distances_one(metric, rows, row_sq, queries[0])[None, :]
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", queries, queries))
        queries = queries / np.maximum(norms, 1e-30)[:, None]
    dots = queries @ rows.T
    if metric == "l2":
        return np.maximum(row_sq[None, :] + np.einsum("ij,ij->i", queries, queries)[:, None] - 2.0 * dots, 0.0)
    return 1.0 - dots


def _distances_one(metric: str, rows: np.ndarray, row_sq: np.ndarray | None, q: np.ndarray) -> np.ndarray:
    """_distances of one query: a gemv (BLAS runs it faster than a 1-row gemm), then in-place arithmetic."""
    dots = rows @ q
    if metric == "cosine":
        dots *= np.float32(-1.0 / max(math.sqrt(float(q @ q)), 1e-30))
        dots += np.float32(1.0)
        return dots
    if metric == "l2":
        return np.maximum(row_sq + float(q @ q) - 2.0 * dots, 0.0)
    return np.float32(1.0) - dots


def _scan(metric: str, rows: np.ndarray, norms: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Distances of queries to decoded rows as the cached scan gives them: cosine divides the dot products by the
    stored norms (not the rows), l2 uses the rows' own squared norms."""
    dots = queries @ rows.T
    if metric == "cosine":
        qn = np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
        return 1.0 - dots / (norms[None, :] * qn)
    if metric == "l2":
        row_sq = np.einsum("ij,ij->i", rows, rows)
        return np.maximum(row_sq[None, :] + np.einsum("ij,ij->i", queries, queries)[:, None] - 2.0 * dots, 0.0)
    return 1.0 - dots


def _best(dists: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest of a 1-D array, best first."""
    if k < len(dists):
        part = np.argpartition(dists, k - 1)[:k]
        return part[np.argsort(dists[part], kind="stable")]
    return np.argsort(dists, kind="stable")


def admitted(part: Partition, labels: np.ndarray, allowed: Allowed | None, exclusions: Sequence[Exclusion]
             ) -> np.ndarray:
    """Which candidate labels the allowed set keeps and no exclusion removes; call it while `searching`."""
    keep = np.ones(len(labels), dtype=bool) if allowed is None else allowed.contains(labels)
    if exclusions and keep.any():
        keep[keep] = ~excluded(part, labels[keep], exclusions)
    return keep


def _top_without(part: Partition, labels: np.ndarray, dists: np.ndarray, k: int,
                 exclusions: Sequence[Exclusion]) -> tuple[np.ndarray, np.ndarray]:
    """The k best of (labels, dists) that no exclusion removes, checking the best candidates first."""
    if not exclusions:
        top = _best(dists, min(k, len(dists)))
        return labels[top], dists[top]
    depth = max(k, PLAN_EXCLUSION_DEPTH)
    while True:
        top = _best(dists, min(depth, len(dists)))
        top = top[admitted(part, labels[top], None, exclusions)]
        if len(top) >= k or depth >= len(dists):
            top = top[:k]
            return labels[top], dists[top]
        depth *= PLAN_GROWTH


def _current(part: Partition, allowed: Allowed) -> Allowed:
    """`allowed` as of the partition's version now: labels deleted since drop out, none written since join."""
    if allowed.version == part.version:
        return allowed
    return Allowed(labels_array(bitmap_of(allowed.labels) & part.live_bitmap()), part.version)


def exact_held(part: Partition, queries: np.ndarray, allowed: Allowed | None, k: int,
               exclusions: Sequence[Exclusion] = ()) -> list[VectorResult]:
    """exact_many for a caller already `searching` the partition."""
    queries = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
    entry = part.everything() if allowed is None else _current(part, allowed)
    if entry.count == 0:
        return [_empty(EXACT) for _ in queries]
    budget = part.allowed_cache.max_bytes // 2
    if entry.rows is None and entry.count * part.spec.dim * 4 > budget:
        # Too large to keep in the cache: its rows are decoded for this call only, every row when the set covers
        # most of the partition (one contiguous pass), else a gather of the allowed ones.
        if entry.count * PLAN_FULL_SCAN_SHARE >= part.size:
            dists = _scan(part.spec.metric, part.prefix(), part.norms[: part.size], queries)[:, entry.labels]
        else:
            dists = _scan(part.spec.metric, part.rows(entry.labels), part.norms[entry.labels], queries)
    else:
        rows, row_sq = entry.gathered(part.rows, part.norms, part.spec.metric)
        dists = _distances(part.spec.metric, rows, row_sq, queries)
    out = []
    for row in dists:
        labels, vals = _top_without(part, entry.labels, row, k, exclusions)
        out.append(VectorResult(labels, vals.astype(np.float32, copy=False), EXACT))
    return out


def exact_gathered(metric: str, entry: Allowed, query: np.ndarray, k: int) -> VectorResult:
    """The exact top-k of one query over an allowed set whose rows are already gathered (entry.rows set).

    Needs no gate: the rows are the entry's own copy, valid for its version. Cosine and ip rank by the dot
    product and turn only the k chosen into distances: at a few dozen rows each numpy call costs more than the
    gemv itself, so this path makes as few as it can."""
    if metric == "l2":
        dists = _distances_one(metric, entry.rows, entry.row_sq, query)
        top = _best(dists, min(k, len(dists)))
        return VectorResult(entry.labels[top], dists[top].astype(np.float32, copy=False), EXACT)
    dots = entry.rows @ query
    n = len(dots)
    if k < n and n > PLAN_SMALL_SORT:
        part = np.argpartition(dots, n - k)[n - k:]
        top = part[np.argsort(-dots[part], kind="stable")]
    else:  # one sort of a few hundred values costs less than a partition and a sort
        top = np.argsort(-dots, kind="stable")[:k]
    best = dots[top]
    if metric == "cosine":
        best *= np.float32(-1.0 / max(math.sqrt(float(query @ query)), 1e-30))
        best += np.float32(1.0)
    else:
        best = np.float32(1.0) - best
    return VectorResult(entry.labels[top], best.astype(np.float32, copy=False), EXACT)


def exact_many(part: Partition, queries: np.ndarray, allowed: Allowed | None, k: int,
               exclusions: Sequence[Exclusion] = ()) -> list[VectorResult]:
    """Brute force over the allowed labels (every live one when None) for a batch of queries: one gemm."""
    with part.searching(part.spec.ef_search):
        return exact_held(part, queries, allowed, k, exclusions)


def exact(part: Partition, query: np.ndarray, allowed: Allowed | None, k: int,
          exclusions: Sequence[Exclusion] = ()) -> VectorResult:
    """Brute force over the allowed labels (every live one when None)."""
    return exact_many(part, query.reshape(1, -1), allowed, k, exclusions)[0]


def _exact_after(rounds: int, part: Partition, query: np.ndarray, allowed: Allowed | None, k: int,
                 exclusions: Sequence[Exclusion]) -> VectorResult:
    result = exact(part, query, allowed, k, exclusions)
    result.rounds = rounds
    return result


def hnsw_post_filter(part: Partition, query: np.ndarray, allowed: Allowed | None, k: int, ef: int,
                     exclusions: Sequence[Exclusion] = ()) -> VectorResult:
    """Search the graph unfiltered, keep the allowed candidates; go deeper until k of them are found."""
    live = part.live
    n_allowed = live if allowed is None else allowed.count
    want = k if allowed is None else first_k(n_allowed, live, k)
    if allowed is not None or exclusions:
        # A walk's cost is its beam, not how many of the beam it returns: candidates up to the first round's
        # beam come free, and some of them will be filtered out.
        want = max(want, ef // PLAN_EF_PER_WANT if allowed is not None else ef)
    rounds = 0
    while True:
        want = min(want, part.live)
        # The candidates past the first k are what a filter keeps, so they need the graph's full precision too.
        # The beam must also hold about ef allowed documents, as a filtered walk at ef would.
        round_ef = max(ef, want) if allowed is None else beam(ef, want, n_allowed, live)
        rounds += 1
        try:
            with part.searching(round_ef):
                labels, dists = part.knn(query, want)
                asked = len(labels)
                keep = admitted(part, labels, allowed, exclusions)
                labels, dists = labels[keep], dists[keep]
        except RuntimeError:
            # Tombstones can leave the walk short of `want` live nodes: answer exactly.
            return _exact_after(rounds, part, query, allowed, k, exclusions)
        if len(labels) >= k or want >= part.live:
            strategy = HNSW if part.has_graph else HAMMING
            return VectorResult(labels[:k], dists[:k].astype(np.float32), strategy, rounds, round_ef)
        if n_allowed < want * PLAN_GROWTH / PLAN_OVERSAMPLE * PLAN_EXACT_PER_HNSW_EF:
            return _exact_after(rounds, part, query, allowed, k, exclusions)  # cheaper than going deeper
        if allowed is not None and not exclusions and len(labels) / asked < PLAN_ANTI_CORRELATED * n_allowed / live:
            # The filter removes the query's neighbourhood: the allowed documents lie far down the unfiltered
            # ranking. (NOT near exclusions instead go deeper: they remove a region, not most of the partition.)
            # The filtered walk's neighbours are excluded ones, so it needs a wider beam to reach the allowed region.
            result = hnsw_filter(part, query, allowed, k, PLAN_EF_PER_WANT * max(ef, want))
            result.rounds += rounds
            return result
        want *= PLAN_GROWTH


def hnsw_filter(part: Partition, query: np.ndarray, allowed: Allowed, k: int, ef: int,
                exclusions: Sequence[Exclusion] = ()) -> VectorResult:
    """hnswlib's own filtered search: the allowed-label check runs in C, against the set's mask, per visited
    node."""
    if exclusions or not part.has_graph:
        # The callback cannot score vectors; a binary partition has no graph to walk.
        return hnsw_post_filter(part, query, allowed, k, ef, exclusions)
    want = min(k, allowed.count)
    round_ef = max(ef, want)
    try:
        with part.searching(round_ef):
            labels, dists = part.filtered_knn(query, want, allowed.mask())
    except RuntimeError:
        return _exact_after(1, part, query, allowed, k, ())  # the filtered walk found fewer than k
    return VectorResult(labels, dists.astype(np.float32), HNSW_FILTER, 1, round_ef)


def plan(part: Partition, allowed: Allowed | None, k: int, ef: int, strategy: str = ""
         ) -> tuple[str, Allowed | None]:
    """The plan for the allowed set (`strategy` when it forces one), and the set it runs on (None = every live
    document, also for a filter that keeps them all)."""
    live = part.live
    if allowed is not None and allowed.count >= live and allowed.version == part.version:
        allowed = None  # the filter keeps everything: a plain search, with no per-candidate check
    n_allowed = live if allowed is None else allowed.count
    if n_allowed == 0:
        return EMPTY, allowed
    if strategy not in STRATEGIES:
        strategy = HNSW if allowed is None and live > PLAN_EXACT_ALWAYS else choose(n_allowed, live, k, ef)
    return strategy, allowed


def vector_top_k(part: Partition, query: np.ndarray, allowed: Allowed | None, k: int, ef: int,
                 strategy: str = "", exclusions: Sequence[Exclusion] = ()) -> VectorResult:
    """Local top-k by vector among the allowed documents (None = every live one), without the excluded ones:
    k whenever k qualify."""
    strategy, allowed = plan(part, allowed, k, ef, strategy)
    if strategy == EMPTY:
        return _empty()
    if strategy == EXACT:
        return exact(part, query, allowed, k, exclusions)
    if strategy == HNSW_FILTER and allowed is not None:
        return hnsw_filter(part, query, allowed, k, ef, exclusions)
    return hnsw_post_filter(part, query, allowed, k, ef, exclusions)
