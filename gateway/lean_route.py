"""A FastAPI route documented from its endpoint's signature but served without FastAPI's per-request solving.

FastAPI resolves dependencies, parses JSON with the stdlib, validates, hops to a thread for a plain def and
serialises the answer through its response model: about 1 ms of a search here. A LeanRoute's endpoint is an
`async def (request, *, body, authorization, **path params)`; the route parses the body with orjson and
pydantic-core (the same 400s as FastAPI's) and passes it, the Authorization header and the path parameters
straight in. The endpoint answers a ready Response. The OpenAPI document is FastAPI's own, from the signature.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from gateway.conversions import parse_body


class LeanRoute(APIRoute):
    """An APIRoute whose handler calls the endpoint directly (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The request handler: parse the body, call the endpoint."""
        endpoint = self.endpoint
        model = typing.get_type_hints(endpoint)["body"]

        async def handler(request: Request) -> Response:
            body = parse_body(model, await request.body())
            return await endpoint(request, body=body, authorization=request.headers.get("authorization", ""),
                                  **request.path_params)

        return handler
