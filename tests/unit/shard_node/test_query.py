"""A shard's query path: the allowed-rows cache, NOT near exclusions per candidate, and the rank form's local top,
each against numpy over the stored vectors."""

from __future__ import annotations

import numpy as np
import pytest

from protos import query_tree as q
from protos import shard_pb2
from protos.wire import pack_vector
from shard_node import planner
from shard_node.allowed import Allowed, AllowedCache
from shard_node.near import top_similar
from shard_node.partition import Partition
from shard_node.query import allowed_set, run_query
from shard_node.settings import PartitionSpec
from tests.support.data import clustered
from tests.support.oracle import exact_top_k, recall_at_k

N, K, DIM = 3000, 10, 32


@pytest.fixture(scope="module")
def part() -> tuple[Partition, np.ndarray, np.ndarray, np.ndarray]:
    base, queries = clustered(N, 20, dim=DIM, intrinsic=16, clusters=40, seed=5)
    kinds = np.asarray(["a", "b", "c", "d", "e"])[np.arange(N) % 5]
    p = Partition(PartitionSpec(dim=DIM, metric="cosine", ef_search=64, fields={"kind": "keyword", "n": "int"}),
                  capacity=N)
    p.upsert([f"v{i}" for i in range(N)], base, [{"kind": str(kinds[i]), "n": i} for i in range(N)])
    p.delete([f"v{i}" for i in range(0, N, 13)])
    return p, base, queries, kinds


def live(p: Partition) -> np.ndarray:
    return p.live_mask()[:N]  # a test may have written more documents past the N of the fixture


def search(p: Partition, vector: np.ndarray, node, k: int = K, strategy: str = "") -> shard_pb2.ShardQueryResponse:
    req = shard_pb2.ShardQueryRequest(vector=pack_vector(vector), k=k, strategy=strategy)
    if node is not None:
        req.filter.CopyFrom(node)
    return run_query(p, req, 0)


def cosine(base: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (base @ v) / (np.linalg.norm(base, axis=1) * np.linalg.norm(v))


def test_a_filter_is_evaluated_once_per_version_and_writes_invalidate(part) -> None:
    p, base, queries, kinds = part
    node = q.and_(q.eq("kind", "b"), q.range_("n", lt=2000))
    search(p, queries[0], node)
    hits_before = p.allowed_cache.hits
    resp = search(p, queries[1], node)
    assert p.allowed_cache.hits == hits_before + 1
    with p.searching(p.spec.ef_search):
        entry, key, _, _ = allowed_set(p, node)
    assert entry.rows is not None and key[1] == p.version  # the exact plan gathered its rows once
    mask = live(p) & (kinds == "b") & (np.arange(N) < 2000)
    assert resp.plan.allowed == mask.sum() == entry.count
    # the cached rows answer exactly (this query ran on them without evaluating the filter again)
    _, truth = exact_top_k("cosine", queries[1][None], base[mask], K)
    np.testing.assert_allclose(np.frombuffer(resp.vector_hits.scores, dtype="<f4"), truth[0], atol=1e-5)
    # a write bumps the version: the next query sees the new document
    p.upsert(["new"], queries[1][None] * 1.0, [{"kind": "b", "n": 1}])
    resp = search(p, queries[1], node)
    assert resp.vector_hits.ids[0] == "new"
    assert resp.plan.allowed == mask.sum() + 1
    p.delete(["new"])
    assert "new" not in search(p, queries[1], node).vector_hits.ids


def test_cache_is_bounded_in_bytes() -> None:
    cache = AllowedCache(max_bytes=10_000)
    for i in range(10):
        cache.put((i, 0), Allowed(np.arange(400, dtype=np.int64), 0))  # 3,200 bytes each
    assert len(cache) == 3
    assert cache.get((9, 0)) is not None and cache.get((0, 0)) is None
    cache.put(("later", 1), Allowed(np.arange(4, dtype=np.int64), 1))
    assert len(cache) == 1  # older versions are stale for good


def test_a_batch_sharing_a_filter_is_one_exact_scan(part) -> None:
    p, base, queries, kinds = part
    mask = live(p) & (kinds == "c")
    allowed = Allowed(np.flatnonzero(mask), p.version)
    results = planner.exact_many(p, queries, allowed, K)
    _, truth = exact_top_k("cosine", queries, base[mask], K)
    assert all(len(r.labels) == K and mask[r.labels].all() for r in results)
    np.testing.assert_allclose(np.stack([r.distances for r in results]), truth, atol=1e-5)


@pytest.mark.parametrize("with_filter", [False, True])
@pytest.mark.parametrize("strategy", ["", planner.EXACT, planner.HNSW])
def test_not_near_threshold_is_checked_per_candidate(part, with_filter, strategy) -> None:
    p, base, queries, kinds = part
    found, truth = [], []
    for i, query in enumerate(queries):
        excluded = 0.8 * query + 0.2 * queries[(i + 1) % len(queries)]
        tau = float(np.sort(cosine(base, excluded))[-60])  # the exclusion eats about the query's top 60
        node = q.not_(q.near(excluded.tolist(), min_similarity=tau))
        mask = live(p) & (cosine(base, excluded) < tau)
        if with_filter:
            node = q.and_(q.eq("kind", "a"), node)
            mask &= kinds == "a"
        resp = search(p, query, node, strategy=strategy)
        labels = np.asarray([int(x[1:]) for x in resp.vector_hits.ids])
        assert len(labels) == K and mask[labels].all()  # k hits, never an excluded one
        found.append(np.frombuffer(resp.vector_hits.scores, dtype="<f4"))
        truth.append(exact_top_k("cosine", query[None], base[mask], K)[1][0])
    assert recall_at_k(found, np.asarray(truth)) >= 0.95


def test_not_near_applies_to_text_and_plain_filters_alike(part) -> None:
    p, base, queries, _ = part
    node = q.and_(q.not_(q.near(queries[0].tolist(), min_similarity=0.5)), q.not_(q.eq("kind", "a")))
    with p.searching(p.spec.ef_search):
        allowed, _, exclusions, _ = allowed_set(p, node)
    assert len(exclusions) == 1 and allowed.count == int((live(p) & (part[3] != "a")).sum())


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_top_similar_equals_numpy(metric) -> None:
    rng = np.random.default_rng(9)
    base = rng.standard_normal((500, 8)).astype(np.float32)
    p = Partition(PartitionSpec(dim=8, metric=metric), capacity=64)
    p.upsert([f"v{i}" for i in range(500)], base)
    p.delete([f"v{i}" for i in range(0, 500, 7)])
    alive = np.ones(500, dtype=bool)
    alive[::7] = False
    v = rng.standard_normal(8).astype(np.float32)
    if metric == "cosine":
        sims = cosine(base, v)
    elif metric == "ip":
        sims = base @ v
    else:
        sims = -((base - v) ** 2).sum(axis=1)
    sims[~alive] = -np.inf
    order = np.argsort(-sims, kind="stable")[:40]
    ids, got = top_similar(p, v, 40)
    assert ids == [f"v{i}" for i in order]
    np.testing.assert_allclose(got, sims[order], rtol=1e-4, atol=1e-4)
    assert len(top_similar(p, v, 10_000)[0]) == alive.sum()


@pytest.mark.parametrize(("ftype", "found"), [("text:korean", {"ko0", "ko2"}), ("text:english", {"ko2"})])
def test_korean_bm25_through_the_shard_query(ftype, found) -> None:
    texts = ["파이썬으로 작성된 HTTP 클라이언트", "러스트로 만든 웹 서버", "파이썬 인터프리터"]
    p = Partition(PartitionSpec(dim=4, metric="cosine", fields={"body": ftype}), capacity=8)
    p.upsert([f"ko{i}" for i in range(3)], np.eye(4, dtype=np.float32)[:3] + 0.1, [{"body": t} for t in texts])
    req = shard_pb2.ShardQueryRequest(k=5)
    req.match.field, req.match.text = "body", "파이썬"
    resp = run_query(p, req, 0)
    assert set(resp.text_hits.ids) == found and resp.plan.text_matches == len(found)


def test_a_near_set_inside_a_filter_is_not_cached(part) -> None:
    p, base, queries, kinds = part
    node = q.or_(q.near(queries[0].tolist(), min_similarity=0.9), q.eq("kind", "a"))
    before = len(p.allowed_cache)
    resp = search(p, queries[0], node)
    sims = cosine(base, queries[0])
    mask = live(p) & ((sims >= 0.9) | (kinds == "a"))
    assert resp.plan.allowed == mask.sum() and len(p.allowed_cache) == before


def test_rank_form_not_in_one_round_equals_brute_force() -> None:
    """NOT near:v@top:K across partitions: each returns its local top-K of v (top_similar) and its main top-(k+K);
    the global top-K of v is found from those lists alone, and dropping it from the merged candidates is exact."""
    base, queries = clustered(1500, 5, dim=16, intrinsic=8, clusters=20, seed=11)
    parts = [Partition(PartitionSpec(dim=16, metric="cosine", ef_search=64), capacity=600) for _ in range(3)]
    for i, p in enumerate(parts):
        rows = np.arange(i, 1500, 3)
        p.upsert([f"v{j}" for j in rows], base[rows])
    top_k_of_v = 40
    for n, query in enumerate(queries):
        v = queries[(n + 1) % len(queries)] * 0.3 + query * 0.7
        local = [top_similar(p, v, top_k_of_v) for p in parts]
        pooled = sorted(((float(s), i) for ids, sims in local for i, s in zip(ids, sims, strict=True)),
                        key=lambda x: (-x[0], x[1]))
        excluded = {i for _, i in pooled[:top_k_of_v]}
        candidates = []
        for p in parts:
            r = planner.vector_top_k(p, query, None, K + top_k_of_v, 64, planner.EXACT)
            candidates += list(zip(r.distances.tolist(), p.ids_of(r.labels), strict=True))
        got = [i for _, i in sorted(candidates) if i not in excluded][:K]
        sims = cosine(base, v)
        b_set = {f"v{j}" for j in np.lexsort((np.arange(1500), -sims))[:top_k_of_v]}
        assert excluded == b_set  # the global top-K of v, from the local lists alone
        keep = np.asarray([f"v{j}" not in b_set for j in range(1500)])
        d = 1 - cosine(base, query)
        want = [f"v{j}" for j in np.flatnonzero(keep)[np.argsort(d[keep], kind="stable")[:K]]]
        assert got == want


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_exact_plan_equals_numpy_in_every_metric(metric) -> None:
    rng = np.random.default_rng(4)
    base = rng.standard_normal((800, 8)).astype(np.float32)
    p = Partition(PartitionSpec(dim=8, metric=metric, fields={"kind": "keyword"}), capacity=64)
    p.upsert([f"v{i}" for i in range(800)], base, [{"kind": "ab"[i % 2]} for i in range(800)])
    queries = rng.standard_normal((6, 8)).astype(np.float32)
    rows = np.arange(0, 800, 2)
    _, truth = exact_top_k(metric, queries, base[rows], K)
    for use in range(2):  # the first query gathers the rows, the second scans them from the cache
        for query, want in zip(queries, truth, strict=True):
            resp = search(p, query, q.eq("kind", "a"), strategy=planner.EXACT)
            assert all(int(i[1:]) % 2 == 0 for i in resp.vector_hits.ids), use
            np.testing.assert_allclose(np.frombuffer(resp.vector_hits.scores, dtype="<f4"), want, rtol=1e-4,
                                       atol=1e-4)
    batch = planner.exact_many(p, queries, Allowed(rows, p.version), K)
    np.testing.assert_allclose(np.stack([r.distances for r in batch]), truth, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("step", [2, 1])   # half the rows: gathered; all of them: decoded in one pass
@pytest.mark.parametrize("storage", ["float32", "int8"])
@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_an_allowed_set_too_large_to_cache_is_scanned_for_the_call(metric: str, storage: str, step: int) -> None:
    """With no room in the allowed-rows cache the exact plan decodes the rows for the call alone."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((600, 8)).astype(np.float32)
    p = Partition(PartitionSpec(dim=8, metric=metric, storage=storage), capacity=64, allowed_cache_mb=0)
    p.upsert([f"v{i}" for i in range(600)], base)
    p.delete(["v3", "v5"])
    stored = p.rows(np.arange(600))  # what the partition holds (int8 rounds the vectors)
    rows = np.arange(1, 600, step)
    keep = rows[(rows != 3) & (rows != 5)]
    queries = rng.standard_normal((4, 8)).astype(np.float32)
    allowed = Allowed(rows, p.version - 1)  # a version behind: the deletes drop out
    results = planner.exact_many(p, queries, allowed, K)
    if metric == "cosine":  # exact scans divide by the norms of the vectors as written, kept beside the codes
        dots = queries @ stored[keep].T / (np.linalg.norm(queries, axis=1)[:, None] * p.norms[keep][None, :])
        truth = np.sort(1.0 - dots, axis=1)[:, :K]
    else:
        _, truth = exact_top_k(metric, queries, stored[keep], K)
    for r, want in zip(results, truth, strict=True):
        assert set(r.labels.tolist()) <= set(keep.tolist())
        np.testing.assert_allclose(r.distances, want, rtol=1e-4, atol=1e-4)
    assert allowed.rows is None  # nothing was kept
