"""Requests are parsed by us, not by gRPC, so a malformed protobuf answers INVALID_ARGUMENT with a message.

gRPC's own deserialization failure answers UNKNOWN (asyncio servers) with no hint of what was wrong; this
interceptor takes the bytes raw, parses them, and refuses what does not parse. Every Shoal server is an asyncio
server; the shard node's sync handlers (writes, backup and catch-up streams) run on its thread pool.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
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


def _sync_rewrap(handler: Any, method: str) -> Any:
    """The same sync handler (run on the asyncio server's thread pool), taking raw bytes and parsing each message.

    A sync handler's context on an asyncio server does not raise from abort(), so a unary request that does
    not parse sets the status and returns nothing; streamed requests raise inside the service's own loop, where
    a domain error reaches its error edge like any other."""
    parse = handler.request_deserializer
    out = handler.response_serializer

    def one(raw: bytes, context: Any) -> Any:
        try:
            return parse(raw)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad input
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details(malformed_message(method, exc))
            return None

    def many(raws: Any) -> Any:
        for raw in raws:
            try:
                yield parse(raw)
            except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad input
                raise InvalidArgument(malformed_message(method, exc)) from None

    def unary(raw: bytes, context: Any) -> Any:
        request = one(raw, context)
        return None if request is None else handler.unary_unary(request, context)

    def unary_stream(raw: bytes, context: Any) -> Any:
        # A generator function: the asyncio server calls it on its loop and pulls each message on its thread
        # pool, so the service's own code (and its error edge) runs off the loop.
        request = one(raw, context)
        if request is not None:
            yield from handler.unary_stream(request, context)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(lambda it, c: handler.stream_stream(many(it), c),
                                                     response_serializer=out)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(lambda it, c: handler.stream_unary(many(it), c),
                                                    response_serializer=out)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(unary_stream, response_serializer=out)
    return grpc.unary_unary_rpc_method_handler(unary, response_serializer=out)


def _async_rewrap(handler: Any, method: str) -> Any:
    """The same coroutine unary handler, taking raw bytes and parsing the request itself."""
    parse, behavior = handler.request_deserializer, handler.unary_unary

    async def parsed(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            request = parse(raw)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad input
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, malformed_message(method, exc))
        return await behavior(request, context)

    return grpc.unary_unary_rpc_method_handler(parsed, response_serializer=handler.response_serializer)


def _async_stream_rewrap(handler: Any, method: str) -> Any:
    """The same coroutine stream-stream handler, taking raw bytes: a message that does not parse raises
    InvalidArgument from the request iterator, inside the service's own loop."""
    parse, behavior = handler.request_deserializer, handler.stream_stream

    async def parsed(raws: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        async for raw in raws:
            try:
                message = parse(raw)
            except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad input
                raise InvalidArgument(malformed_message(method, exc)) from None
            yield message

    async def run(raws: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        await behavior(parsed(raws), context)

    return grpc.stream_stream_rpc_method_handler(run, response_serializer=handler.response_serializer)


def _behavior(handler: Any) -> Any:
    return (handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream)


class AsyncParseRequestsInterceptor(grpc.aio.ServerInterceptor):
    """For asyncio servers: a malformed request answers INVALID_ARGUMENT, to coroutine unary handlers, to coroutine
    stream-stream handlers (the node's search stream) and to sync handlers of every kind (the shard node serves
    its writes and streams from the server's thread pool).

    It must be the innermost interceptor: the wrapped handler is built once per method and reused, which holds
    because the service's own handler for a method never changes."""

    def __init__(self) -> None:
        self._wrapped: dict[str, Any] = {}

    async def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        """Wrap the method handler so it receives raw bytes and parses them itself."""
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        coroutine = inspect.iscoroutinefunction(_behavior(handler)) or inspect.isasyncgenfunction(_behavior(handler))
        if coroutine and not (handler.request_streaming or handler.response_streaming):
            wrapped = _async_rewrap(handler, method)
        elif not coroutine:
            wrapped = _sync_rewrap(handler, method)
        elif handler.request_streaming and handler.response_streaming and inspect.iscoroutinefunction(
                handler.stream_stream):
            wrapped = _async_stream_rewrap(handler, method)
        else:
            return handler  # other coroutine streams: none is served here
        self._wrapped[method] = wrapped
        return wrapped
