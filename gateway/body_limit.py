"""The gateway's ASGI edge: refuse bodies over the limit before they are parsed; mark API answers uncacheable."""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import error_body

Scope = dict[str, Any]
NO_STORE_PREFIX = "/v1/"   # the API's answers are live data: never cached
NO_STORE = (b"cache-control", b"no-store")


class Disconnected(Exception):
    """The client went away before its whole body arrived (the ASGI message that said so is kept)."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(message.get("type", ""))
        self.message = message


def _too_large(limit: int) -> bytes:
    return json.dumps(error_body(
        "RESOURCE_EXHAUSTED", f"the request body is larger than {limit} bytes (gateway setting max_body_bytes, "
        f"env SHOAL_GATEWAY_MAX_BODY_BYTES): send fewer or smaller items per request")).encode()


async def refuse(send: Any, limit: int) -> None:
    """Answer 413 for a body over `limit` bytes (and close the connection: the rest of the body is unread)."""
    body = _too_large(limit)
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def read_body(scope: Scope, receive: Any, limit: int) -> bytes | None:
    """The whole request body, or None when its Content-Length or streamed length passes `limit` bytes."""
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    message = await receive()
    if message["type"] != "http.request":
        raise Disconnected(message)
    body = message.get("body", b"")
    if not message.get("more_body", False):   # the usual case: the whole body in one message
        return body if len(body) <= limit else None
    chunks = [body]
    seen = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise Disconnected(message)
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BodyLimit:
    """413 for a body whose Content-Length, or whose streamed length, passes `limit` bytes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(NO_STORE_PREFIX):
            send = _no_store(send)
        # The body is read here, whole, so an oversized one is refused before the app parses any of it.
        try:
            body = await read_body(scope, receive, self.limit)
        except Disconnected as gone:
            await self.app(scope, _replay([gone.message]), send)
            return
        if body is None:
            await refuse(send, self.limit)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _no_store(send: Any) -> Any:
    """A send callable that marks the response as not to be cached (API answers are live data)."""

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), NO_STORE]}
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
