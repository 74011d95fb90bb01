"""The address a shard advertises: a pod IP when bound to every interface, never 0.0.0.0."""

from __future__ import annotations

import socket

import pytest

from shard_node import server
from shard_node.settings import ShardSettings


def _resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    def fake_getaddrinfo(host: str, port: object, family: int = 0, kind: int = 0) -> list:
        assert host == "shard-pod-7"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in addresses]

    monkeypatch.setattr(server.socket, "gethostname", lambda: "shard-pod-7")
    monkeypatch.setattr(server.socket, "getaddrinfo", fake_getaddrinfo)


def test_wildcard_bind_advertises_the_pod_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, "10.42.3.17")
    assert server.advertised_host(ShardSettings(bind_host="0.0.0.0")) == "10.42.3.17"


def test_a_routable_address_beats_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, "127.0.1.1", "10.42.3.17")
    assert server.advertised_host(ShardSettings(bind_host="0.0.0.0")) == "10.42.3.17"


def test_loopback_only_host_keeps_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, "127.0.1.1")
    assert server.advertised_host(ShardSettings(bind_host="0.0.0.0")) == "127.0.1.1"


def test_unresolvable_hostname_falls_back_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object, **__: object) -> list:
        raise socket.gaierror("no such host")

    monkeypatch.setattr(server.socket, "getaddrinfo", fail)
    assert server.advertised_host(ShardSettings(bind_host="")) == "127.0.0.1"


def test_explicit_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, "10.42.3.17")
    assert server.advertised_host(ShardSettings(bind_host="0.0.0.0", advertise_host="shard-0.shoal")) == "shard-0.shoal"
    assert server.advertised_host(ShardSettings(bind_host="127.0.0.1")) == "127.0.0.1"
