"""The admission interceptor on a real grpc.aio server: per-client concurrency and request deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import grpc
import pytest

from coordinator.admission import Admission, AdmissionInterceptor, client_key, request_budget
from coordinator.deadline import time_left
from coordinator.settings import CoordinatorSettings
from protos import coordinator_pb2, coordinator_pb2_grpc

SERVICE = "shoal.v1.Coordinator"
LIMITS = replace(CoordinatorSettings(), max_concurrent_per_client=2, default_deadline_s=0.5, max_deadline_s=1.0)


class Slow(coordinator_pb2_grpc.CoordinatorServicer):
    """Count waits until released (or cancelled); records what it saw."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.cancelled = 0
        self.shard_budget: list[float] = []

    async def Count(self, request: coordinator_pb2.CountRequest, context: grpc.aio.ServicerContext
                    ) -> coordinator_pb2.CountResponse:
        self.shard_budget.append(time_left(30.0))
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return coordinator_pb2.CountResponse(count=1)


class Served:
    def __init__(self, servicer: Slow, port: int, admission: Admission) -> None:
        self.servicer, self.admission = servicer, admission
        self.refused: list[tuple[str, str]] = []
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = coordinator_pb2_grpc.CoordinatorStub(self.channel)

    def count(self, timeout: float | None = 10.0, key: str = "") -> asyncio.Task:
        metadata = (("authorization", f"Bearer {key}"),) if key else None
        return asyncio.ensure_future(self.stub.Count(coordinator_pb2.CountRequest(collection="c"), timeout=timeout,
                                                     metadata=metadata))


@contextlib.asynccontextmanager
async def serving(by_api_key: bool = True) -> AsyncIterator[Served]:
    """A grpc.aio server with the interceptor and a Slow servicer on a free loopback port."""
    servicer = Slow()
    refused: list[tuple[str, str]] = []
    admission = Admission(LIMITS, by_api_key, on_refused=lambda m, c: refused.append((m, c)))
    server = grpc.aio.server(interceptors=[AdmissionInterceptor(admission, [SERVICE])])
    coordinator_pb2_grpc.add_CoordinatorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    s = Served(servicer, port, admission)
    s.refused = refused  # the same list the interceptor appends to
    try:
        yield s
    finally:
        servicer.release.set()
        await s.channel.close()
        await server.stop(0)


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


def against_server(body: Callable[[Served], Awaitable[None]], by_api_key: bool = True) -> Callable[[], None]:
    """A test that runs an async body against a fresh server."""
    def test() -> None:
        async def main() -> None:
            async with serving(by_api_key) as s:
                await body(s)

        asyncio.run(main())

    test.__doc__ = body.__doc__
    return test


async def _concurrency_per_peer(s: Served) -> None:
    """Two calls run; the third from the same host is RESOURCE_EXHAUSTED naming the setting; then it frees up."""
    first, second = s.count(), s.count()
    await until(lambda: sum(s.admission.in_flight().values()) == 2)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.count()
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_concurrent_per_client" in info.value.details() and "limit is 2" in info.value.details()
    assert s.refused == [("Count", "RESOURCE_EXHAUSTED")]
    s.servicer.release.set()
    assert (await first).count == 1 and (await second).count == 1
    assert s.admission.in_flight() == {}
    assert (await s.count()).count == 1


async def _concurrency_per_api_key(s: Served) -> None:
    """Each API key has its own allowance; only a digest of the key is kept."""
    calls = [s.count(key="secret-one"), s.count(key="secret-one"), s.count(key="secret-two")]
    await until(lambda: sum(s.admission.in_flight().values()) == 3)
    keys = s.admission.in_flight()
    assert sorted(keys.values()) == [1, 2]
    assert not any("secret" in k for k in keys)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.count(key="secret-one")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    s.servicer.release.set()
    assert [(await c).count for c in calls] == [1, 1, 1]


async def _keys_ignored_when_unchecked(s: Served) -> None:
    """With API keys off, a made-up key does not buy a host a second allowance."""
    calls = [s.count(key="made-up-1"), s.count(key="made-up-2")]
    await until(lambda: sum(s.admission.in_flight().values()) == 2)
    assert list(s.admission.in_flight()) == ["peer:ipv4:127.0.0.1"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.count(key="made-up-3")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    s.servicer.release.set()
    assert [(await c).count for c in calls] == [1, 1]


async def _default_deadline(s: Served) -> None:
    """A call without a deadline gets default_deadline_s: DEADLINE_EXCEEDED, its work cancelled, shard calls cut."""
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.count(timeout=None)
    took = time.monotonic() - started
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "default_deadline_s" in info.value.details()
    assert 0.4 < took < 5.0
    await until(lambda: s.servicer.cancelled == 1)
    assert 0 < s.servicer.shard_budget[0] <= 0.5
    assert s.admission.in_flight() == {}


async def _capped_deadline(s: Served) -> None:
    """A longer deadline than max_deadline_s is cut to it (the request is served, not refused, until then)."""
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.count(timeout=60.0)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "max_deadline_s" in info.value.details()
    assert time.monotonic() - started < 10.0
    assert 0 < s.servicer.shard_budget[0] <= 1.0
    await until(lambda: s.servicer.cancelled == 1)


test_concurrency_is_limited_per_peer_host = against_server(_concurrency_per_peer)
test_concurrency_is_limited_per_api_key = against_server(_concurrency_per_api_key)
test_unchecked_keys_share_the_host_allowance = against_server(_keys_ignored_when_unchecked, by_api_key=False)
test_request_without_deadline_gets_the_default = against_server(_default_deadline)
test_longer_deadline_is_capped = against_server(_capped_deadline)


def test_client_key_hashes_api_keys_and_drops_ports() -> None:
    a = client_key((("authorization", "Bearer k1"),), "ipv4:10.0.0.1:5555")
    assert a.startswith("key:") and "k1" not in a
    assert a == client_key((("authorization", "bearer k1"),), "ipv4:10.0.0.2:1")
    assert a != client_key((("authorization", "Bearer k2"),), "ipv4:10.0.0.1:5555")
    assert client_key(None, "ipv4:10.0.0.1:5555") == client_key((), "ipv4:10.0.0.1:6666") == "peer:ipv4:10.0.0.1"
    assert client_key((), "ipv6:[::1]:5555") == "peer:ipv6:[::1]"
    assert client_key((("authorization", "Basic xyz"),), "unix:/tmp/s") == "peer:unix:/tmp/s"
    assert client_key((("authorization", "Bearer k1"),), "ipv4:10.0.0.1:5555", by_api_key=False) == \
        "peer:ipv4:10.0.0.1"


@pytest.mark.parametrize(("remaining", "expected"), [(None, 300.0), (5.0, 5.0), (7200.0, 3600.0)])
def test_request_budget(remaining: float | None, expected: float) -> None:
    assert request_budget(remaining, 300.0, 3600.0) == expected
