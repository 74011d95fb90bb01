"""Requests are parsed by us, not by gRPC, so a malformed protobuf answers INVALID_ARGUMENT with a message.

gRPC's own deserialization failure answers INTERNAL (sync servers) or UNKNOWN (asyncio servers) with no
hint of what was wrong; these interceptors take the bytes raw, parse them, and refuse what does not parse.
The thread-pool interceptor rewrites every kind of method (the shard node's backup and catch-up RPCs
stream); the asyncio one rewrites unary-unary methods, the only kind the coordinator and embedder serve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from protos.errors import InvalidArgument

# The protobuf runtime refuses messages nested deeper than this (upb's default decode depth).
PROTOBUF_MAX_DEPTH = 100


def malformed_message(method: str, error: Exception) -> str:
    """The status message for a request whose bytes do not parse."""
    return (f"malformed request to {method}: the bytes are not a valid protobuf message of its request type "
            f"({error}); send a message built from protos/*.proto (messages nested deeper than "
            f"{PROTOBUF_MAX_DEPTH} levels are refused by the protobuf runtime)")


def _rewrap(handler: Any, method: str) -> Any:
    """The same sync handler, taking raw bytes and parsing each request message itself."""
    parse = handler.request_deserializer
    out = handler.response_serializer

    def one(raw: bytes, context: grpc.ServicerContext) -> Any:
        try:
            return parse(raw)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad input
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, malformed_message(method, exc))

    def many(raws: Any, context: grpc.ServicerContext) -> Any:
        # Read inside the service's own loop: a domain error there reaches its error edge like any other.
        for raw in raws:
            try:
                yield parse(raw)
            except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad input
                raise InvalidArgument(malformed_message(method, exc)) from None

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(lambda it, c: handler.stream_stream(many(it, c), c),
                                                     response_serializer=out)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(lambda it, c: handler.stream_unary(many(it, c), c),
                                                    response_serializer=out)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(lambda raw, c: handler.unary_stream(one(raw, c), c),
                                                    response_serializer=out)
    return grpc.unary_unary_rpc_method_handler(lambda raw, c: handler.unary_unary(one(raw, c), c),
                                               response_serializer=out)


def _unary_unary(handler: Any) -> bool:
    return (handler is not None and not handler.request_streaming and not handler.response_streaming
            and handler.request_deserializer is not None)


class ParseRequestsInterceptor(grpc.ServerInterceptor):
    """For thread-pool servers: malformed requests (unary or streamed) answer INVALID_ARGUMENT.

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
        if handler is None or handler.request_deserializer is None:
            return handler
        wrapped = _rewrap(handler, method)
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
