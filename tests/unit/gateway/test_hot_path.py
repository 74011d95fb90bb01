"""The hot path answers search and the health check exactly as FastAPI's routes would, and passes the rest on."""

from __future__ import annotations

from typing import Any

import pytest

import shoal
from tests.unit.gateway.asgi import request
from tests.unit.gateway.test_app import _app

SEARCH = "/v1/collections/c/search"
JSON = [("content-type", "application/json")]


def _fastapi_behind(app: Any) -> Any:
    """The app the hot path passes requests to (FastAPI behind the body limit): the same routes, served slowly."""
    return app.app


@pytest.mark.parametrize(("error", "body"), [
    (None, b'{"vector": [1, 2], "k": 3}'),
    (None, b'{"text": "hi", "explain": true}'),
    (None, b'{"k": "ten"}'),                               # a wrong type
    (None, b'{"k": 3}'),                                   # no vector, text, image or query
    (shoal.NotFound("collection 'c' does not exist"), b'{"vector": [1]}'),
    (shoal.Unavailable("shard 1 down"), b'{"vector": [1]}'),
])
def test_search_answers_as_the_fastapi_route_does(error: Exception | None, body: bytes) -> None:
    app, _ = _app(error)
    fast = request(app, "POST", SEARCH, body, JSON)
    slow = request(_fastapi_behind(app), "POST", SEARCH, body, JSON)
    assert fast[0] == slow[0]
    if fast[0] == 200:   # took_ms differs (and so the length); the rest is the same
        assert {**fast[1], "content-length": ""} == {**slow[1], "content-length": ""}
        assert fast[2].split(b'"took_ms"')[0] == slow[2].split(b'"took_ms"')[0]
    else:
        assert fast[1:] == slow[1:]


def test_bad_json_is_400_with_its_position() -> None:
    app, _ = _app()
    for served in (app, _fastapi_behind(app)):   # orjson's words, or the stdlib's: the same position
        status, _, raw = request(served, "POST", SEARCH, b'{"k": ', JSON)
        assert status == 400 and b"INVALID_ARGUMENT" in raw and b"not valid JSON" in raw and b"position 6" in raw


def test_a_malformed_key_is_refused_before_the_sdk_is_asked() -> None:
    app, pool = _app()
    for headers in ([("authorization", "Token x")], [("authorization", "Bearer ")]):
        status, _, raw = request(app, "POST", SEARCH, b'{"vector": [1]}', [*JSON, *headers])
        assert status == 401 and b"UNAUTHENTICATED" in raw and pool.keys == []


def test_a_search_body_over_the_limit_is_413_by_header_or_by_stream() -> None:
    app, pool = _app()   # max_body_bytes=10_000
    big = b'{"vector": [' + b"1," * 6000 + b"1]}"
    assert request(app, "POST", SEARCH, big, [*JSON, ("content-length", str(len(big)))])[0] == 413
    assert request(app, "POST", SEARCH, [big[:6000], big[6000:]], JSON)[0] == 413
    assert pool.client.calls == []


def test_health_and_everything_else() -> None:
    app, _ = _app()
    assert request(app, "GET", "/healthz")[::2] == (200, b'{"status":"ok"}')
    assert request(app, "GET", SEARCH)[0] == 405                      # FastAPI's answer to a wrong method
    assert request(app, "POST", SEARCH + "/", b"{}", JSON)[0] == 307  # and its trailing-slash redirect
    assert request(app, "POST", "/v1/collections/a/b/search", b"{}", JSON)[0] == 404
