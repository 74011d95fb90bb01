"""Collections and their data survive a coordinator restart and a restart of the whole cluster."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

import shoal
from shoal.serve import LocalCluster
from tests.support.data import random_vectors

DIM = 16


def snapshot_state(client: shoal.Client, names: list[str], queries: np.ndarray) -> dict:
    """What a user can see: collections, counts, and search results."""
    return {
        "collections": [(c.name, c.dim, c.metric, c.shards, c.storage) for c in client.list_collections()],
        "counts": [client.count(n) for n in names],
        "hits": [[(h.id, round(h.score, 5)) for h in hits]
                 for n in names for hits in client.search_batch(n, queries, k=5)],
    }


def placements(lc: LocalCluster) -> dict[str, list[list[int]]]:
    """Each collection's placement (shard -> replica -> node) as the catalogue records it."""
    raw = json.loads((lc.data_dir / "catalog.json").read_text())
    return {c["name"]: c["placement"] for c in raw["collections"]}


def fill(client: shoal.Client) -> list[str]:
    """Two collections (one of binary storage, searched without a graph) with some documents, a replace and
    a delete."""
    names = ["alpha", "beta"]
    client.create_collection("alpha", dim=DIM, metric="cosine", shards=3)
    client.create_collection("beta", dim=DIM, metric="l2", shards=2, storage="binary")
    for n, seed in zip(names, (1, 2), strict=True):
        client.upsert(n, [f"d{i}" for i in range(500)], random_vectors(500, DIM, seed=seed))
        client.upsert(n, ["d0"], random_vectors(1, DIM, seed=99))
        client.delete(n, ["d1", "d2"])
    return names


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_coordinator_restart_keeps_collections(tmp_path: Path, sig: int) -> None:
    """The catalogue is on disk and the shard actors outlive the coordinator."""
    queries = random_vectors(5, DIM, seed=3)
    with LocalCluster(tmp_path / "c") as lc, shoal.Client(lc.address) as client:
        names = fill(client)
        before = snapshot_state(client, names, queries)
        placement = placements(lc)
        assert sorted(placement) == names and all(len(p) == s for p, s in zip(placement.values(), (3, 2),
                                                                               strict=True))
        lc.restart_coordinator(sig)
        assert snapshot_state(client, names, queries) == before
        assert [c.storage for c in client.list_collections()] == ["float32", "binary"]
        assert placements(lc) == placement  # the partitions stay where the catalogue put them
        assert before["counts"] == [498, 498]


def test_full_cluster_restart_recovers_from_disk(tmp_path: Path) -> None:
    """Stopping Ray and the coordinator and starting anew on the same data brings back every document."""
    queries = random_vectors(5, DIM, seed=3)
    with LocalCluster(tmp_path / "c") as lc, shoal.Client(lc.address) as client:
        names = fill(client)
        before = snapshot_state(client, names, queries)
    with LocalCluster(tmp_path / "c") as lc, shoal.Client(lc.address) as client:
        assert snapshot_state(client, names, queries) == before


def hosted(lc: LocalCluster) -> set[str]:
    """Every partition some shard node's manifest lists."""
    return {key for m in (lc.data_dir / "collections" / "nodes").glob("node-*/partitions.json")
            for key in json.loads(m.read_text())}


def test_orphaned_partitions_are_closed_at_start_but_their_data_kept(tmp_path: Path) -> None:
    """Partitions whose collection left the catalogue (a crash mid-drop) are closed when a coordinator starts."""
    with LocalCluster(tmp_path / "c") as lc, shoal.Client(lc.address) as client:
        names = fill(client)
        before = hosted(lc)
        assert len(before) == 5
        lc.stop_coordinator()
        catalog = lc.data_dir / "catalog.json"
        raw = json.loads(catalog.read_text())
        gone = next(c for c in raw["collections"] if c["name"] == "beta")
        raw["collections"] = [c for c in raw["collections"] if c["name"] != "beta"]
        catalog.write_text(json.dumps(raw))
        lc.start_coordinator()
        after = hosted(lc)
        assert after == {k for k in before if not k.startswith(f"beta-{gone['uid']}/")}
        assert len(after) == 3
        assert [c.name for c in client.list_collections()] == ["alpha"]
        assert client.count(names[0]) == 498
        assert (lc.data_dir / "collections" / f"beta-{gone['uid']}" / "shard-0").is_dir()
