"""ShardStore: durable writes and recovery (WAL only, snapshot + WAL tail, crashes mid-snapshot), bad input."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protos.errors import FailedPrecondition, InvalidArgument
from protos.wire import payload_to_proto
from shard_node import snapshot as snapshot_mod
from shard_node.partition import MemoryFigures
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.store import ShardFigures, ShardStore
from tests.support.oracle import exact_top_k

DIM = 8
SPEC = PartitionSpec(dim=DIM, metric="l2", m=8, ef_construction=100, ef_search=32)
POOL = [f"doc{i}" for i in range(120)]
EXACT_EF = 1000  # > documents ever written: the graph walk visits every reachable node

Model = dict[str, tuple[np.ndarray, dict[str, Any]]]


def settings(**kw: Any) -> ShardSettings:
    """Shard settings with a small starting capacity and no automatic snapshots unless asked."""
    base: dict[str, Any] = {"initial_capacity": 16, "snapshot_every_ops": 10**9, "snapshot_wal_bytes": 10**12}
    return ShardSettings(**(base | kw))



def churn(store: ShardStore, model: Model, rng: np.random.Generator, steps: int) -> None:
    """Random upserts (new, replacing, reviving, duplicate ids in a batch) and deletes, mirrored in model."""
    for step in range(steps):
        if rng.random() < 0.7:
            ids = [POOL[j] for j in rng.integers(0, len(POOL), size=int(rng.integers(1, 9)))]
            vecs = rng.standard_normal((len(ids), DIM)).astype(np.float32)
            payloads = [{"step": step, "row": r, "tag": f"t{step % 3}"} for r in range(len(ids))]
            store.upsert(ids, vecs, [payload_to_proto(p) for p in payloads])
            for doc_id, vec, payload in zip(ids, vecs, payloads, strict=True):
                model[doc_id] = (vec, payload)
        else:
            ids = [POOL[j] for j in rng.integers(0, len(POOL), size=int(rng.integers(1, 5)))] + ["never-written"]
            store.delete(ids)
            for doc_id in ids:
                model.pop(doc_id, None)


def state(store: ShardStore, queries: np.ndarray, ef: int | None = None) -> dict[str, Any]:
    """Everything observable about a store: figures, stored documents and search results."""
    p = store.partition
    docs = [(d, v.tolist(), pay) for d, v, pay in p.get([*POOL, "never-written"], with_vectors=True)]
    hits = [(ids.tolist(), dists.tolist()) for ids, dists in p.search(queries, k=10, ef=ef)]
    return {"live": p.live, "tombstones": p.tombstones, "docs": docs, "hits": hits}


def assert_matches_model(store: ShardStore, model: Model, queries: np.ndarray) -> None:
    """Live set, vectors and payloads equal the model; exact-ef search equals brute force over it."""
    p = store.partition
    assert p.live == len(model)
    got = {d: (v, pay) for d, v, pay in p.get(POOL, with_vectors=True)}
    assert set(got) == set(model)
    for doc_id, (vec, payload) in model.items():
        np.testing.assert_array_equal(got[doc_id][0], vec)
        assert got[doc_id][1] == payload
    ids = sorted(model)
    k = min(10, len(ids))
    rows, dists = exact_top_k(SPEC.metric, queries, np.stack([model[i][0] for i in ids]), k)
    for (found, fd), want_rows, want in zip(p.search(queries, k=10, ef=EXACT_EF), rows, dists, strict=True):
        assert set(found.tolist()) == {ids[j] for j in want_rows}
        np.testing.assert_allclose(fd, want, rtol=1e-4, atol=1e-4)


@pytest.fixture
def queries() -> np.ndarray:
    """Fixed search queries."""
    return np.random.default_rng(99).standard_normal((12, DIM)).astype(np.float32)


def figures(store: ShardStore) -> ShardFigures:
    """The store's figures without capacity and the sizes that follow from it (a snapshot load may start with a
    larger index) or from the files' layout."""
    return dataclasses.replace(store.figures(), capacity=0, memory_bytes=0, disk_bytes=0, memory=MemoryFigures(),
                               disk=MemoryFigures())


def wal_segments(store_dir: Path) -> list[Path]:
    """WAL segment files, oldest first."""
    return sorted((store_dir / "wal").glob("wal-*.log"))


def snapshot_dirs(store_dir: Path) -> list[str]:
    """Names of everything under snapshots/."""
    root = store_dir / "snapshots"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# ---- recovery -------------------------------------------------------------------------------------

def assert_recovered(again: ShardStore, figs: object, before: object, model: Model, queries: np.ndarray) -> None:
    """A reopened store has the figures, exact search results and documents it had before it closed."""
    assert figures(again) == figs
    assert state(again, queries, ef=EXACT_EF) == before
    assert_matches_model(again, model, queries)

def test_reopen_wal_only(opened: Callable[..., ShardStore], tmp_path: Path, queries: np.ndarray) -> None:
    store = opened()
    model: Model = {}
    churn(store, model, np.random.default_rng(1), 60)
    before, figs = state(store, queries), figures(store)
    assert figs.snapshot_lsn == 0 and figs.last_lsn == 60
    store.close()
    assert snapshot_dirs(tmp_path / "shard") == []
    again = opened()
    assert state(again, queries) == before  # same graph: replay is deterministic
    assert figures(again) == figs
    assert_matches_model(again, model, queries)
    lsn, n = again.upsert(["fresh"], np.ones((1, DIM), np.float32))
    assert (lsn, n) == (61, 1)


def test_reopen_snapshot_plus_wal_tail(opened: Callable[..., ShardStore], tmp_path: Path,
                                       queries: np.ndarray) -> None:
    store = opened()
    model: Model = {}
    rng = np.random.default_rng(2)
    churn(store, model, rng, 40)
    store.snapshot()
    assert store.figures().snapshot_lsn == 40
    churn(store, model, rng, 25)
    before, figs = state(store, queries, ef=EXACT_EF), figures(store)
    store.close()
    assert snapshot_dirs(tmp_path / "shard") == [f"snap-{40:020d}"]
    again = opened()
    assert_recovered(again, figs, before, model, queries)


def test_several_snapshots_only_latest_kept(opened: Callable[..., ShardStore], tmp_path: Path,
                                            queries: np.ndarray) -> None:
    store = opened()
    model: Model = {}
    rng = np.random.default_rng(3)
    for _ in range(3):
        churn(store, model, rng, 15)
        store.snapshot()
    churn(store, model, rng, 5)
    assert snapshot_dirs(tmp_path / "shard") == [f"snap-{45:020d}"]
    assert [p.name for p in wal_segments(tmp_path / "shard")] == [f"wal-{46:020d}.log"]
    figs = figures(store)
    assert (figs.snapshot_lsn, figs.last_lsn) == (45, 50)
    before = state(store, queries, ef=EXACT_EF)
    store.close()
    again = opened()
    assert_recovered(again, figs, before, model, queries)


def test_snapshot_with_no_writes_since_last(opened: Callable[..., ShardStore], tmp_path: Path,
                                            queries: np.ndarray) -> None:
    store = opened()
    model: Model = {}
    churn(store, model, np.random.default_rng(4), 10)
    store.snapshot()
    store.snapshot()
    store.close()
    again = opened()
    again.snapshot()
    assert snapshot_dirs(tmp_path / "shard") == [f"snap-{10:020d}"]
    assert_matches_model(again, model, queries)


@pytest.mark.parametrize("trigger", [{"snapshot_every_ops": 30}, {"snapshot_wal_bytes": 4000}])
def test_automatic_snapshots(opened: Callable[..., ShardStore], tmp_path: Path, queries: np.ndarray,
                             trigger: dict[str, int]) -> None:
    store = opened(**trigger)
    model: Model = {}
    churn(store, model, np.random.default_rng(5), 80)
    figs = figures(store)
    assert 0 < figs.snapshot_lsn <= figs.last_lsn == 80
    assert len(snapshot_dirs(tmp_path / "shard")) == 1
    assert figs.wal_bytes == sum(p.stat().st_size for p in wal_segments(tmp_path / "shard"))
    store.close()
    again = opened(**trigger)
    assert figures(again) == figs
    assert_matches_model(again, model, queries)


def test_upsert_without_payloads_recovers_the_same(opened: Callable[..., ShardStore], queries: np.ndarray) -> None:
    store = opened()
    vecs = np.random.default_rng(6).standard_normal((3, DIM)).astype(np.float32)
    store.upsert(["doc1", "doc2"], vecs[:2], [payload_to_proto({"a": 1}), payload_to_proto({"b": [1, "x"]})])
    store.upsert(["doc2", "doc3"], vecs[1:])  # replace without payloads, and a new id without one
    store.delete(["doc1"])
    store.upsert(["doc1"], vecs[:1])  # revived without a payload
    before = state(store, queries)
    store.close()
    assert state(opened(), queries) == before


def test_torn_wal_tail_loses_only_the_torn_write(opened: Callable[..., ShardStore], tmp_path: Path,
                                                 queries: np.ndarray) -> None:
    store = opened()
    model: Model = {}
    churn(store, model, np.random.default_rng(7), 30)
    before = state(store, queries)
    store.upsert(["doc1", "extra"], np.full((2, DIM), 3.0, np.float32))
    store.close()
    last = wal_segments(tmp_path / "shard")[-1]
    with open(last, "r+b") as f:
        f.truncate(last.stat().st_size - 5)
    again = opened()
    assert again.figures().last_lsn == 30
    assert state(again, queries) == before
    assert again.upsert(["extra"], np.ones((1, DIM), np.float32))[0] == 31
    again.close()
    assert opened().figures().last_lsn == 31


# ---- crashes during a snapshot --------------------------------------------------------------------
def test_leftover_tmp_and_incomplete_snapshot_are_ignored(opened: Callable[..., ShardStore], tmp_path: Path,
                                                          queries: np.ndarray) -> None:
    store = opened()
    model: Model = {}
    rng = np.random.default_rng(8)
    churn(store, model, rng, 20)
    store.snapshot()
    churn(store, model, rng, 20)
    before, figs = state(store, queries, ef=EXACT_EF), figures(store)
    store.close()
    root = tmp_path / "shard" / "snapshots"
    good = root / f"snap-{20:020d}"
    # a finished-looking snapshot under a temp name, and a newer one that never got its meta.json
    shutil.copytree(good, root / f"snap-{40:020d}.tmp")
    (root / f"snap-{40:020d}.tmp" / "meta.json").write_text('{"lsn": 40, "spec": {}}')
    torn = root / f"snap-{39:020d}"
    shutil.copytree(good, torn)
    (torn / "meta.json").unlink()
    (torn / "index.hnsw").write_bytes(b"not an index")
    again = opened()
    assert_recovered(again, figs, before, model, queries)
    again.snapshot()  # the next snapshot sweeps away the leftover temp directory
    assert f"snap-{40:020d}.tmp" not in snapshot_dirs(tmp_path / "shard")
    assert f"snap-{40:020d}" in snapshot_dirs(tmp_path / "shard")


def test_crash_before_snapshot_rename(opened: Callable[..., ShardStore], tmp_path: Path,
                                      queries: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    store = opened()
    model: Model = {}
    rng = np.random.default_rng(9)
    churn(store, model, rng, 15)
    store.snapshot()
    churn(store, model, rng, 15)
    before = state(store, queries, ef=EXACT_EF)

    def crash(*_: Any) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(snapshot_mod.os, "rename", crash)
    with pytest.raises(OSError, match="power cut"):
        store.snapshot()
    monkeypatch.setattr(snapshot_mod.os, "rename", os.rename)
    store.close()
    assert snapshot_dirs(tmp_path / "shard") == [f"snap-{15:020d}", f"snap-{30:020d}.tmp"]
    again = opened()
    assert again.figures().snapshot_lsn == 15 and again.figures().last_lsn == 30
    assert state(again, queries, ef=EXACT_EF) == before
    assert_matches_model(again, model, queries)


def test_crash_after_snapshot_before_wal_drop(opened: Callable[..., ShardStore], tmp_path: Path,
                                              queries: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    store = opened()
    model: Model = {}
    churn(store, model, np.random.default_rng(10), 25)
    before = state(store, queries, ef=EXACT_EF)

    def crash(*_: Any) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(store._wal, "drop_through", crash)
    with pytest.raises(OSError):
        store.snapshot()
    store.close()
    assert snapshot_dirs(tmp_path / "shard") == [f"snap-{25:020d}"]
    assert len(wal_segments(tmp_path / "shard")) == 2  # the covered segment is still there
    again = opened()
    assert again.figures().snapshot_lsn == 25
    assert state(again, queries, ef=EXACT_EF) == before
    assert_matches_model(again, model, queries)


# ---- spec and input checks ------------------------------------------------------------------------
@pytest.mark.parametrize("other", [
    PartitionSpec(dim=DIM + 1, metric="l2", m=8, ef_construction=100, ef_search=32),
    PartitionSpec(dim=DIM, metric="cosine", m=8, ef_construction=100, ef_search=32),
])
def test_reopen_with_other_spec_fails(opened: Callable[..., ShardStore], other: PartitionSpec) -> None:
    store = opened()
    store.upsert(["a"], np.ones((1, DIM), np.float32))
    store.close()
    with pytest.raises(FailedPrecondition):
        opened(other)
    assert opened().partition.live == 1


def test_build_parameters_are_not_the_data_s_identity(opened: Callable[..., ShardStore]) -> None:
    """Another M or ef_construction (a rebuild may change them) opens the same data; a snapshot's own M wins."""
    store = opened()
    store.upsert(["a"], np.ones((1, DIM), np.float32))
    store.snapshot()
    store.close()
    again = opened(dataclasses.replace(SPEC, m=16, ef_construction=50))
    assert again.partition.live == 1 and again.figures().m == SPEC.m


def _payloads(n: int) -> list[Any]:
    return [payload_to_proto({"i": i}) for i in range(n)]


def _row_with(value: float) -> np.ndarray:
    vecs = np.ones((3, DIM), np.float32)
    vecs[2, 5] = value
    return vecs


BAD_UPSERTS: dict[str, tuple[list[str], Any, list[Any]]] = {
    "wrong dim": (["x"], np.ones((1, DIM + 1), np.float32), []),
    "1-d vectors": (["x"], np.ones(DIM, np.float32), []),
    "nan": (["x", "y", "z"], _row_with(float("nan")), []),
    "inf": (["x", "y", "z"], _row_with(float("inf")), []),
    "-inf": (["x", "y", "z"], _row_with(float("-inf")), []),
    "float64 overflowing float32": (["x"], np.full((1, DIM), 1e39), []),
    "empty id": (["x", ""], np.ones((2, DIM), np.float32), []),
    "more vectors than ids": (["x", "y"], np.ones((3, DIM), np.float32), []),
    "fewer vectors than ids": (["x", "y"], np.ones((1, DIM), np.float32), []),
    "payload count": (["x", "y"], np.ones((2, DIM), np.float32), _payloads(1)),
}


@pytest.mark.parametrize("case", sorted(BAD_UPSERTS))
def test_bad_upsert_is_refused_and_changes_nothing(opened: Callable[..., ShardStore], queries: np.ndarray,
                                                   case: str) -> None:
    store = opened()
    model: Model = {}
    churn(store, model, np.random.default_rng(11), 15)
    before, figs = state(store, queries), figures(store)
    ids, vectors, payloads = BAD_UPSERTS[case]
    with pytest.raises(InvalidArgument):
        store.upsert(ids, vectors, payloads)
    assert figures(store) == figs  # same lsn, same WAL bytes, same counts
    assert state(store, queries) == before
    store.close()
    assert figures(opened()) == figs


def test_invalid_argument_messages_are_specific(opened: Callable[..., ShardStore]) -> None:
    store = opened()
    with pytest.raises(InvalidArgument, match=rf"dimension is {DIM + 1}.*dimension {DIM}"):
        store.upsert(["x"], np.ones((1, DIM + 1), np.float32))
    with pytest.raises(InvalidArgument, match="vector 2 contains NaN or Inf"):
        store.upsert(["x", "y", "z"], _row_with(float("nan")))
    with pytest.raises(InvalidArgument, match="2 ids but 3 vectors"):
        store.upsert(["x", "y"], np.ones((3, DIM), np.float32))


def test_zero_vector_refused_under_cosine_only(tmp_path: Path) -> None:
    cosine = ShardStore(tmp_path / "cos", PartitionSpec(dim=DIM, metric="cosine"), settings())
    l2 = ShardStore(tmp_path / "l2", SPEC, settings())
    try:
        vecs = np.ones((2, DIM), np.float32)
        vecs[1] = 0.0
        with pytest.raises(InvalidArgument, match="all zeros"):
            cosine.upsert(["a", "b"], vecs)
        assert (cosine.partition.live, cosine.figures().last_lsn) == (0, 0)
        assert l2.upsert(["a", "b"], vecs) == (1, 2)
    finally:
        cosine.close()
        l2.close()
