"""The body-size limit: refused before the application sees any of the body, by header or by streamed length."""

from __future__ import annotations

import json
from typing import Any

from gateway.body_limit import BodyLimit
from tests.unit.gateway.asgi import request


class Echo:
    """An ASGI app that answers the body it read (and counts its calls)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    app = Echo()
    status, _, body = request(BodyLimit(app, 10), "POST", "/", [b"12345", b"67890"])
    assert (status, body, app.calls) == (200, b"1234567890", 1)


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    app = Echo()
    status, headers, body = request(BodyLimit(app, 10), "POST", "/", b"x" * 11, [("content-length", "11")])
    assert status == 413 and app.calls == 0 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "RESOURCE_EXHAUSTED"
    assert "larger than 10 bytes" in error["message"] and "SHOAL_GATEWAY_MAX_BODY_BYTES" in error["message"]


def test_a_streamed_body_over_the_limit_is_refused() -> None:
    app = Echo()
    status, _, _ = request(BodyLimit(app, 10), "POST", "/", [b"123456", b"789012"])
    assert status == 413 and app.calls == 0


def test_bodiless_requests_pass() -> None:
    app = Echo()
    assert request(BodyLimit(app, 0), "GET", "/")[0] == 200
