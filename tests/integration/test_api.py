"""The public API through the real cluster: collections, documents, exact small-scale search semantics."""

from __future__ import annotations

import numpy as np
import pytest

import shoal
from shoal.serve import LocalCluster
from tests.support.data import random_vectors
from tests.support.oracle import exact_top_k


def test_collection_lifecycle(cluster: LocalCluster, client: shoal.Client, collection_name: str) -> None:
    """Create, list, describe and drop; the spec comes back as given; dropping deletes the shards' data."""
    info = client.create_collection(collection_name, dim=8, metric="l2", shards=2, m=8, ef_construction=64,
                                    ef_search=32)
    assert (info.dim, info.metric, info.shards, info.m, info.ef_construction, info.ef_search) == \
        (8, "l2", 2, 8, 64, 32)
    assert collection_name in [c.name for c in client.list_collections()]
    described = client.describe_collection(collection_name)
    assert described.count == 0 and len(described.shard_info) == 2
    client.upsert(collection_name, ["a"], np.ones((1, 8)))
    shard_dirs = list((cluster.data_dir / "collections").glob(f"{collection_name}-*/shard-*"))
    assert len(shard_dirs) == 2
    client.drop_collection(collection_name)
    assert not any(d.exists() for d in shard_dirs)
    assert not shard_dirs[0].parent.exists()
    assert collection_name not in [c.name for c in client.list_collections()]
    with pytest.raises(shoal.NotFound):
        client.count(collection_name)


def test_upsert_get_replace_delete(client: shoal.Client, collection_name: str) -> None:
    """Documents round-trip with payloads; upsert replaces; delete removes; counts follow."""
    client.create_collection(collection_name, dim=4, shards=3)
    vectors = random_vectors(50, 4, seed=1)
    ids = [f"doc-{i}" for i in range(50)]
    payloads = [{"n": i, "name": f"x{i}", "ok": i % 2 == 0, "score": i / 3, "tags": ["a", str(i)]} for i in range(50)]
    assert client.upsert(collection_name, ids, vectors, payloads) == 50
    assert client.count(collection_name) == 50
    got = client.get(collection_name, ["doc-7", "missing", "doc-3"])
    assert [d.id for d in got] == ["doc-7", "doc-3"]
    np.testing.assert_array_equal(got[0].vector, vectors[7])
    assert got[0].payload == payloads[7]

    new = np.array([[1, 0, 0, 0]], dtype=np.float32)
    client.upsert(collection_name, ["doc-7"], new, [{"n": -1}])
    again = client.get(collection_name, ["doc-7"])[0]
    np.testing.assert_array_equal(again.vector, new[0])
    assert again.payload == {"n": -1}
    assert client.count(collection_name) == 50

    assert client.delete(collection_name, ["doc-7", "doc-8", "never-existed"]) == 2
    assert client.count(collection_name) == 48
    assert client.get(collection_name, ["doc-7", "doc-8"]) == []
    hits = client.search(collection_name, new[0], k=48)
    assert {"doc-7", "doc-8"}.isdisjoint(h.id for h in hits)
    assert len(hits) == 48


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_small_search_is_exact_with_scores(client: shoal.Client, collection_name: str, metric: str) -> None:
    """On a small collection HNSW is exact: ids, order and scores match numpy for every metric."""
    vectors = random_vectors(400, 16, seed=2)
    queries = random_vectors(20, 16, seed=3)
    ids = [f"p{i:03d}" for i in range(400)]
    client.create_collection(collection_name, dim=16, metric=metric, shards=3)
    client.upsert(collection_name, ids, vectors)
    results = client.search_batch(collection_name, queries, k=10, ef=400)
    idx, dist = exact_top_k(metric, queries, vectors, 10)
    for q, hits in enumerate(results):
        assert [h.id for h in hits] == [ids[i] for i in idx[q]]
        expected = dist[q] if metric == "l2" else 1.0 - dist[q]
        np.testing.assert_allclose([h.score for h in hits], expected, rtol=1e-4, atol=1e-4)
    single = client.search(collection_name, queries[5], k=10, ef=400)
    assert [h.id for h in single] == [h.id for h in results[5]]


def test_k_above_count_and_ties_by_id(client: shoal.Client, collection_name: str) -> None:
    """k larger than the collection returns everything; equal scores come back ordered by id."""
    client.create_collection(collection_name, dim=3, metric="cosine", shards=3)
    ids = ["e", "b", "d", "a", "c"]
    client.upsert(collection_name, ids, np.tile([[1.0, 2.0, 3.0]], (5, 1)))
    hits = client.search(collection_name, [1.0, 2.0, 3.0], k=100)
    assert [h.id for h in hits] == sorted(ids)
    assert [round(h.score, 5) for h in hits] == [1.0] * 5
