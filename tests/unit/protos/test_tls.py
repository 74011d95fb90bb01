"""protos/tls.py and protos/healthcheck.py against real in-process gRPC servers with throwaway certificates."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from protos.healthcheck import main as healthcheck
from protos.serving import add_health_and_reflection, mark_serving
from protos.tls import ClientTLS, ServerTLS, TLSConfigError, add_port
from tests.support.certs import CertAuthority, Pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A CA with a loopback server cert, a cert that names only 'shoal-internal', a client cert; and a stranger CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca = CertAuthority(folder / "ca")
    other = CertAuthority(folder / "other", name="Some other CA")
    return {"ca": ca.ca, "other_ca": other.ca,
            "loopback": ca.issue("loopback", dns=("localhost",), ips=("127.0.0.1",)),
            "internal": ca.issue("internal", dns=("shoal-internal",)),
            "client": ca.issue("client", client=True),
            "stranger_client": other.issue("stranger", client=True)}


def _serve(tls: ServerTLS) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health = add_health_and_reflection(server, [])
    port = add_port(server, "127.0.0.1:0", tls)
    assert port > 0
    server.start()
    mark_serving(health, [])
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def tls_server(pki: dict) -> Iterator[str]:
    """A health server with the loopback certificate (server-side TLS only)."""
    pair: Pair = pki["loopback"]
    server, address = _serve(ServerTLS(pair.cert, pair.key))
    yield address
    server.stop(0)


@pytest.fixture
def mtls_server(pki: dict) -> Iterator[str]:
    """A health server that names only 'shoal-internal' and demands a client certificate from the CA."""
    pair: Pair = pki["internal"]
    server, address = _serve(ServerTLS(pair.cert, pair.key, pki["ca"]))
    yield address
    server.stop(0)


def test_healthcheck_plaintext_server() -> None:
    """Without TLS settings a server listens in plaintext and the probe answers 0."""
    server, address = _serve(ServerTLS())
    try:
        assert healthcheck([address, "--timeout", "5"]) == 0
    finally:
        server.stop(0)


def test_healthcheck_over_tls(tls_server: str, pki: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """The probe trusts the server's CA: exit 0; plaintext or a stranger CA cannot talk to it: exit 1."""
    assert healthcheck([tls_server, "--tls-ca", pki["ca"]]) == 0
    assert "SERVING" in capsys.readouterr().out
    assert healthcheck([tls_server, "--timeout", "3"]) == 1
    assert healthcheck([tls_server, "--tls-ca", pki["other_ca"], "--timeout", "3"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_server_name_override(mtls_server: str, pki: dict) -> None:
    """A certificate without the dialled IP passes only under the name it carries."""
    client: Pair = pki["client"]
    own = ["--tls-ca", pki["ca"], "--tls-cert", client.cert, "--tls-key", client.key, "--timeout", "3"]
    assert healthcheck([mtls_server, *own]) == 1
    assert healthcheck([mtls_server, *own, "--tls-server-name", "shoal-wrong"]) == 1
    assert healthcheck([mtls_server, *own, "--tls-server-name", "shoal-internal"]) == 0


def test_mutual_tls_bites(mtls_server: str, pki: dict) -> None:
    """A client without a certificate, or with one from another CA, is refused by a mutual-TLS server."""
    named = ["--tls-ca", pki["ca"], "--tls-server-name", "shoal-internal", "--timeout", "3"]
    stranger: Pair = pki["stranger_client"]
    assert healthcheck([mtls_server, *named]) == 1
    assert healthcheck([mtls_server, *named, "--tls-cert", stranger.cert, "--tls-key", stranger.key]) == 1


def test_healthcheck_refuses_tls_flags_without_a_ca(capsys: pytest.CaptureFixture[str]) -> None:
    """--tls-server-name without --tls-ca is a usage error (2), not a silent plaintext probe."""
    assert healthcheck(["127.0.0.1:1", "--tls-server-name", "x"]) == 2
    assert "--tls-ca" in capsys.readouterr().err


def test_incomplete_or_unreadable_settings(tmp_path: Path, pki: dict) -> None:
    """Half a key pair, a client CA without a certificate, a missing or non-PEM file: clear TLSConfigErrors."""
    pair: Pair = pki["loopback"]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    with pytest.raises(TLSConfigError, match="both tls_cert and tls_key"):
        add_port(server, "127.0.0.1:0", ServerTLS(pair.cert, ""))
    with pytest.raises(TLSConfigError, match="tls_client_ca"):
        add_port(server, "127.0.0.1:0", ServerTLS("", "", pki["ca"]))
    with pytest.raises(TLSConfigError, match="cannot read"):
        add_port(server, "127.0.0.1:0", ServerTLS(str(tmp_path / "missing.crt"), pair.key))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(TLSConfigError, match="not a PEM file"):
        ClientTLS(str(junk)).credentials()
    with pytest.raises(TLSConfigError, match="both its cert and key"):
        ClientTLS(pki["ca"], cert=pair.cert).credentials()
    assert ClientTLS("", server_name="x").options() == []
    assert ClientTLS(pki["ca"], server_name="x").options() == [("grpc.ssl_target_name_override", "x")]
