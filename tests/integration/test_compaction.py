"""Compaction through the public API: Compact per collection or per shard, figures in DescribeCollection and in
Prometheus, recall after a rebuild, new HNSW parameters, and bad requests."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest

import shoal
from coordinator.router import shard_of
from coordinator.settings import CoordinatorSettings
from shoal.serve import LocalCluster
from tests.support.data import random_vectors
from tests.support.oracle import exact_top_k, recall_at_k

DIM = 16
N = 4000
# Under the session cluster's compaction_min_tombstones in every shard, whichever ids a shard owns: the scheduler
# never rebuilds these shards on its own, so only the test's Compact calls do.
TOMBSTONES_PER_SHARD = CoordinatorSettings().compaction_min_tombstones - 100


def filled(client: shoal.Client, name: str, shards: int = 2) -> tuple[list[str], np.ndarray]:
    """N documents, then TOMBSTONES_PER_SHARD of each shard's deleted; returns the live ids and vectors."""
    client.create_collection(name, dim=DIM, metric="l2", shards=shards, tombstone_threshold=0.3)
    vectors = random_vectors(N, DIM, seed=11)
    ids = [f"d{i}" for i in range(N)]
    for start in range(0, N, 1000):
        client.upsert(name, ids[start:start + 1000], vectors[start:start + 1000],
                      [{"i": i} for i in range(start, start + 1000)])
    owner = shard_of(ids, shards)
    gone = np.zeros(N, dtype=bool)
    for s in range(shards):
        gone[np.flatnonzero(owner == s)[:TOMBSTONES_PER_SHARD]] = True
    client.delete(name, [i for i, g in zip(ids, gone, strict=True) if g])
    return [i for i, g in zip(ids, gone, strict=True) if not g], vectors[~gone]


def test_compact_collection_drops_tombstones_keeps_documents_and_recall(client: shoal.Client,
                                                                         collection_name: str) -> None:
    """Before: nearly half the graph is tombstones; after Compact(wait): none, same documents, recall@10 >= 0.95."""
    live_ids, live_vecs = filled(client, collection_name)
    before = client.describe_collection(collection_name)
    assert before.tombstone_threshold == pytest.approx(0.3) and before.replication_factor == 1
    assert [s["tombstones"] for s in before.shard_info] == [TOMBSTONES_PER_SHARD] * 2
    assert all(0.35 < s["tombstone_ratio"] < 0.6 and s["available"] for s in before.shard_info)
    assert all(s["memory_bytes"] > 0 and s["disk_bytes"] > 0 for s in before.shard_info)

    shards = client.compact(collection_name, wait=True)
    assert [s["index"] for s in shards] == [0, 1]
    assert all(s["tombstones"] == 0 and s["rebuild"]["total"] >= 1 and not s["rebuild"]["running"]
               and s["rebuild"]["last_reason"] == "request" and s["rebuild"]["last_finished_at"] > 0
               for s in shards)
    after = client.describe_collection(collection_name)
    assert after.count == len(live_ids) == before.count
    assert sum(s["memory_bytes"] for s in after.shard_info) < sum(s["memory_bytes"] for s in before.shard_info)

    queries = random_vectors(50, DIM, seed=12)
    _, true_d = exact_top_k("l2", queries, live_vecs, 10)
    found = client.search_batch(collection_name, queries, k=10, with_payload=True)
    recall = recall_at_k([np.array([h.distance for h in hits]) for hits in found], true_d)
    print(f"\nrecall@10 after compaction: {recall:.3f}")
    assert recall >= 0.95
    assert all(h.id in set(live_ids) and h.payload["i"] == int(h.id[1:]) for hits in found for h in hits)
    docs = client.get(collection_name, live_ids[:5])
    np.testing.assert_array_equal(np.stack([d.vector for d in docs]), live_vecs[:5])


def test_compact_one_shard_with_new_hnsw_parameters(client: shoal.Client, collection_name: str) -> None:
    """Compact of shard 1 with M 24 rebuilds that shard only; the collection's M is the new one."""
    filled(client, collection_name)
    shards = client.compact(collection_name, shards=[1], m=24, ef_construction=80, wait=True)
    assert [(s["index"], s["m"], s["ef_construction"], s["tombstones"]) for s in shards] == [(1, 24, 80, 0)]
    info = client.describe_collection(collection_name)
    by_index = {s["index"]: s for s in info.shard_info}
    assert by_index[0]["tombstones"] == TOMBSTONES_PER_SHARD and by_index[0]["m"] == 16
    assert by_index[0]["rebuild"]["total"] == 0
    assert info.m == 24 and info.ef_construction == 80


def test_compact_refuses_bad_requests(client: shoal.Client, collection_name: str) -> None:
    """Unknown collection, shard out of range, M out of range: clear errors, nothing started."""
    client.create_collection(collection_name, dim=DIM, shards=2)
    with pytest.raises(shoal.NotFound):
        client.compact("no-such-collection")
    with pytest.raises(shoal.InvalidArgument, match="no shard 5"):
        client.compact(collection_name, shards=[5])
    with pytest.raises(shoal.InvalidArgument, match="hnsw m"):
        client.compact(collection_name, m=1000)
    with pytest.raises(shoal.InvalidArgument, match="tombstone_threshold"):
        client.create_collection(collection_name + "x", dim=DIM, tombstone_threshold=1.5)
    with pytest.raises(shoal.InvalidArgument, match="replication_factor"):
        client.create_collection(collection_name + "y", dim=DIM, replication_factor=9)


def test_shard_figures_are_prometheus_metrics(cluster: LocalCluster, client: shoal.Client,
                                              collection_name: str) -> None:
    """A shard's metrics endpoint serves its tombstone ratio, sizes and rebuild figures."""
    filled(client, collection_name, shards=1)
    client.compact(collection_name, wait=True)
    client.describe_collection(collection_name)  # a Stats call refreshes the gauges
    where = cluster.shard_tool("locate", collection_name, 0)
    text = urllib.request.urlopen(f"http://127.0.0.1:{where['metrics_port']}/metrics", timeout=10).read().decode()
    for family in ("shoal_shard_tombstone_ratio", "shoal_shard_index_memory_bytes", "shoal_shard_index_disk_bytes",
                   "shoal_shard_rebuilds_running", "shoal_shard_last_rebuild_timestamp_seconds",
                   "shoal_shard_last_rebuild_duration_seconds", "shoal_shard_rebuilds_started_total"):
        assert family in text, family
    line = next(x for x in text.splitlines() if x.startswith("shoal_shard_rebuilds_finished{"))
    assert float(line.split()[-1]) >= 1
