"""Requests are parsed by us, not by gRPC, so a malformed protobuf answers INVALID_ARGUMENT with a message.

gRPC's own deserialization failure answers INTERNAL (sync servers) or UNKNOWN (asyncio servers) with no
hint of what was wrong; these interceptors take the bytes raw, parse them, and refuse what does not parse.
Only unary-request methods are rewritten (every Shoal RPC is one); streaming ones pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

# The protobuf runtime refuses messages nested deeper than this (upb's default decode depth).
PROTOBUF_MAX_DEPTH = 100


def malformed_message(method: str, error: Exception) -> str:
    """The status message for a request whose bytes do not parse."""
    return (f"malformed request to {method}: the bytes are not a valid protobuf message of its request type "
            f"({error}); send a message built from protos/*.proto (messages nested deeper than "
            f"{PROTOBUF_MAX_DEPTH} levels are refused by the protobuf runtime)")


def _unary_unary(handler: Any) -> bool:
    return (handler is not None and not handler.request_streaming and not handler.response_streaming
            and handler.request_deserializer is not None)


class ParseRequestsInterceptor(grpc.ServerInterceptor):
    """For thread-pool servers: malformed unary requests answer INVALID_ARGUMENT.

    It must be the innermost interceptor: the wrapped handler is built once per method and reused, which
    holds because the service's own handler for a method never changes."""

    def __init__(self) -> None:
        self._wrapped: dict[str, Any] = {}

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        """Wrap the method handler so it receives raw bytes and parses them itself."""
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = continuation(handler_call_details)
        if not _unary_unary(handler):
            return handler
        parse, behavior, method = handler.request_deserializer, handler.unary_unary, handler_call_details.method

        def parsed(raw: bytes, context: grpc.ServicerContext) -> Any:
            try:
                request = parse(raw)
            except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad input
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, malformed_message(method, exc))
            return behavior(request, context)

        wrapped = grpc.unary_unary_rpc_method_handler(parsed, response_serializer=handler.response_serializer)
        self._wrapped[method] = wrapped
        return wrapped


class AsyncParseRequestsInterceptor(grpc.aio.ServerInterceptor):
    """For asyncio servers: malformed unary requests answer INVALID_ARGUMENT (innermost; wrapped once per method)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, Any] = {}

    async def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        """Wrap the method handler so it receives raw bytes and parses them itself."""
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if not _unary_unary(handler):
            return handler
        parse, behavior, method = handler.request_deserializer, handler.unary_unary, handler_call_details.method

        async def parsed(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                request = parse(raw)
            except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad input
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, malformed_message(method, exc))
            return await behavior(request, context)

        wrapped = grpc.unary_unary_rpc_method_handler(parsed, response_serializer=handler.response_serializer)
        self._wrapped[method] = wrapped
        return wrapped
