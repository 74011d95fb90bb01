"""The int8 scan sketch: its bounds hold for every row, and the rank form's local top through it equals numpy's
exact top-K (ties included), for every metric and storage type, after writes that come after the sketch."""

from __future__ import annotations

import numpy as np
import pytest

from shard_node.near import top_similar
from shard_node.partition import Partition
from shard_node.settings import SKETCH_MAX_SHARE, SKETCH_MIN_ROWS, PartitionSpec
from shard_node.sketch import ScanSketch, ScoreMap
from shard_node.sketch_model import MODEL_FILE, model_bytes
from tests.support.data import clustered

DIM = 48
N = SKETCH_MIN_ROWS + 1500  # past the size at which top_similar narrows through the sketch


def exact_scores(metric: str, rows: np.ndarray, norms: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The oracle: float64 similarities of the stored rows, higher is better. `norms` are the norms the
    partition stored (of the vectors as given: a float16 or int8 row's own norm differs in the 4th digit)."""
    rows, norms, v = rows.astype(np.float64), norms.astype(np.float64), v.astype(np.float64)
    if metric == "cosine":
        return (rows @ v) / (norms * np.linalg.norm(v))
    if metric == "ip":
        return rows @ v
    return -np.maximum(norms**2 + v @ v - 2 * (rows @ v), 0.0)


def test_the_committed_graph_is_what_the_generator_writes() -> None:
    assert MODEL_FILE.read_bytes() == model_bytes()


@pytest.mark.parametrize("unit", [True, False])
def test_bounds_hold_for_every_row(unit) -> None:
    rng = np.random.default_rng(3)
    rows = (rng.standard_normal((3000, DIM)) * rng.uniform(0.01, 50, (3000, 1))).astype(np.float32)
    norms = np.linalg.norm(rows, axis=1).astype(np.float32)
    sketch = ScanSketch(DIM, 4096, unit=unit)
    sketch.put(np.arange(3000), rows, norms)
    for v in rng.standard_normal((20, DIM)).astype(np.float32) * 7:
        low, high = sketch.dot_bounds(v, 3000)
        z = rows / norms[:, None] if unit else rows
        w = v / np.linalg.norm(v) if unit else v
        true = z.astype(np.float64) @ w.astype(np.float64)
        assert np.all(low <= true) and np.all(true <= high)
        # and they narrow: the band is a small share of the spread of the scores
        assert np.median(high - low) < 0.05 * (true.max() - true.min())


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
@pytest.mark.parametrize("storage", ["float32", "float16", "int8", "binary"])
def test_top_similar_through_the_sketch_equals_numpy(metric, storage) -> None:
    base, queries = clustered(N + 667, 12, dim=DIM, intrinsic=24, clusters=30, seed=11)
    p = Partition(PartitionSpec(dim=DIM, metric=metric, storage=storage), capacity=1024)
    ids = [f"v{i}" for i in range(N)]
    p.upsert(ids, base[:N])
    p.delete(ids[::9])
    top_similar(p, queries[0], 5)  # builds the sketch; everything below is written after it
    assert p._sketch is not None
    p.upsert([f"w{i}" for i in range(600)], base[N : N + 600])  # grows the capacity past the sketch's
    p.upsert(ids[1:200:3], base[N + 600 :] * 1.5)  # replaces vectors in place
    p.delete(ids[5:300:5])
    with p.searching(p.spec.ef_search):
        mask = p.live_mask()
        live = np.flatnonzero(mask)
        rows, norms, doc_ids = p.rows(live), p.norms[live], p.ids_of(live)
        narrowed = [len(p.sketch().candidates(v, mask, 50, ScoreMap(metric, p.norms[: len(mask)], v)))
                    for v in queries]
    assert max(narrowed) * SKETCH_MAX_SHARE <= len(live)  # so the rank form below took the sketch's path
    for v in queries:
        for k in (1, 50):
            sims = exact_scores(metric, rows, norms, v)
            order = np.lexsort((live, -sims))[:k]
            got_ids, got = top_similar(p, v, k)
            assert got_ids == [doc_ids[i] for i in order]
            np.testing.assert_allclose(got, sims[order], rtol=1e-4, atol=1e-4)


def test_ties_at_the_cut_off_break_by_label() -> None:
    rng = np.random.default_rng(5)
    base = rng.standard_normal((N, DIM)).astype(np.float32)
    v = rng.standard_normal(DIM).astype(np.float32)
    base[100:140] = v * 3.0  # 40 copies of the best vector: the top-25 cut falls inside the tie
    p = Partition(PartitionSpec(dim=DIM, metric="cosine"), capacity=N)
    p.upsert([f"v{i}" for i in range(N)], base)
    ids, _ = top_similar(p, v, 25)
    assert ids == [f"v{i}" for i in range(100, 125)]


def test_the_sketch_is_counted_in_the_vectors_memory() -> None:
    base, queries = clustered(N, 1, dim=DIM, intrinsic=24, clusters=30, seed=2)
    p = Partition(PartitionSpec(dim=DIM, metric="cosine"), capacity=N)
    p.upsert([f"v{i}" for i in range(N)], base)
    before = p.memory().vectors
    top_similar(p, queries[0], 10)
    assert p.memory().vectors - before == p._sketch.nbytes() >= N * DIM


def test_score_map_is_nondecreasing_in_the_dot_product() -> None:
    norms = np.asarray([1.0, 3.0, 0.5], np.float32)
    to_score = ScoreMap("l2", norms, np.ones(4, np.float32))
    dots = np.asarray([0.1, 0.2, 0.3], np.float32)
    assert np.all(to_score(dots + 0.5) >= to_score(dots))
