"""Admission of public requests: per-client concurrency and the request deadline (a grpc.aio server interceptor).

A client is its API key when API keys are on (`authorization: Bearer <key>`, already checked by the key
interceptor; only a digest of the key is kept, never the key), else its peer host: with keys off, a made-up
key must not buy a host a second allowance. A client with `max_concurrent_per_client` requests in flight gets
RESOURCE_EXHAUSTED for the next one. Every request runs under a deadline: the caller's, capped at
`max_deadline_s`, or `default_deadline_s` when it sets none; work still running then is cancelled and the
call answers DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from coordinator.auth import bearer_key, key_fingerprint
from coordinator.deadline import set_request_deadline
from coordinator.settings import CoordinatorSettings
from protos.errors import DeadlineExceeded, ResourceExhausted

T = TypeVar("T")


def client_key(metadata: Sequence[Any] | None, peer: str, by_api_key: bool = True) -> str:
    """Who a request counts against: its API key's fingerprint (if by_api_key), else its peer host (the port
    varies per call)."""
    token = bearer_key(metadata) if by_api_key else None
    if token:
        return "key:" + key_fingerprint(token)
    host, sep, port = peer.rpartition(":")
    return "peer:" + (host if sep and port.isdigit() else peer)


def request_budget(time_remaining: float | None, default_s: float, cap_s: float) -> float:
    """Seconds a request may run: the caller's deadline capped at cap_s, or default_s when it set none."""
    return min(default_s if time_remaining is None else time_remaining, cap_s)


class Admission:
    """Admits one request at a time: the per-client concurrency limit, then the request's deadline.

    The interceptor applies it to every unary call; the search stream applies it to each search it carries."""

    def __init__(self, settings: CoordinatorSettings, by_api_key: bool = True,
                 on_refused: Callable[[str, str], None] | None = None) -> None:
        self._by_api_key = by_api_key
        self._on_refused = on_refused  # (method name, status code name), e.g. to count refusals in metrics
        self._limit = settings.max_concurrent_per_client
        self._default_s = settings.default_deadline_s
        self._cap_s = settings.max_deadline_s
        self._in_flight: dict[str, int] = {}

    def in_flight(self) -> dict[str, int]:
        """Requests now running, per client key (for tests and debugging)."""
        return dict(self._in_flight)

    def key_of(self, metadata: Sequence[Any] | None, peer: str) -> str:
        """The client a request from this peer with this metadata counts against."""
        return client_key(metadata, peer, self._by_api_key)

    async def run(self, method: str, key: str, asked: float | None, work: Callable[[], Awaitable[T]]) -> T:
        """work() under the client's allowance and the request's deadline (`asked`: seconds the caller gave, None
        for none); refusals raise ResourceExhausted, running out of time DeadlineExceeded (the work cancelled)."""
        running = self._in_flight.get(key, 0)
        if self._limit > 0 and running >= self._limit:
            if self._on_refused is not None:
                self._on_refused(method, grpc.StatusCode.RESOURCE_EXHAUSTED.name)
            raise ResourceExhausted(
                f"too many concurrent requests from this client: {running} are running and the limit is "
                f"{self._limit} (coordinator setting max_concurrent_per_client); wait for some to finish")
        self._in_flight[key] = running + 1
        try:
            budget = request_budget(asked, self._default_s, self._cap_s)
            set_request_deadline(budget)  # shard and embedder calls under this request are cut to it
            try:
                async with asyncio.timeout(budget):
                    return await work()
            except TimeoutError:
                why = ("the request set no deadline, so default_deadline_s applies" if asked is None else
                       "the coordinator caps deadlines at max_deadline_s" if asked > self._cap_s else
                       "the request's own deadline")
                raise DeadlineExceeded(f"the request did not finish within {budget:.3g} s ({why}); its work was "
                                       "cancelled") from None
        finally:
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    """Applies an Admission to the unary methods of the named services."""

    def __init__(self, admission: Admission, services: Sequence[str]) -> None:
        self._admission = admission
        self._prefixes = tuple(f"/{s}/" for s in services)

    async def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        """Wrap unary methods of the admitted services; leave health, reflection and the rest alone."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if (handler is None or handler.request_streaming or handler.response_streaming
                or not method.startswith(self._prefixes)):
            return handler
        behavior, metadata = handler.unary_unary, handler_call_details.invocation_metadata
        name = method.rsplit("/", 1)[-1]

        async def admitted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await self._admission.run(name, self._admission.key_of(metadata, context.peer()),
                                                 context.time_remaining(), lambda: behavior(request, context))
            except (ResourceExhausted, DeadlineExceeded) as exc:  # the servicer's own errors are statuses already
                await context.abort(exc.code, str(exc))

        return grpc.unary_unary_rpc_method_handler(admitted, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)
