"""The native HNSW graph (shard_node/graph.py): hnswlib's own answers for float32, the one copy read back, the
mask filter, and partitions saved before the graph held the vectors."""

from __future__ import annotations

import json
from pathlib import Path

import hnswlib
import numpy as np
import pytest

from shard_node.graph import Graph, code_size, element_size, layout
from shard_node.partition import GRAPH_FILE, Partition
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.snapshot import complete_snapshots
from shard_node.storage import Float16Copy, Int8Copy
from shard_node.store import ShardStore

DIM, N = 32, 2000


def data(seed: int, n: int = N) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_float32_graph_answers_as_hnswlib_does(metric: str) -> None:
    vectors, queries = data(1), data(2, 50)
    ref = hnswlib.Index(space=metric, dim=DIM)
    ref.init_index(max_elements=N, M=16, ef_construction=100, random_seed=100)
    ref.add_items(vectors, np.arange(N), num_threads=1)
    ref.set_ef(64)
    graph = Graph("float32", metric, DIM, N, 16, 100, 100)
    graph.add(vectors, np.arange(N), num_threads=1)
    graph.set_ef(64)
    want_l, want_d = ref.knn_query(queries, k=10, num_threads=1)
    got_l, got_d = graph.search(queries, 10)
    assert np.mean(got_l == want_l) > 0.99  # the same walk; only exact distance ties may order differently
    np.testing.assert_allclose(got_d, want_d, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["float32", "float16", "int8"])
def test_rows_come_back_from_the_graph_in_their_own_scale(kind: str) -> None:
    vectors = data(3) * 5.0
    graph = Graph(kind, "cosine", DIM, N)
    graph.add(vectors, np.arange(N))
    rows = graph.rows(np.array([7, 0, 1999]))
    if kind == "float32":
        np.testing.assert_array_equal(rows, vectors[[7, 0, 1999]])
    elif kind == "float16":
        np.testing.assert_allclose(rows, vectors[[7, 0, 1999]], rtol=2.0**-11)
    else:  # int8: within half a step of its row's scale
        want = vectors[[7, 0, 1999]]
        scale = np.abs(want).max(axis=1, keepdims=True) / 127.0
        assert np.all(np.abs(rows - want) <= scale / 2 + 1e-6)
    np.testing.assert_array_equal(graph.prefix(N)[[7, 0, 1999]], rows)
    # A decoded row encodes back to the same code: rebuilds do not drift.
    again = Graph(kind, "cosine", DIM, 4)
    again.add(rows, np.arange(3))
    np.testing.assert_array_equal(again.rows(np.arange(3)), rows)
    assert graph.vector_bytes() == N * code_size(kind, "cosine", DIM)
    with pytest.raises(RuntimeError, match="not in the graph"):
        graph.rows(np.array([N + 5]))


def test_layout_and_link_figures_come_from_the_library(tmp_path: Path) -> None:
    assert [code_size(k, "cosine", DIM) for k in ("float32", "float16", "int8")] == [4 * DIM + 4, 2 * DIM, DIM + 4]
    assert code_size("float32", "l2", DIM) == 4 * DIM
    # level 0: the code, 2M links and their count, the label
    assert layout("int8", "l2", DIM, 8)[1] == DIM + 4 + 16 * 4 + 4 + 8
    graph = Graph("float16", "cosine", DIM, N)
    graph.add(data(7, N // 2), np.arange(N // 2))
    half = graph.graph_bytes()
    graph.add(data(8, N // 2), np.arange(N // 2, N))
    graph.add(data(9, 10), np.arange(10))  # replacing vectors keeps their levels
    assert graph.graph_bytes() > half
    graph.save(tmp_path / "g.bin")
    # counted as elements arrive, and from scratch after a load: the same figure
    assert Graph("float16", "cosine", DIM, N, path=tmp_path / "g.bin").graph_bytes() == graph.graph_bytes()


def test_the_mask_keeps_walks_to_allowed_labels_and_short_walks_fail() -> None:
    graph = Graph("float16", "l2", DIM, N)
    graph.add(data(4), np.arange(N))
    graph.set_ef(50)
    mask = np.zeros(N, bool)
    mask[::3] = True
    labels, _ = graph.search(data(5, 20), 10, num_threads=2, mask=mask)
    assert (labels % 3 == 0).all()
    tiny = np.zeros(N, bool)
    tiny[:4] = True
    with pytest.raises(RuntimeError, match="contiguous"):
        graph.search(data(5, 1), 10, mask=tiny)


def write_legacy_partition(directory: Path, storage: str, vectors: np.ndarray) -> PartitionSpec:
    """The files of a partition saved before the graph held the vectors: hnswlib's float32 graph plus the stored
    copy in the partition's type; label 3 deleted."""
    n = len(vectors)
    old = hnswlib.Index(space="cosine", dim=DIM)
    old.init_index(max_elements=n, M=16, ef_construction=100)
    old.add_items(vectors, np.arange(n))
    old.mark_deleted(3)
    old.save_index(str(directory / GRAPH_FILE))
    copy = Float16Copy(DIM, n) if storage == "float16" else Int8Copy(DIM, n)
    copy.put(np.arange(n), vectors)
    copy.save(directory, n)
    np.save(directory / "norms.npy", np.linalg.norm(vectors, axis=1).astype(np.float32))
    deleted = np.zeros(n, bool)
    deleted[3] = True
    np.save(directory / "deleted.npy", deleted)
    (directory / "ids.json").write_text(json.dumps([f"d{i}" for i in range(n)]))
    (directory / "payloads.jsonl").write_text("")
    return PartitionSpec(dim=DIM, metric="cosine", m=16, ef_construction=100, storage=storage)


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_a_partition_saved_beside_a_float32_graph_loads_into_its_type(storage: str, tmp_path: Path) -> None:
    """Snapshots from before the graph held the vectors: hnswlib's float32 graph plus the stored copy."""
    vectors = data(6, 300)
    spec = write_legacy_partition(tmp_path, storage, vectors)
    copy = Float16Copy(DIM, 300) if storage == "float16" else Int8Copy(DIM, 300)
    copy.put(np.arange(300), vectors)
    part = Partition.load(tmp_path, spec)
    assert part.migrated
    assert part.live == 299 and part.get(["d3"]) == []
    got = part.get(["d5"], with_vectors=True)[0][1]
    np.testing.assert_array_equal(got, copy.rows(np.array([5]))[0])
    ids, _ = part.search_matrix(vectors[10:11], 5, ef=64)
    assert ids[0][0] == "d10" and "d3" not in ids[0]
    out = tmp_path / "again"
    out.mkdir()
    part.save(out)
    assert element_size(out / GRAPH_FILE) == layout(storage, "cosine", DIM, 16)[1]
    assert not (out / "vectors.npy").exists() and not (out / "codes.npy").exists()  # the graph is the copy
    assert not Partition.load(out, spec).migrated


def test_a_store_writes_a_snapshot_right_after_converting_an_old_one(tmp_path: Path) -> None:
    """The conversion happens once: the store's next start finds a snapshot in the partition's own type."""
    vectors = data(6, 300)
    settings = ShardSettings(initial_capacity=64)
    store = ShardStore(tmp_path / "shard", PartitionSpec(dim=DIM, metric="cosine", m=16, ef_construction=100,
                                                         storage="int8"), settings)
    store.upsert([f"d{i}" for i in range(300)], vectors)
    store.snapshot()
    store.close()
    (snap,) = complete_snapshots(tmp_path / "shard" / "snapshots")
    for f in snap.iterdir():
        if f.name != "meta.json":
            f.unlink()
    spec = write_legacy_partition(snap, "int8", vectors)
    store = ShardStore(tmp_path / "shard", spec, settings)
    assert store.partition.migrated and store.partition.live == 299
    store.close()
    (fresh,) = complete_snapshots(tmp_path / "shard" / "snapshots")
    assert element_size(fresh / GRAPH_FILE) == layout("int8", "cosine", DIM, 16)[1]
    assert not (fresh / "codes.npy").exists()
    store = ShardStore(tmp_path / "shard", spec, settings)
    assert not store.partition.migrated and store.partition.live == 299
    store.close()
