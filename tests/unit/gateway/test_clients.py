"""The client pool: one SDK client per API key, bounded, least recently used closed first."""

from __future__ import annotations

from gateway.clients import ClientPool
from gateway.settings import GatewaySettings


def test_one_client_per_key_and_eviction() -> None:
    pool = ClientPool(GatewaySettings(coordinator="127.0.0.1:1"), size=2)
    a, b = pool.for_key("key-a"), pool.for_key("")
    assert pool.for_key("key-a") is a and a is not b
    assert a._metadata == (("authorization", "Bearer key-a"),) and b._metadata == ()
    pool.for_key("key-c")                # evicts "" (least recently used), not key-a
    assert pool.for_key("key-a") is a and pool.for_key("") is not b
    pool.close()


def test_the_gateway_environment_lends_no_key(monkeypatch) -> None:
    monkeypatch.setenv("SHOAL_API_KEY", "the-gateway-operators-key")
    pool = ClientPool(GatewaySettings(coordinator="127.0.0.1:1"))
    assert pool.for_key("")._metadata == ()
    pool.close()
