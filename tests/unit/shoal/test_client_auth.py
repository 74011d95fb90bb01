"""The SDK's API key and TLS options: what it sends, where defaults come from, how refusals surface."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import shoal
from protos import coordinator_pb2
from tests.support.certs import CertAuthority

GOOD_KEY = "sdk-test-key-5f1e"


class _Recorder(grpc.GenericRpcHandler):
    """Answers Count: 3 with the right key, UNAUTHENTICATED otherwise; records the authorization headers seen."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method != "/shoal.v1.Coordinator/Count":
            return None
        header = dict(details.invocation_metadata).get("authorization")
        self.seen.append(header)

        def count(request: coordinator_pb2.CountRequest,
                  context: grpc.ServicerContext) -> coordinator_pb2.CountResponse:
            if header != f"Bearer {GOOD_KEY}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown API key")
            return coordinator_pb2.CountResponse(count=3)

        return grpc.unary_unary_rpc_method_handler(count, coordinator_pb2.CountRequest.FromString,
                                                   coordinator_pb2.CountResponse.SerializeToString)


@pytest.fixture
def server() -> Iterator[tuple[str, _Recorder]]:
    """A plaintext in-process gRPC server standing in for the coordinator's Count."""
    recorder = _Recorder()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[recorder])
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", recorder
    srv.stop(0)


def test_api_key_argument_env_fallback_and_refusal(server: tuple[str, _Recorder],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit key is sent as a bearer token; None falls back to SHOAL_API_KEY; "" sends none."""
    address, recorder = server
    monkeypatch.delenv("SHOAL_API_KEY", raising=False)
    monkeypatch.delenv("SHOAL_TLS_CA", raising=False)
    with shoal.Client(address, api_key=GOOD_KEY) as c:
        assert c.count("x") == 3
    monkeypatch.setenv("SHOAL_API_KEY", GOOD_KEY)
    with shoal.Client(address) as c:
        assert c.count("x") == 3
    with shoal.Client(address, api_key="", retries=0) as c, pytest.raises(shoal.Unauthenticated):
        c.count("x")
    assert recorder.seen == [f"Bearer {GOOD_KEY}", f"Bearer {GOOD_KEY}", None]


def test_tls_ca_from_env_switches_to_tls(server: tuple[str, _Recorder], monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """SHOAL_TLS_CA makes the client dial TLS: a plaintext server is then unreachable (UNAVAILABLE)."""
    address, recorder = server
    monkeypatch.setenv("SHOAL_TLS_CA", CertAuthority(tmp_path / "ca").ca)
    with shoal.Client(address, api_key=GOOD_KEY, retries=0, timeout=5) as c, pytest.raises(shoal.Unavailable):
        c.count("x")
    assert recorder.seen == []
