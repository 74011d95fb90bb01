"""Partition: HNSW search against a numpy brute-force oracle, writes, tombstones, growth, save/load."""

from __future__ import annotations

from pathlib import Path
from threading import Event
from typing import Any

import numpy as np
import pytest

from shard_node.partition import Partition
from shard_node.settings import PartitionSpec
from tests.support.oracle import exact_distances, exact_top_k, id_recall
from tests.support.threads import CheckedThread
from tests.support.waiting import wait_until

METRICS = ("cosine", "l2", "ip")
RTOL, ATOL = 1e-4, 5e-4


def make(metric: str = "l2", dim: int = 8, capacity: int = 16, **spec: Any) -> Partition:
    """A fresh partition with a small starting capacity."""
    return Partition(PartitionSpec(dim=dim, metric=metric, **spec), capacity=capacity)


def ids_of(n: int, prefix: str = "d") -> list[str]:
    """n distinct document ids."""
    return [f"{prefix}{i}" for i in range(n)]


def rand(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """n random float32 vectors."""
    return rng.standard_normal((n, dim)).astype(np.float32)


def assert_distances_match(metric: str, part: Partition, model: dict[str, np.ndarray],
                           queries: np.ndarray, results: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Every returned distance equals the numpy distance of that id's stored vector; lists are sorted."""
    for q, (ids, dists) in zip(queries, results, strict=True):
        assert len(set(ids.tolist())) == len(ids), "an id was returned twice"
        assert np.all(np.diff(dists) >= -1e-6), "distances are not ascending"
        want = exact_distances(metric, q[None, :], np.stack([model[i] for i in ids]))[0] if len(ids) else []
        np.testing.assert_allclose(dists, want, rtol=RTOL, atol=ATOL)


# ---- recall against brute force -----------------------------------------------------------------
@pytest.fixture(scope="module", params=METRICS)
def big(request: pytest.FixtureRequest) -> tuple[str, Partition, np.ndarray, list[str]]:
    """3,000 random dim-32 vectors in a partition of each metric."""
    metric = request.param
    rng = np.random.default_rng(7)
    data = rand(rng, 3000, 32)
    ids = ids_of(3000)
    part = make(metric, dim=32, capacity=4096)
    for start in range(0, 3000, 500):
        part.upsert(ids[start:start + 500], data[start:start + 500])
    return metric, part, data, ids


def test_recall_at_10_against_brute_force(big: tuple[str, Partition, np.ndarray, list[str]]) -> None:
    metric, part, data, ids = big
    queries = rand(np.random.default_rng(8), 100, 32)
    results = part.search(queries, k=10, ef=128)
    assert all(len(r[0]) == 10 for r in results)
    truth_rows, _ = exact_top_k(metric, queries, data, 10)
    truth = [[ids[j] for j in row] for row in truth_rows]
    recall = id_recall([r[0].tolist() for r in results], truth)
    assert recall >= 0.95, f"{metric}: recall@10 = {recall:.3f}"


def test_distances_equal_numpy(big: tuple[str, Partition, np.ndarray, list[str]]) -> None:
    metric, part, data, ids = big
    queries = rand(np.random.default_rng(9), 20, 32)
    model = dict(zip(ids, data, strict=True))
    assert_distances_match(metric, part, model, queries, part.search(queries, k=10, ef=128))


def test_stored_vector_as_query(big: tuple[str, Partition, np.ndarray, list[str]]) -> None:
    """Under l2/cosine a stored vector finds itself at distance 0; under ip the brute-force best."""
    metric, part, data, ids = big
    rows = np.arange(0, 3000, 97)
    results = part.search(data[rows], k=1, ef=128)
    if metric == "ip":  # a vector is not necessarily its own best match by inner product
        truth, _ = exact_top_k(metric, data[rows], data, 1)
        assert [r[0][0] for r in results] == [ids[j] for j in truth[:, 0]]
        return
    assert [r[0][0] for r in results] == [ids[j] for j in rows]
    np.testing.assert_allclose([r[1][0] for r in results], 0.0, atol=1e-4)


# ---- writes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", METRICS)
def test_replace_changes_vector(metric: str) -> None:
    rng = np.random.default_rng(1)
    part = make(metric)
    data = rand(rng, 50, 8)
    ids = ids_of(50)
    part.upsert(ids, data)
    new = rand(rng, 1, 8) * 10
    part.upsert(["d3"], new)
    assert part.live == 50 and part.tombstones == 0
    [(doc_id, vec, _)] = part.get(["d3"], with_vectors=True)
    assert doc_id == "d3"
    np.testing.assert_array_equal(vec, new[0])
    model = dict(zip(ids, data, strict=True)) | {"d3": new[0]}
    res = part.search(new, k=50, ef=200)
    assert set(res[0][0].tolist()) == set(ids)
    assert res[0][0][0] == "d3"
    assert_distances_match(metric, part, model, new, res)


def test_duplicate_id_in_one_batch_last_wins() -> None:
    part = make("l2")
    vecs = np.array([[1.0] * 8, [2.0] * 8, [3.0] * 8], dtype=np.float32)
    part.upsert(["a", "b", "a"], vecs, [{"n": 1}, {"n": 2}, {"n": 3}])
    assert part.live == 2
    got = {d: (v, p) for d, v, p in part.get(["a", "b"], with_vectors=True)}
    np.testing.assert_array_equal(got["a"][0], vecs[2])
    assert got["a"][1] == {"n": 3}


def test_delete_tombstones() -> None:
    rng = np.random.default_rng(2)
    part = make("l2", capacity=64)
    data = rand(rng, 40, 8)
    ids = ids_of(40)
    part.upsert(ids, data)
    gone = ids[::3]
    assert part.delete(gone) == len(gone)
    assert part.live == 40 - len(gone)
    assert part.tombstones == len(gone)
    # deleting again, or deleting unknown ids, changes nothing
    assert part.delete([*gone, "nope"]) == 0
    assert part.tombstones == len(gone)
    assert part.get(gone) == []
    res = part.search(data, k=40, ef=100)
    for found, _ in res:
        assert not set(found.tolist()) & set(gone)
        assert len(found) == 40 - len(gone)


def test_reupsert_of_deleted_id_revives_it() -> None:
    rng = np.random.default_rng(3)
    part = make("l2")
    data = rand(rng, 10, 8)
    part.upsert(ids_of(10), data, [{"i": i} for i in range(10)])
    part.delete(["d4"])
    assert part.get(["d4"]) == []
    new = rand(rng, 1, 8)
    part.upsert(["d4"], new)
    assert (part.live, part.tombstones) == (10, 0)
    [(_, vec, payload)] = part.get(["d4"], with_vectors=True)
    np.testing.assert_array_equal(vec, new[0])
    assert payload == {}, "a deleted document's payload must not come back"
    ids, dists = part.search(new, k=1)[0]
    assert ids[0] == "d4" and dists[0] == pytest.approx(0.0, abs=1e-5)


def test_revive_with_duplicate_ids_in_batch_keeps_counts() -> None:
    """Reviving a deleted id that appears twice in one batch must count one revival, not two."""
    part = make("l2")
    part.upsert(["a", "b"], np.ones((2, 8), np.float32))
    part.delete(["a"])
    part.upsert(["a", "a"], np.full((2, 8), 2.0, np.float32))
    assert (part.live, part.tombstones) == (2, 0)


def test_growth_past_initial_capacity() -> None:
    rng = np.random.default_rng(4)
    part = make("l2", dim=16, capacity=16)
    assert part.capacity == 16
    data = rand(rng, 1000, 16)
    ids = ids_of(1000)
    # single writes first (many small grows), then uneven batches
    for i in range(40):
        part.upsert([ids[i]], data[i:i + 1])
    for start, stop in ((40, 41), (41, 300), (300, 1000)):
        part.upsert(ids[start:stop], data[start:stop])
    assert part.live == 1000
    assert part.capacity >= 1000 and part.capacity % 16 == 0
    got = part.get(ids, with_vectors=True)
    assert [g[0] for g in got] == ids
    np.testing.assert_array_equal(np.stack([g[1] for g in got]), data)
    rows = np.arange(0, 1000, 37)
    res = part.search(data[rows], k=1, ef=64)
    assert [r[0][0] for r in res] == [ids[j] for j in rows]


def test_k_larger_than_live_returns_live_count() -> None:
    rng = np.random.default_rng(5)
    part = make("cosine")
    data = rand(rng, 8, 8)
    part.upsert(ids_of(8), data)
    part.delete(["d0", "d1", "d2"])
    res = part.search(rand(rng, 3, 8), k=10)
    for found, dists in res:
        assert sorted(found.tolist()) == ["d3", "d4", "d5", "d6", "d7"]
        assert len(dists) == 5 and dists.dtype == np.float32


def test_empty_partition_search() -> None:
    part = make("ip")
    res = part.search(np.ones((2, 8), np.float32), k=5)
    assert [len(r[0]) for r in res] == [0, 0]
    part.upsert(["x"], np.ones((1, 8), np.float32))
    part.delete(["x"])
    assert [len(r[0]) for r in part.search(np.ones((1, 8), np.float32), k=5)] == [0]


@pytest.mark.parametrize("metric", METRICS)
def test_many_tombstones_still_k_live_hits(metric: str) -> None:
    rng = np.random.default_rng(6)
    part = make(metric, dim=16, capacity=16)
    data = rand(rng, 1000, 16)
    ids = ids_of(1000)
    part.upsert(ids, data)
    dead = set(rng.choice(1000, size=950, replace=False).tolist())
    part.delete([ids[j] for j in sorted(dead)])
    assert (part.live, part.tombstones) == (50, 950)
    live_rows = np.array(sorted(set(range(1000)) - dead))
    live_ids = {ids[j] for j in live_rows}
    queries = rand(rng, 30, 16)
    res = part.search(queries, k=10, ef=10)
    model = dict(zip(ids, data, strict=True))
    for found, _ in res:
        assert len(found) == 10
        assert set(found.tolist()) <= live_ids
    assert_distances_match(metric, part, model, queries, res)


class _ShortGraph:
    """Wraps a graph whose search fails like a walk that found fewer than k hits."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def search(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Cannot return the results in a contiguous 2D array. Probably ef or M is too small")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("metric", METRICS)
def test_exact_fallback_is_exact(metric: str) -> None:
    rng = np.random.default_rng(10)
    part = make(metric, dim=16, capacity=16)
    data = rand(rng, 400, 16)
    ids = ids_of(400)
    part.upsert(ids, data)
    part.delete(ids[:380])
    part._graph = _ShortGraph(part._graph)  # force the exact path
    queries = rand(rng, 10, 16)
    res = part.search(queries, k=10)
    rows, dists = exact_top_k(metric, queries, data[380:], 10)
    for (found, got), want_rows, want in zip(res, rows, dists, strict=True):
        assert found.tolist() == [ids[380 + j] for j in want_rows]
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_get_with_and_without_vectors() -> None:
    part = make("l2")
    vecs = np.arange(24, dtype=np.float32).reshape(3, 8)
    part.upsert(["a", "b", "c"], vecs, [{"tag": "x", "n": 1}, {}, {"l": [1, 2.5, "s", True]}])
    got = part.get(["c", "missing", "a"])
    assert [(d, v, p) for d, v, p in got] == [("c", None, {"l": [1, 2.5, "s", True]}),
                                              ("a", None, {"tag": "x", "n": 1})]
    got = part.get(["b", "a"], with_vectors=True)
    assert [d for d, _, _ in got] == ["b", "a"]
    np.testing.assert_array_equal(got[0][1], vecs[1])
    np.testing.assert_array_equal(got[1][1], vecs[0])
    assert got[0][2] == {}
    # returned vectors are copies: mutating them does not change the partition
    got[0][1][:] = -1
    np.testing.assert_array_equal(part.get(["b"], with_vectors=True)[0][1], vecs[1])


@pytest.mark.parametrize("metric", METRICS)
def test_save_load_roundtrip(metric: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    spec = PartitionSpec(dim=16, metric=metric, m=8, ef_construction=100, ef_search=50)
    part = Partition(spec, capacity=16)
    data = rand(rng, 300, 16)
    ids = ids_of(300)
    part.upsert(ids, data, [{"i": i, "s": f"v{i}"} for i in range(300)])
    part.delete(ids[::7])
    part.upsert(["d1"], data[:1] * 2)  # a replaced document
    part.upsert(["d7"], data[7:8], [{"back": True}])  # a revived one
    part.save(tmp_path)
    loaded = Partition.load(tmp_path, spec)
    assert (loaded.live, loaded.tombstones) == (part.live, part.tombstones)
    assert loaded.capacity >= loaded.live + loaded.tombstones
    assert loaded.get(ids, with_vectors=False) == part.get(ids, with_vectors=False)
    for (a_id, a_vec, a_pay), (b_id, b_vec, b_pay) in zip(part.get(ids, True), loaded.get(ids, True), strict=True):
        assert (a_id, a_pay) == (b_id, b_pay)
        np.testing.assert_array_equal(a_vec, b_vec)
    queries = rand(rng, 25, 16)
    for ef in (None, 200):
        for (ia, da), (ib, db) in zip(part.search(queries, 10, ef), loaded.search(queries, 10, ef), strict=True):
            assert ia.tolist() == ib.tolist()
            np.testing.assert_array_equal(da, db)
    # the loaded partition keeps working: new ids, replacement and deletes
    loaded.upsert(["new"], data[5:6] + 1)
    loaded.delete(["d2"])
    assert loaded.get(["new", "d2"]) == [("new", None, {})]
    assert loaded.search(data[5:6] + 1, k=1)[0][0][0] == "new"


def test_upsert_without_payload_replaces_the_payload() -> None:
    """An upsert replaces the whole document: no payload given means an empty payload, not the old one."""
    part = make()
    vec = np.ones((1, 8), np.float32)
    part.upsert(["a"], vec, [{"keep": False}])
    part.upsert(["a"], vec * 2)
    assert part.get(["a"])[0][2] == {}


def test_get_returns_copies_of_payloads() -> None:
    """Changing what get() returned does not change what is stored."""
    part = make()
    part.upsert(["a"], np.ones((1, 8), np.float32), [{"x": 1}])
    part.get(["a"])[0][2]["x"] = 99
    assert part.get(["a"])[0][2] == {"x": 1}


def test_searches_run_between_the_chunks_of_a_large_upsert() -> None:
    """A big batch is inserted chunk by chunk, so a concurrent search finishes before the batch does."""
    from shard_node.partition import WRITE_CHUNK

    part = make(dim=32, capacity=64)
    rng = np.random.default_rng(5)
    part.upsert(ids_of(100), rand(rng, 100, 32))
    big = rand(rng, WRITE_CHUNK * 40, 32)
    finished = Event()

    def ingest() -> None:
        part.upsert([f"big{i}" for i in range(len(big))], big)
        finished.set()

    t = CheckedThread(target=ingest)
    t.start()
    wait_until(lambda: part.live > 100, 10, "the first chunk of the big upsert", interval=0.001)
    part.search(rand(rng, 1, 32), k=5)
    searched_during_ingest = not finished.is_set()
    t.join(60)
    assert searched_during_ingest
    assert part.live == 100 + len(big)


def test_a_hit_deleted_after_its_search_keeps_its_payload_until_compaction(tmp_path: Path) -> None:
    """A search's hits still have their payloads when a delete lands between the search and the payload lookup
    (the race a concurrent reader saw as an empty payload); a snapshot leaves them out, and a label used again
    gets the new document's payload."""
    rng = np.random.default_rng(5)
    part = make(dim=8, capacity=64)
    ids = ids_of(40)
    part.upsert(ids, rand(rng, 40, 8), [{"n": i} for i in range(40)])
    hits, _ = part.search_matrix(rand(rng, 3, 8), 5)
    found = list(dict.fromkeys(hits.ravel().tolist()))
    part.delete(found)
    assert part.payloads_of(found) == [{"n": ids.index(i)} for i in found]
    assert part.get(found) == []
    part.upsert(found[:1], rand(rng, 1, 8), [{"n": -1}])
    assert part.payloads_of(found[:1]) == [{"n": -1}]
    part.save(tmp_path)
    assert len((tmp_path / "payloads.jsonl").read_text().splitlines()) == 40 - len(found) + 1
