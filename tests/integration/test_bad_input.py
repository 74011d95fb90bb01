"""Bad input answers with a clear status, and nothing stored changes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest

import shoal
from coordinator.settings import MAX_BATCH, MAX_K, MAX_QUERY_DEPTH
from protos import common_pb2, coordinator_pb2, coordinator_pb2_grpc
from protos import query_tree as Q
from shard_node.settings import DEFAULT_MAX_MESSAGE_BYTES
from shoal.serve import LocalCluster
from tests.support.data import random_vectors

DIM = 8
N = 30


@pytest.fixture
def filled(client: shoal.Client, collection_name: str) -> Iterator[str]:
    """A small collection to aim bad requests at."""
    client.create_collection(collection_name, dim=DIM, shards=3)
    client.upsert(collection_name, [f"id{i}" for i in range(N)], random_vectors(N, DIM, seed=4),
                  [{"i": i} for i in range(N)])
    yield collection_name


@pytest.fixture
def stub(cluster: LocalCluster) -> Iterator[coordinator_pb2_grpc.CoordinatorStub]:
    """A raw gRPC stub, to see status codes and to send what the SDK would not."""
    with grpc.insecure_channel(cluster.address) as channel:
        yield coordinator_pb2_grpc.CoordinatorStub(channel)


def fingerprint(client: shoal.Client, name: str) -> tuple[int, str]:
    """Count and a checksum of every stored vector and payload."""
    docs = client.get(name, [f"id{i}" for i in range(N)] + ["new"])
    h = hashlib.sha256()
    for d in docs:
        h.update(d.id.encode())
        h.update(d.vector.tobytes())
        h.update(repr(sorted(d.payload.items())).encode())
    return client.count(name), h.hexdigest()


def matrix(rows: np.ndarray) -> common_pb2.FloatMatrix:
    """Pack without the SDK's checks."""
    rows = np.asarray(rows, dtype="<f4")
    return common_pb2.FloatMatrix(data=rows.tobytes(), rows=rows.shape[0], dim=rows.shape[1])


def expect(code: grpc.StatusCode, words: str, call: Callable[[], object]) -> None:
    """The call fails with this status code and a message containing these words."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == code, info.value.details()
    assert words.lower() in info.value.details().lower(), info.value.details()


def test_bad_writes_change_nothing(client: shoal.Client, filled: str,
                                   stub: coordinator_pb2_grpc.CoordinatorStub) -> None:
    """Wrong dimension, NaN, Inf, zero under cosine, empty or repeated ids, mismatched counts, bad bytes."""
    before = fingerprint(client, filled)
    good = random_vectors(2, DIM, seed=5)
    nan, inf = good.copy(), good.copy()
    nan[1, 3] = np.nan
    inf[0, 0] = np.inf
    cases = [
        (["new", "x"], matrix(random_vectors(2, DIM + 1)), "dimension is 9"),
        (["new", "x"], matrix(nan), "vector 1 contains NaN"),
        (["new", "x"], matrix(inf), "vector 0 contains NaN or Inf"),
        (["new", "x"], matrix(np.zeros((2, DIM))), "all zeros"),
        (["new", ""], matrix(good), "position 1 is empty"),
        (["new", "new"], matrix(good), "more than once"),
        (["new"], matrix(good), "1 ids but 2 vectors"),
        (["new", "x"], common_pb2.FloatMatrix(data=b"\0" * 10, rows=2, dim=DIM), "do not hold"),
    ]
    for ids, vectors, words in cases:
        expect(grpc.StatusCode.INVALID_ARGUMENT, words,
               lambda ids=ids, vectors=vectors: stub.Upsert(coordinator_pb2.UpsertRequest(
                   collection=filled, ids=ids, vectors=vectors)))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "payloads",
           lambda: stub.Upsert(coordinator_pb2.UpsertRequest(
               collection=filled, ids=["new", "x"], vectors=matrix(good), payloads=[common_pb2.Payload()])))
    expect(grpc.StatusCode.NOT_FOUND, "does not exist",
           lambda: stub.Upsert(coordinator_pb2.UpsertRequest(collection="nope", ids=["a"], vectors=matrix(good[:1]))))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "empty",
           lambda: stub.Delete(coordinator_pb2.DeleteRequest(collection=filled, ids=["id1", ""])))
    with pytest.raises(shoal.InvalidArgument, match="dimension"):
        client.upsert(filled, ["new"], random_vectors(1, 3))
    with pytest.raises(shoal.InvalidArgument, match="unsupported value type"):
        client.upsert(filled, ["new"], good[:1], [{"bad": {"nested": "dict"}}])
    assert fingerprint(client, filled) == before


def test_bad_searches(client: shoal.Client, filled: str, stub: coordinator_pb2_grpc.CoordinatorStub) -> None:
    """k out of range, wrong dimension, NaN query, unknown collection, no query at all."""
    q = random_vectors(1, DIM, seed=6)

    def search(collection: str = filled, vectors: common_pb2.FloatMatrix | None = None, k: int = 5,
               ef: int = 0) -> Callable[[], object]:
        return lambda: stub.Search(coordinator_pb2.SearchRequest(
            collection=collection, vectors=vectors if vectors is not None else matrix(q), k=k, ef=ef))

    expect(grpc.StatusCode.INVALID_ARGUMENT, "k must be between 1 and", search(k=0))
    expect(grpc.StatusCode.INVALID_ARGUMENT, f"got {MAX_K + 1}", search(k=MAX_K + 1))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "ef must be between", search(ef=10**6))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "dimension is 3", search(vectors=matrix(random_vectors(1, 3))))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "NaN", search(vectors=matrix(np.full((1, DIM), np.nan))))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "at least one query", search(vectors=matrix(np.zeros((0, DIM)))))
    expect(grpc.StatusCode.NOT_FOUND, "'nope' does not exist", search(collection="nope"))
    with pytest.raises(shoal.InvalidArgument, match="k must be"):
        client.search(filled, q[0], k=0)


def test_bad_collections(client: shoal.Client, filled: str, stub: coordinator_pb2_grpc.CoordinatorStub) -> None:
    """Duplicate, unknown, badly named or shaped collections."""
    before = fingerprint(client, filled)
    with pytest.raises(shoal.AlreadyExists, match="already exists"):
        client.create_collection(filled, dim=DIM)
    assert client.describe_collection(filled).dim == DIM
    for name, dim, words in [("bad name!", 4, "not valid"), ("", 4, "not valid"), ("okname", 0, "dim must be")]:
        expect(grpc.StatusCode.INVALID_ARGUMENT, words,
               lambda name=name, dim=dim: stub.CreateCollection(coordinator_pb2.CreateCollectionRequest(
                   name=name, dim=dim)))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "unknown metric",
           lambda: stub.CreateCollection(coordinator_pb2.CreateCollectionRequest(name="okname", dim=4, metric=9)))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "shards must be",
           lambda: stub.CreateCollection(coordinator_pb2.CreateCollectionRequest(name="okname", dim=4, shards=100000)))
    for call in (lambda: stub.DropCollection(coordinator_pb2.DropCollectionRequest(name="nope")),
                 lambda: stub.DescribeCollection(coordinator_pb2.DescribeCollectionRequest(name="nope")),
                 lambda: stub.Count(coordinator_pb2.CountRequest(collection="nope"))):
        expect(grpc.StatusCode.NOT_FOUND, "nope", call)
    assert "okname" not in [c.name for c in client.list_collections()]
    assert fingerprint(client, filled) == before


def test_limits_name_their_setting(client: shoal.Client, filled: str,
                                   stub: coordinator_pb2_grpc.CoordinatorStub) -> None:
    """k, ef, batch and query depth past their limits: INVALID_ARGUMENT naming the limit and the setting."""
    before = fingerprint(client, filled)
    q = matrix(random_vectors(1, DIM, seed=7))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "(coordinator setting max_k), got 4294967295",
           lambda: stub.Search(coordinator_pb2.SearchRequest(collection=filled, vectors=q, k=2**32 - 1)))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "setting max_ef",
           lambda: stub.Search(coordinator_pb2.SearchRequest(collection=filled, vectors=q, k=3, ef=2**32 - 1,
                                                             filter="i>3")))
    rows = MAX_BATCH + 1
    expect(grpc.StatusCode.INVALID_ARGUMENT, f"{rows} queries in one request; the limit is {MAX_BATCH} "
           "(coordinator setting max_batch)",
           lambda: stub.Search(coordinator_pb2.SearchRequest(collection=filled, k=1, vectors=common_pb2.FloatMatrix(
               rows=rows, dim=DIM, data=np.ones((rows, DIM), "<f4").tobytes()))))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "setting max_batch",
           lambda: stub.Delete(coordinator_pb2.DeleteRequest(collection=filled,
                                                             ids=[f"x{i}" for i in range(MAX_BATCH + 1)])))
    deep = "i:1"
    for _ in range(MAX_QUERY_DEPTH + 1):
        deep = f"NOT ({deep} OR i:2)"
    expect(grpc.StatusCode.INVALID_ARGUMENT, "max_query_depth",
           lambda: stub.Search(coordinator_pb2.SearchRequest(collection=filled, vectors=q, k=3, filter=deep)))
    tree = Q.exists("i")
    for _ in range(MAX_QUERY_DEPTH + 1):
        tree = Q.or_(Q.eq("i", 1), tree)
    expect(grpc.StatusCode.INVALID_ARGUMENT, f"more than {MAX_QUERY_DEPTH} levels deep",
           lambda: stub.Search(coordinator_pb2.SearchRequest(collection=filled, vectors=q, k=3, filter_tree=tree)))
    # Regression: a query string this deep used to exhaust the parser's recursion (RecursionError -> INTERNAL).
    expect(grpc.StatusCode.INVALID_ARGUMENT, "max_query_depth",
           lambda: stub.Search(coordinator_pb2.SearchRequest(collection=filled, vectors=q, k=3,
                                                             filter="(" * 50_000 + "i:1" + ")" * 50_000)))
    assert fingerprint(client, filled) == before


def test_malformed_and_oversized_messages(client: shoal.Client, filled: str, cluster: LocalCluster) -> None:
    """Regression: bytes that do not parse used to answer UNKNOWN ("Unexpected DecodeError"); now INVALID_ARGUMENT.
    A message past 64 MiB is RESOURCE_EXHAUSTED from gRPC, and the SDK says which setting and what to do."""
    before = fingerprint(client, filled)
    with grpc.insecure_channel(cluster.address) as channel:
        raw = channel.unary_unary("/shoal.v1.Coordinator/Upsert", request_serializer=None,
                                  response_deserializer=None)
        good = coordinator_pb2.UpsertRequest(collection=filled, ids=["new"], vectors=matrix(random_vectors(1, DIM)))
        expect(grpc.StatusCode.INVALID_ARGUMENT, "malformed request to /shoal.v1.Coordinator/Upsert",
               lambda: raw(good.SerializeToString()[:-3]))
        expect(grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max",
               lambda: raw(b"\0" * (DEFAULT_MAX_MESSAGE_BYTES + 1)))
    big = np.ones((DEFAULT_MAX_MESSAGE_BYTES // (4 * DIM) + 1, DIM), np.float32)
    with pytest.raises(shoal.ResourceExhausted, match="max_message_bytes"):
        client.search_batch(filled, big, k=1)
    assert fingerprint(client, filled) == before
