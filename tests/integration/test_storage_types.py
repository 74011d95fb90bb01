"""Storage types through the cluster: creation, search against the oracle, Get precision, figures by part in
DescribeCollection and Prometheus, a compaction that keeps the type, and bad names and settings refused."""

from __future__ import annotations

import urllib.request

import grpc
import numpy as np
import pytest

import shoal
from shoal.serve import LocalCluster
from tests.support.oracle import exact_top_k, recall_at_k
from tests.unit.shard_node.test_storage import clustered

DIM, N, K = 32, 1200, 10
PARTS = ("vectors", "graph", "payloads", "text")


def filled(client: shoal.Client, name: str, storage: str) -> np.ndarray:
    vectors = clustered(N, DIM, 21)
    client.create_collection(name, dim=DIM, metric="cosine", shards=2, storage=storage,
                             fields={"title": "text"})
    client.upsert(name, [f"d{i}" for i in range(N)], vectors, [{"title": f"doc {i}"} for i in range(N)])
    return vectors


@pytest.mark.parametrize("storage", ["float16", "int8", "binary"])
def test_a_collection_keeps_its_storage_type_end_to_end(client: shoal.Client, collection_name: str,
                                                         storage: str) -> None:
    vectors = filled(client, collection_name, storage)
    queries = clustered(20, DIM, 22)
    _, true_d = exact_top_k("cosine", queries, vectors, K)
    found = client.search_batch(collection_name, queries, k=K, ef=200)
    assert recall_at_k([np.array([h.distance for h in hits]) for hits in found], true_d) >= 0.95

    got = {d.id: d.vector for d in client.get(collection_name, ["d3", "d700"], with_vectors=True)}
    tol = 2.0**-11 if storage != "int8" else 1 / 254  # half precision, or half an int8 step of max |x|
    for doc_id, vec in got.items():
        want = vectors[int(doc_id[1:])]
        assert np.all(np.abs(np.asarray(vec) - want) <= np.abs(want).max() * tol + 1e-6)

    info = client.describe_collection(collection_name)
    assert info.storage == storage and info.count == N
    assert all(s["storage"] == storage for s in info.shard_info)
    assert sorted(info.memory) == sorted(PARTS)
    assert info.memory["vectors"] > 0 and info.memory["payloads"] > 0 and info.memory["text"] > 0
    assert (info.memory["graph"] == 0) == (storage == "binary")
    assert info.memory["vectors"] == sum(s["memory"]["vectors"] for s in info.shard_info)

    client.compact(collection_name, wait=True)  # a rebuild writes a snapshot: disk figures by part appear
    after = client.describe_collection(collection_name)
    assert after.storage == storage and after.count == N
    assert after.disk["vectors"] > 0 and after.disk["payloads"] > 0 and after.disk["text"] == 0
    assert (after.disk["graph"] == 0) == (storage == "binary")
    again = client.search_batch(collection_name, queries, k=K, ef=200)
    assert recall_at_k([np.array([h.distance for h in hits]) for hits in again], true_d) >= 0.95


def test_binary_oversampling_is_a_query_setting(client: shoal.Client, collection_name: str) -> None:
    vectors = filled(client, collection_name, "binary")
    queries = clustered(20, DIM, 23)
    _, true_d = exact_top_k("cosine", queries, vectors, K)

    def recall(oversample: int) -> float:
        hits = client.search_batch(collection_name, queries, k=K, oversample=oversample)
        return recall_at_k([np.array([h.distance for h in row]) for row in hits], true_d)

    deep = recall(0)
    assert deep >= 0.95
    assert recall(1) < deep  # 200 candidates of 600 a shard rather than 640: the setting reached the shards
    with pytest.raises(shoal.InvalidArgument, match="oversample"):
        client.search_batch(collection_name, queries, k=K, oversample=10**6)


def test_a_bad_storage_type_answers_invalid_argument_with_the_choices(client: shoal.Client,
                                                                      collection_name: str) -> None:
    with pytest.raises(shoal.InvalidArgument, match="float32, float16, int8, binary") as err:
        client.create_collection(collection_name, dim=DIM, storage="fp4")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert collection_name not in {c.name for c in client.list_collections()}


def test_figures_by_part_are_prometheus_metrics(cluster: LocalCluster, client: shoal.Client,
                                                collection_name: str) -> None:
    filled(client, collection_name, "float16")
    client.describe_collection(collection_name)
    where = cluster.shard_tool("locate", collection_name, 0)
    text = urllib.request.urlopen(f"http://127.0.0.1:{where['metrics_port']}/metrics", timeout=10).read().decode()
    for family in ("shoal_shard_memory_bytes", "shoal_shard_disk_bytes"):
        lines = [x for x in text.splitlines() if x.startswith(family + "{") and collection_name in x]
        assert {part for part in PARTS if any(f'part="{part}"' in x for x in lines)} >= {"vectors", "payloads"}
    vec = next(x for x in text.splitlines()
               if x.startswith("shoal_shard_memory_bytes{") and collection_name in x and 'part="vectors"' in x)
    assert float(vec.split()[-1]) > 0
