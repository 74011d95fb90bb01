"""The one mapping from SDK errors (gRPC status codes) and malformed HTTP requests to HTTP statuses.

The body of every refusal is `{"error": {"code": "<gRPC code name>", "message": "..."}}` with the
coordinator's own message, so a REST caller reads what a gRPC caller reads.
"""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from protos.errors import ShoalError

# Google's published gRPC -> HTTP mapping (google.rpc.Code), so HTTP tooling reads the status as gRPC means it.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_CODE_BY_HTTP = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 405: "UNIMPLEMENTED", 409: "ALREADY_EXISTS", 413: "RESOURCE_EXHAUSTED"}


class GatewayError(Exception):
    """A request the gateway itself refuses before calling the coordinator (status, code name, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON body of a refusal."""
    return {"error": {"code": code, "message": message}}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC status code (500 for codes that mean a server fault)."""
    return HTTP_STATUS.get(code, 500)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_message(exc: RequestValidationError) -> str:
    """One readable sentence for a body FastAPI could not parse or validate."""
    messages = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx", {})
            pos = err["loc"][1] if len(err.get("loc", ())) > 1 else "?"
            messages.append(f"the request body is not valid JSON: {ctx.get('error', 'parse error')} at position {pos}")
        else:
            messages.append(f"{_location(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}")
    return "; ".join(messages) or "invalid request"


def refusal(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str] | None] | None:
    """The HTTP status, error body and extra headers for a failure; None for one that is a server fault."""
    if isinstance(exc, ShoalError):
        return http_status(exc.code), error_body(exc.code.name, str(exc)), None
    if isinstance(exc, GatewayError):
        return exc.status, error_body(exc.code, str(exc)), None
    if isinstance(exc, RequestValidationError):
        return 400, error_body("INVALID_ARGUMENT", validation_message(exc)), None
    if isinstance(exc, StarletteHTTPException):
        return (exc.status_code, error_body(_CODE_BY_HTTP.get(exc.status_code, "UNKNOWN"), str(exc.detail)),
                getattr(exc, "headers", None))
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the error body."""

    async def _refuse(_: Request, exc: Exception) -> JSONResponse:
        refused = refusal(exc)
        assert refused is not None   # registered only for the kinds refusal maps
        status, body, headers = refused
        return JSONResponse(body, status_code=status, headers=headers)

    for kind in (ShoalError, GatewayError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, _refuse)
