"""node_search over real partitions: one partition answered without a merge, several merged, against numpy."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from protos import shard_pb2
from protos.wire import pack_matrix, payload_to_proto, unpack_floats
from shard_node.node_search import HNSW, node_search
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.store import ShardStore
from tests.support.oracle import exact_top_k

DIM, N, K = 8, 60, 5
SPEC = PartitionSpec(dim=DIM, metric="l2", m=8, ef_construction=100, ef_search=200)  # ef > N: exact walks


def settings(**kw: Any) -> ShardSettings:
    """Small capacity, no automatic snapshots."""
    return ShardSettings(**({"initial_capacity": 16, "snapshot_every_ops": 10**9, "snapshot_wal_bytes": 10**12} | kw))


def _request(queries: np.ndarray, **kw: Any) -> shard_pb2.NodeSearchRequest:
    return shard_pb2.NodeSearchRequest(queries=pack_matrix(queries), k=K, **kw)


@pytest.mark.parametrize("parts", [1, 3])
def test_hits_equal_the_oracle_with_and_without_a_merge(tmp_path: Any, parts: int) -> None:
    stores = [ShardStore(tmp_path / f"p{p}", SPEC, settings()) for p in range(parts)]
    try:
        rng = np.random.default_rng(7)
        vectors = rng.standard_normal((N, DIM)).astype(np.float32)
        for p, store in enumerate(stores):
            rows = list(range(p, N, parts))
            store.upsert([f"d{i}" for i in rows], vectors[rows], [payload_to_proto({"n": i}) for i in rows])
        queries = rng.standard_normal((4, DIM)).astype(np.float32)
        seen: list[tuple[int, str]] = []
        with ThreadPoolExecutor(2) as pool:
            resp = node_search([(s, i) for i, s in enumerate(stores)], _request(queries, with_payload=True), pool,
                               lambda shard, strategy: seen.append((shard, strategy)))
        want_idx, want_d = exact_top_k("l2", queries, vectors, K)
        ids = np.asarray(resp.ids, dtype=object).reshape(resp.rows, resp.per_row)
        assert ids.tolist() == [[f"d{i}" for i in row] for row in want_idx]
        np.testing.assert_allclose(unpack_floats(resp.distances).reshape(resp.rows, resp.per_row), want_d,
                                   rtol=1e-4, atol=1e-4)
        assert {resp.payloads[i].fields["n"].int_value for i in resp.ids} == {int(i) for i in want_idx.ravel()}
        assert not resp.plans   # no explain: no plan messages
        assert sorted(seen) == [(i, HNSW) for i in range(parts)]
        explained = node_search([(s, i) for i, s in enumerate(stores)], _request(queries, explain=True), None)
        assert [p.shard for p in explained.plans] == list(range(parts)) and not explained.payloads
        assert all(p.strategy == HNSW and p.live == len(range(i, N, parts)) for i, p in enumerate(explained.plans))
    finally:
        for s in stores:
            s.close()
