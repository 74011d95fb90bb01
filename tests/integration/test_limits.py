"""Admission limits on a real coordinator: per-client concurrency (per API key) and capped/default deadlines.

A cluster of its own, with small limits and two API keys, so a slow request (an index rebuild waited for)
can fill one client's allowance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

import shoal
from protos import common_pb2, coordinator_pb2, coordinator_pb2_grpc
from shoal.serve import LocalCluster
from tests.support.data import random_vectors
from tests.support.threads import CheckedThread
from tests.support.waiting import wait_until

DIM = 64
N = 20_000
DEADLINE_S = 4.0
KEY_ONE, KEY_TWO = "limits-test-key-one", "limits-test-key-two"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster whose coordinator admits one request per client and caps every request at DEADLINE_S."""
    root = tmp_path_factory.mktemp("limited")
    keys = root / "api-keys"
    keys.write_text(f"read-write {KEY_ONE}\nread-write {KEY_TWO}\n")
    lc = LocalCluster(root, embedder=False, coordinator_args=[
        f"--api-keys-file={keys}", "--max-concurrent-per-client=1", f"--max-deadline-s={DEADLINE_S}",
        f"--default-deadline-s={DEADLINE_S}", "--compaction-interval-s=0"])
    with lc:
        yield lc


def auth(key: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying an API key."""
    return (("authorization", f"Bearer {key}"),)


def slow_compact(stub: coordinator_pb2_grpc.CoordinatorStub, name: str, timeout: float | None) -> grpc.RpcError:
    """Wait for a rebuild with an expensive ef_construction; it outlasts DEADLINE_S, so this returns the error."""
    with pytest.raises(grpc.RpcError) as info:
        stub.Compact(coordinator_pb2.CompactRequest(collection=name, wait=True,
                                                    hnsw=common_pb2.HnswParams(m=48, ef_construction=4000)),
                     timeout=timeout, metadata=auth(KEY_ONE))
    return info.value


def test_concurrency_and_deadlines(limited: LocalCluster) -> None:
    """While one request runs, the same key's next one is RESOURCE_EXHAUSTED and another API key's is served;
    a 60 s deadline is cut to max_deadline_s and a request without one gets default_deadline_s."""
    with shoal.Client(limited.address, api_key=KEY_ONE) as client, grpc.insecure_channel(limited.address) as channel, \
            shoal.Client(limited.address, api_key=KEY_TWO) as watcher:
        client.create_collection("slow", dim=DIM, shards=1)
        vecs = random_vectors(N, DIM, seed=21)
        for start in range(0, N, 1000):
            client.upsert("slow", [f"d{i}" for i in range(start, start + 1000)], vecs[start:start + 1000])
        stub = coordinator_pb2_grpc.CoordinatorStub(channel)
        count = coordinator_pb2.CountRequest(collection="slow")
        result: dict[str, object] = {}

        def run() -> None:
            started = time.monotonic()
            result["error"] = slow_compact(stub, "slow", timeout=60.0)
            result["took"] = time.monotonic() - started

        worker = CheckedThread(target=run)
        worker.start()
        # The Compact is admitted (holding KEY_ONE's one slot) once the rebuild it waits for runs; watched with KEY_TWO.
        wait_until(lambda: watcher.describe_collection("slow").shard_info[0]["rebuild"]["running"], 30,
                   "the slow Compact's rebuild to start")
        with pytest.raises(grpc.RpcError) as busy:
            stub.Count(count, timeout=10, metadata=auth(KEY_ONE))
        assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrent_per_client" in busy.value.details() and "limit is 1" in busy.value.details()
        other = stub.Count(count, timeout=10, metadata=auth(KEY_TWO))
        assert other.count == N
        worker.join(60)  # raises if the worker died
        error = result["error"]
        assert isinstance(error, grpc.RpcError)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error.details()
        assert "max_deadline_s" in error.details()
        assert DEADLINE_S - 0.5 < result["took"] < DEADLINE_S + 10
        assert stub.Count(count, timeout=10, metadata=auth(KEY_ONE)).count == N  # the slot was given back

        started = time.monotonic()
        error = slow_compact(stub, "slow", timeout=None)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "default_deadline_s" in error.details()
        assert time.monotonic() - started < DEADLINE_S + 10
        assert stub.Count(count, timeout=10, metadata=auth(KEY_TWO)).count == N
