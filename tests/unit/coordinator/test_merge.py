"""merge_top_k against a sort-based oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.merge import merge_top_k, merge_top_k_rows

Shard = list[tuple[str, float]]


def oracle(shards: list[Shard], k: int) -> list[tuple[str, float]]:
    """Best float32 distance per id, sorted by (distance, id), first k."""
    best: dict[str, float] = {}
    for shard in shards:
        for doc_id, dist in shard:
            d = float(np.float32(dist))
            if doc_id not in best or d < best[doc_id]:
                best[doc_id] = d
    return sorted(best.items(), key=lambda kv: (kv[1], kv[0]))[:k]


def run(shards: list[Shard], k: int) -> list[tuple[str, float]]:
    """merge_top_k on shards, resolved back to (id, distance) pairs; checks the positions are valid."""
    ids = [[doc_id for doc_id, _ in s] for s in shards]
    dists = [np.array([d for _, d in s], dtype=np.float32) for s in shards]
    shard_idx, pos = merge_top_k(ids, dists, k)
    assert len(shard_idx) == len(pos)
    out = []
    for s, p in zip(shard_idx, pos, strict=True):
        assert 0 <= s < len(shards) and 0 <= p < len(shards[s])
        out.append((ids[s][p], float(dists[s][p])))
    return out


# Ids from a small alphabet so duplicates across shards and ties in distance are common.
ids_st = st.text(alphabet="abcxyz09-é\x00", min_size=1, max_size=4)
dist_st = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0]),
                    st.floats(-10, 10, allow_nan=False, allow_subnormal=False, width=32))
shard_st = st.lists(st.tuples(ids_st, dist_st), max_size=12)


@settings(max_examples=150, deadline=None)
@given(shards=st.lists(shard_st, min_size=1, max_size=6), k=st.integers(0, 40))
def test_matches_oracle(shards: list[Shard], k: int) -> None:
    assert run(shards, k) == oracle(shards, k)


def test_ties_broken_by_id() -> None:
    shards = [[("b", 1.0), ("d", 1.0)], [("c", 1.0), ("a", 1.0)], [("z", 0.5)]]
    assert run(shards, 10) == [("z", 0.5), ("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0)]
    assert run(shards, 3) == [("z", 0.5), ("a", 1.0), ("b", 1.0)]


def test_duplicate_ids_kept_once_with_best_distance() -> None:
    shards = [[("x", 0.9), ("y", 0.2)], [("x", 0.1), ("y", 0.7)], [("x", 0.5)]]
    ids = [[i for i, _ in s] for s in shards]
    dists = [np.array([d for _, d in s], dtype=np.float32) for s in shards]
    shard_idx, pos = merge_top_k(ids, dists, 5)
    assert list(zip(shard_idx, pos, strict=True)) == [(1, 0), (0, 1)]


def test_empty_shards() -> None:
    assert merge_top_k([], [], 5) == ([], [])
    assert merge_top_k([[], []], [np.empty(0), np.empty(0)], 5) == ([], [])
    shard_idx, pos = merge_top_k([[], ["a", "b"], []], [np.empty(0), np.array([0.3, 0.1]), np.empty(0)], 5)
    assert (shard_idx, pos) == ([1, 1], [1, 0])


def test_k_larger_than_total_and_zero() -> None:
    shards = [[("a", 3.0)], [("b", 1.0), ("c", 2.0)]]
    assert run(shards, 100) == [("b", 1.0), ("c", 2.0), ("a", 3.0)]
    assert run(shards, 0) == []


def test_accepts_object_arrays_as_returned_by_partitions() -> None:
    ids = [np.array(["p", "q"], dtype=object), np.array(["q", "r"], dtype=object)]
    dists = [np.array([0.4, 0.6], np.float32), np.array([0.5, 0.1], np.float32)]
    assert merge_top_k(ids, dists, 3) == ([1, 0, 1], [1, 0, 0])


def test_ids_differing_only_by_trailing_nul_are_distinct() -> None:
    shards = [[("a", 0.25)], [("a\x00", 0.5)], [("a", 0.75)]]
    assert run(shards, 5) == [("a", 0.25), ("a\x00", 0.5)]


@pytest.mark.parametrize("seed", range(20))
def test_merge_rows_equals_merge_per_row(seed: int) -> None:
    """The vectorised batch merge picks exactly what merge_top_k picks, row by row, ties and repeats included."""
    rng = np.random.default_rng(seed)
    rows, k = 30, 5
    widths = [int(w) for w in rng.integers(0, 7, size=3)]
    # Few distinct distances and ids, so that ties and ids repeated across shards are common.
    ids = [rng.choice([f"d{i}" for i in range(12)], size=(rows, w)).astype(object) for w in widths]
    dists = [rng.integers(0, 4, size=(rows, w)).astype(np.float32) / 4 for w in widths]
    got = merge_top_k_rows(np.concatenate(ids, axis=1), np.concatenate(dists, axis=1), widths, k)
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    for q in range(rows):
        shard, pos = merge_top_k([i[q] for i in ids], [d[q] for d in dists], k)
        assert got[q].tolist() == (starts[shard] + np.asarray(pos, dtype=np.int64)).tolist()
