"""The gateway's ASGI edge: refuse bodies over the limit before they are parsed; mark API answers uncacheable."""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import error_body

Scope = dict[str, Any]
NO_STORE_PREFIX = "/v1/"   # the API's answers are live data: never cached


def _too_large(limit: int) -> bytes:
    return json.dumps(error_body(
        "RESOURCE_EXHAUSTED", f"the request body is larger than {limit} bytes (gateway setting max_body_bytes, "
        f"env SHOAL_GATEWAY_MAX_BODY_BYTES): send fewer or smaller items per request")).encode()


class BodyLimit:
    """413 for a body whose Content-Length, or whose streamed length, passes `limit` bytes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, send: Any) -> None:
        body = _too_large(self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(NO_STORE_PREFIX):
            send = _no_store(send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        # The body is read here, whole, so an oversized one is refused before the app parses any of it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}],
                                      receive), send)


def _no_store(send: Any) -> Any:
    """A send callable that marks the response as not to be cached (API answers are live data)."""

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"cache-control", b"no-store")]}
        await send(message)

    return wrapped


def _replay(messages: list[dict[str, Any]], then: Any = None) -> Any:
    """A receive callable that hands out `messages`, then defers to `then` (e.g. for the disconnect)."""
    queue = list(messages)

    async def receive() -> Any:
        if queue:
            return queue.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive
