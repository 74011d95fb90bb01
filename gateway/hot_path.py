"""The ASGI front of the gateway: search and the health check served straight, everything else by FastAPI.

Starlette's and FastAPI's per-request machinery (error and exception middleware, the exit-stack and telemetry
layers, the router testing every route's regex, the body replayed into a Request) costs about as much as the
gateway's own work on a search. The two routes a client calls per query skip it: the body is read under the
same limit, parsed as FastAPI parses it, refused with the same error mapping. FastAPI keeps the routes in its
OpenAPI document, and every other path, method or trailing-slash redirect is its to answer.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway import conversions as cv
from gateway.body_limit import NO_STORE, Disconnected, read_body, refuse
from gateway.errors import refusal
from gateway.search import Pool, search_json
from gateway.settings import API_PREFIX

SEARCH_PATH = re.compile(re.escape(API_PREFIX) + r"/collections/([^/]+)/search")
HEALTH_PATH = "/healthz"
HEALTHY = orjson.dumps({"status": "ok"})
_JSON = (b"content-type", b"application/json")


async def _answer(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class HotPath:
    """Serves POST /v1/collections/{name}/search and GET /healthz itself; passes everything else to `app`."""

    def __init__(self, app: Any, pool: Pool, limit: int) -> None:
        self.app = app
        self.pool = pool
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET" and path == HEALTH_PATH:
                await _answer(send, 200, HEALTHY, [])
                return
            match = SEARCH_PATH.fullmatch(path) if method == "POST" and not scope.get("root_path") else None
            if match:
                await self._search(scope, receive, send, match.group(1))
                return
        await self.app(scope, receive, send)

    async def _search(self, scope: dict[str, Any], receive: Any, send: Any, name: str) -> None:
        try:
            raw = await read_body(scope, receive, self.limit)
        except Disconnected:
            return   # nobody is left to answer
        if raw is None:
            await refuse(send, self.limit)
            return
        authorization = ""
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            body = await search_json(self.pool, name, cv.parse_body(cv.SearchBody, raw), authorization)
        except Exception as exc:
            refused = refusal(exc)
            if refused is None:
                raise   # a server fault: uvicorn answers 500 and logs it, as FastAPI's error middleware does
            status, error, headers = refused
            await _answer(send, status, orjson.dumps(error), [
                *((k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()), NO_STORE])
            return
        await _answer(send, 200, body, [NO_STORE])
