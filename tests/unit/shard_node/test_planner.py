"""The per-shard planner: every strategy answers k hits whenever k qualify, and matches brute force."""

from __future__ import annotations

import numpy as np
import pytest

from shard_node import planner
from shard_node.allowed import Allowed
from shard_node.partition import Partition
from shard_node.settings import PartitionSpec
from tests.support.data import clustered
from tests.support.oracle import exact_top_k, recall_at_k

N, K = 4000, 10


@pytest.fixture(scope="module")
def part() -> tuple[Partition, np.ndarray, np.ndarray]:
    base, queries = clustered(N, 20, dim=32, intrinsic=16, clusters=50, seed=3)
    p = Partition(PartitionSpec(dim=32, metric="cosine", ef_search=64), capacity=N)
    p.upsert([f"v{i}" for i in range(N)], base)
    p.delete([f"v{i}" for i in range(0, N, 10)])  # tombstones in the graph
    return p, base, queries


@pytest.mark.parametrize("selectivity", [0.001, 0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("strategy", ["", planner.EXACT, planner.HNSW, planner.HNSW_FILTER])
def test_k_hits_and_recall_at_every_selectivity(part, selectivity, strategy) -> None:
    p, base, queries = part
    rng = np.random.default_rng(int(selectivity * 1000))
    mask = (rng.random(N) < selectivity) & p.live_mask()
    if selectivity == 0.001:
        mask[np.flatnonzero(p.live_mask())[:3]] = True  # fewer than k qualify
    found, truth = [], []
    for query in queries:
        r = planner.vector_top_k(p, query, Allowed(np.flatnonzero(mask), p.version), K, 64, strategy)
        assert len(r.labels) == min(K, int(mask.sum()))
        assert mask[r.labels].all()
        rows = np.flatnonzero(mask)
        _, d = exact_top_k("cosine", query[None], base[rows], K)
        found.append(r.distances)
        truth.append(d[0])
    assert recall_at_k(found, np.asarray(truth)) >= 0.95


def test_choice_follows_the_allowed_set_size() -> None:
    assert planner.choose(0, 10_000, 10, 64) == planner.EMPTY
    assert planner.choose(500, 100_000, 10, 64) == planner.EXACT
    assert planner.choose(90_000, 100_000, 10, 64) == planner.HNSW


def test_exclusion_of_the_query_neighbourhood_searches_deeper(part) -> None:
    """A filter that removes the query's own top-300 still yields the next k."""
    p, base, queries = part
    query = queries[0]
    d = 1 - (base @ query) / np.linalg.norm(base, axis=1) / np.linalg.norm(query)
    d[~p.live_mask()] = np.inf
    order = np.argsort(d)
    mask = p.live_mask().copy()
    mask[order[:300]] = False
    r = planner.vector_top_k(p, query, Allowed(np.flatnonzero(mask), p.version), K, 64)
    assert len(r.labels) == K and mask[r.labels].all()
    assert r.rounds >= 2
    assert recall_at_k([r.distances], np.sort(d[mask])[None, :K]) >= 0.9
