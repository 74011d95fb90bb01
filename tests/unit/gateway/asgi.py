"""Drive an ASGI application in-process: one HTTP request, its status, headers and body."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any


def request(app: Any, method: str, path: str, body: bytes | Sequence[bytes] = b"",
            headers: Sequence[tuple[str, str]] = ()) -> tuple[int, dict[str, str], bytes]:
    """Send one request (a body given as several chunks is streamed) and collect the response."""
    chunks = [body] if isinstance(body, bytes) else list(body)
    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": query.encode(), "root_path": "", "scheme": "http",
             "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 1234),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return out["status"], out["headers"], out["body"]


def json_request(app: Any, method: str, path: str, payload: Any = None,
                 headers: Sequence[tuple[str, str]] = ()) -> tuple[int, Any]:
    """A JSON request; (status, decoded JSON body)."""
    body = b"" if payload is None else json.dumps(payload).encode()
    hdrs = [("content-type", "application/json"), ("content-length", str(len(body))), *headers]
    status, _, raw = request(app, method, path, body, hdrs)
    return status, json.loads(raw) if raw else None
