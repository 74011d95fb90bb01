"""Field and text indexes survive a restart: rebuilt from the snapshot's payloads and the WAL's replay."""

from __future__ import annotations

import numpy as np
import pytest

from protos import query_tree as q
from protos import shard_pb2
from protos.errors import InvalidArgument
from protos.wire import pack_vector, payload_to_proto
from shard_node.query import run_query
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.store import ShardStore

SPEC = PartitionSpec(dim=8, metric="cosine", fields={"kind": "keyword", "n": "int", "body": "text"})
SETTINGS = ShardSettings(initial_capacity=16, snapshot_every_ops=10**9, snapshot_wal_bytes=10**12)


def _answer(store: ShardStore, query: np.ndarray) -> tuple[list[str], list[str], int]:
    req = shard_pb2.ShardQueryRequest(filter=q.and_(q.eq("kind", "b"), q.range_("n", lt=60)), k=5,
                                      vector=pack_vector(query), match={"field": "body", "text": "blue"},
                                      explain=True)
    resp = run_query(store.partition, req, 0)
    return list(resp.vector_hits.ids), list(resp.text_hits.ids), resp.plan.allowed


def test_query_answers_are_the_same_after_restart(tmp_path) -> None:
    rng = np.random.default_rng(2)
    payloads = [{"kind": "ab"[i % 2], "n": i, "body": ["red", "blue"][i % 3 == 0]} for i in range(100)]
    vectors = rng.standard_normal((100, 8)).astype(np.float32)
    store = ShardStore(tmp_path, SPEC, SETTINGS)
    store.upsert([f"d{i}" for i in range(60)], vectors[:60], [payload_to_proto(p) for p in payloads[:60]])
    store.snapshot()
    store.upsert([f"d{i}" for i in range(60, 100)], vectors[60:], [payload_to_proto(p) for p in payloads[60:]])
    store.delete(["d1", "d3", "d9"])
    before = _answer(store, vectors[0])
    store.close()
    reopened = ShardStore(tmp_path, SPEC, SETTINGS)
    try:
        after = _answer(reopened, vectors[0])
    finally:
        reopened.close()
    assert before == after
    assert after[2] == sum(1 for i in range(60) if i % 2 == 1 and i not in (1, 3, 9))
    assert after[1] and all(int(i[1:]) % 3 == 0 for i in after[1])


def test_bad_near_vectors_in_a_shard_filter_are_refused(tmp_path) -> None:
    """Regression (fuzzer): a filter `near` with no vector (or a wrong one) sent straight to a shard answered
    INTERNAL (numpy matmul ValueError); a shard now checks near vectors itself."""
    store = ShardStore(tmp_path, SPEC, SETTINGS)
    try:
        store.upsert(["a", "b"], np.eye(2, 8, dtype=np.float32), [])
        for vector, words in [([], "dimension is 0"), ([1.0] * 3, "dimension is 3"),
                              ([float("nan")] * 8, "NaN or Inf")]:
            req = shard_pb2.ShardQueryRequest(filter=q.near(vector, min_similarity=0.0), k=1)
            with pytest.raises(InvalidArgument, match=words):
                run_query(store.partition, req, 0)
        ok = run_query(store.partition, shard_pb2.ShardQueryRequest(filter=q.near([1.0] + [0.0] * 7,
                                                                                  min_similarity=0.5), k=1), 0)
        assert ok.plan.allowed == 1
    finally:
        store.close()
