"""The HTTP application over a stub SDK client: routing, status mapping, key pass-through, OpenAPI."""

from __future__ import annotations

from typing import Any

import grpc
from openapi_spec_validator import validate

import shoal
from gateway.app import create_app
from gateway.errors import HTTP_STATUS, http_status
from gateway.settings import GatewaySettings
from shoal.client import Hit, Hits
from tests.unit.gateway.asgi import json_request, request


class StubClient:
    """Answers like the SDK: search hits, or the error it was given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def explain_async(self, name: str, **kw: Any) -> tuple[Hits, dict[str, Any]]:
        self.calls.append((name, kw))
        if self.error:
            raise self.error
        plan = {"ranking": "vector", "shards": [], "latency_ms": 1.0} if kw["explain"] else {}
        return Hits([Hit("a", 0.9, {"t": "x"}, 0.1)], missing_shards=[2]), plan

    def count(self, name: str) -> int:
        if self.error:
            raise self.error
        return 7


class StubPool:
    """Hands out one stub client and records the keys asked for."""

    def __init__(self, client: StubClient) -> None:
        self.client = client
        self.keys: list[str] = []

    def for_key(self, key: str) -> StubClient:
        self.keys.append(key)
        return self.client

    def close(self) -> None:
        pass


def _app(error: Exception | None = None) -> tuple[Any, StubPool]:
    pool = StubPool(StubClient(error))
    return create_app(GatewaySettings(max_body_bytes=10_000), pool), pool  # type: ignore[arg-type]


def test_search_answers_hits_and_passes_the_key() -> None:
    app, pool = _app()
    status, body = json_request(app, "POST", "/v1/collections/c/search", {"vector": [1, 2], "k": 3},
                                [("authorization", "Bearer k1")])
    assert status == 200 and body["hits"] == [{"id": "a", "score": 0.9, "distance": 0.1, "payload": {"t": "x"}}]
    assert body["missing_shards"] == [2] and body["plan"] is None and body["took_ms"] >= 0
    assert pool.keys == ["k1"] and pool.client.calls[0][1]["k"] == 3


def test_explain_answers_the_plan() -> None:
    app, _ = _app()
    status, body = json_request(app, "POST", "/v1/collections/c/search", {"text": "hi", "explain": True})
    assert status == 200 and body["plan"]["ranking"] == "vector"


def test_sdk_errors_keep_their_message_under_the_mapped_status() -> None:
    for error, status in ((shoal.NotFound("collection 'c' does not exist"), 404),
                          (shoal.InvalidArgument("k must be between 1 and 10000"), 400),
                          (shoal.PermissionDenied("Upsert needs read-write"), 403),
                          (shoal.Unauthenticated("no API key"), 401), (shoal.Unavailable("shard 1 down"), 503)):
        app, _ = _app(error)
        got, body = json_request(app, "GET", "/v1/collections/c/count")
        assert got == status and body == {"error": {"code": error.code.name, "message": str(error)}}


def test_malformed_authorization_is_401_before_any_call() -> None:
    app, pool = _app()
    status, body = json_request(app, "GET", "/v1/collections/c/count", headers=[("authorization", "Token x")])
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED" and pool.keys == []


def test_bad_json_and_wrong_types_are_400() -> None:
    app, _ = _app()
    status, _, raw = request(app, "POST", "/v1/collections/c/search", b'{"k": ', [("content-type", "application/json")])
    assert status == 400 and b"not valid JSON" in raw and b"position 6" in raw
    status, body = json_request(app, "POST", "/v1/collections/c/search", {"k": "ten"})
    assert status == 400 and body["error"]["message"].startswith("k: ")


def test_unknown_routes_and_methods_use_the_error_body() -> None:
    app, _ = _app()
    assert json_request(app, "GET", "/v1/nothing")[1]["error"]["code"] == "NOT_FOUND"
    assert json_request(app, "PUT", "/v1/collections")[0] == 405


def test_openapi_document_validates() -> None:
    app, _ = _app()
    status, spec = json_request(app, "GET", "/openapi.json")
    assert status == 200
    validate(spec)
    assert spec["paths"]["/v1/collections/{name}/search"]["post"]["responses"]["404"]


def test_every_client_error_code_has_a_4xx_and_server_faults_5xx() -> None:
    assert {http_status(c) for c in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                     grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.PERMISSION_DENIED)} == {400, 404,
                                                                                                             409, 403}
    assert http_status(grpc.StatusCode.INTERNAL) == 500 and http_status(grpc.StatusCode.UNKNOWN) == 500
    assert all(400 <= s < 600 for c, s in HTTP_STATUS.items() if c != grpc.StatusCode.OK)


def test_interactive_docs_load_nothing_from_outside() -> None:
    app, _ = _app()
    status, _, page = request(app, "GET", "/docs")
    assert status == 200 and b"/docs-assets/swagger-ui-bundle.js" in page and b"/openapi.json" in page
    assert b"https://" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert request(app, "GET", f"/docs-assets/{asset}")[0] == 200
