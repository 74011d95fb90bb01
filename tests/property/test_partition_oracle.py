"""Random write sequences on a small Partition, compared with a dict model and a brute-force oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shard_node.partition import Partition
from shard_node.settings import PartitionSpec
from tests.support.oracle import exact_distances

DIM = 8
IDS = [f"id{i}" for i in range(10)]  # a small pool: replaces, revives and in-batch duplicates happen often
EF = 256  # far above any live count here, so the graph walk is exhaustive

Model = dict[str, tuple[np.ndarray, dict[str, Any]]]

# Quarter-integers (ties, duplicate and zero vectors) mixed with floats far from float32 underflow: hnswlib
# normalises cosine vectors in float32, so a vector whose squared norm underflows acts as a zero vector there.
component_st = st.one_of(
    st.integers(-16, 16).map(lambda i: i / 4),
    st.floats(-8, 8, width=32).filter(lambda x: x == 0 or abs(x) > 1e-3),
)
vector_st = st.lists(component_st, min_size=DIM, max_size=DIM)
upsert_st = st.tuples(
    st.just("upsert"),
    st.lists(st.tuples(st.sampled_from(IDS), vector_st, st.integers(-5, 5)), min_size=1, max_size=6),
)
delete_st = st.tuples(st.just("delete"), st.lists(st.sampled_from([*IDS, "unknown"]), min_size=1, max_size=4))
ops_st = st.lists(st.one_of(upsert_st, delete_st), min_size=1, max_size=25)
query_st = st.lists(vector_st, min_size=1, max_size=3)


def apply(part: Partition, model: Model, op: tuple[str, Any]) -> None:
    """Run one operation on the partition and on the model; check the count it returns."""
    kind, arg = op
    if kind == "upsert":
        ids = [doc_id for doc_id, _, _ in arg]
        vecs = np.array([v for _, v, _ in arg], dtype=np.float32)
        payloads = [{"p": p, "id": doc_id} for doc_id, _, p in arg]
        assert part.upsert(ids, vecs, payloads) == len(set(ids))
        for doc_id, vec, payload in zip(ids, vecs, payloads, strict=True):
            model[doc_id] = (vec, payload)
    else:
        existed = len({doc_id for doc_id in arg if doc_id in model})
        assert part.delete(arg) == existed
        for doc_id in arg:
            model.pop(doc_id, None)


def check(part: Partition, model: Model, metric: str, queries: np.ndarray) -> None:
    """Live set, counts, get() and search agree with the model and brute force."""
    assert part.live == len(model)
    assert part.live + part.tombstones <= len(IDS)
    assert part.tombstones >= 0
    got = part.get([*IDS, "unknown"], with_vectors=True)
    assert [d for d, _, _ in got] == [i for i in IDS if i in model]
    for doc_id, vec, payload in got:
        np.testing.assert_array_equal(vec, model[doc_id][0])
        assert payload == model[doc_id][1]
    assert [(d, v, p) for d, v, p in part.get(IDS[::-1])] == [(i, None, model[i][1]) for i in IDS[::-1] if i in model]

    live = sorted(model)
    results = part.search(queries, k=len(IDS) + 3, ef=EF)
    if not live:
        assert all(len(ids) == 0 for ids, _ in results)
        return
    want = exact_distances(metric, queries, np.stack([model[i][0] for i in live]))
    for (ids, dists), row in zip(results, want, strict=True):
        # k covers every live document: exactly the live set, sorted, each at its own distance
        assert sorted(ids.tolist()) == live
        assert np.all(np.diff(dists) >= -1e-5)
        np.testing.assert_allclose(dists, [row[live.index(i)] for i in ids], rtol=1e-4, atol=1e-3)
    # a shorter top-k has the brute-force distance profile (ids may differ only among ties)
    k = min(3, len(live))
    for (ids, dists), row in zip(part.search(queries, k=k, ef=EF), want, strict=True):
        assert len(ids) == k and len(set(ids.tolist())) == k and set(ids.tolist()) <= set(live)
        np.testing.assert_allclose(dists, np.sort(row)[:k], rtol=1e-4, atol=1e-3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metric=st.sampled_from(["l2", "cosine", "ip"]), ops=ops_st, queries=query_st)
def test_partition_matches_model(metric: str, ops: list[tuple[str, Any]], queries: list[list[float]]) -> None:
    part = Partition(PartitionSpec(dim=DIM, metric=metric, ef_search=16), capacity=2)
    model: Model = {}
    q = np.array(queries, dtype=np.float32)
    for op in ops:
        apply(part, model, op)
        check(part, model, metric, q)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metric=st.sampled_from(["l2", "cosine", "ip"]), ops=ops_st, queries=query_st,
       more=st.lists(st.one_of(upsert_st, delete_st), max_size=6))
def test_save_load_matches_model(tmp_path_factory: Any, metric: str, ops: list[tuple[str, Any]],
                                 queries: list[list[float]], more: list[tuple[str, Any]]) -> None:
    spec = PartitionSpec(dim=DIM, metric=metric, ef_search=16)
    part = Partition(spec, capacity=2)
    model: Model = {}
    for op in ops:
        apply(part, model, op)
    directory: Path = tmp_path_factory.mktemp("part")
    part.save(directory)
    loaded = Partition.load(directory, spec)
    for op in more:  # the loaded partition keeps obeying the model
        apply(loaded, model, op)
    check(loaded, model, metric, np.array(queries, dtype=np.float32))
