"""Malformed request bytes answer INVALID_ARGUMENT (not gRPC's UNKNOWN), to sync and coroutine handlers alike."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from protos import coordinator_pb2, coordinator_pb2_grpc
from protos.request_parsing import AsyncParseRequestsInterceptor

COUNT = "/shoal.v1.Coordinator/Count"
MALFORMED = [b"\xff\xff\xff", b"\x0a\x05ab", b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80"]


class SyncCounts(coordinator_pb2_grpc.CoordinatorServicer):
    def Count(self, request: coordinator_pb2.CountRequest, context: grpc.ServicerContext
              ) -> coordinator_pb2.CountResponse:
        return coordinator_pb2.CountResponse(count=len(request.collection))


class AsyncCounts(coordinator_pb2_grpc.CoordinatorServicer):
    async def Count(self, request: coordinator_pb2.CountRequest, context: grpc.aio.ServicerContext
                    ) -> coordinator_pb2.CountResponse:
        return coordinator_pb2.CountResponse(count=len(request.collection))


def raw_count(port: int, payload: bytes) -> tuple[grpc.StatusCode, str, bytes]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        fn = channel.unary_unary(COUNT, request_serializer=None, response_deserializer=None)
        try:
            return grpc.StatusCode.OK, "", fn(payload, timeout=10)
        except grpc.RpcError as err:
            return err.code(), err.details(), b""


@pytest.fixture
def sync_port() -> Iterator[int]:
    """An asyncio server whose Count is a sync handler (run on the server's thread pool), on its own loop thread."""
    loop = asyncio.new_event_loop()
    ready: futures.Future[int] = futures.Future()
    stop = asyncio.Event()

    async def serve() -> None:
        server = grpc.aio.server(futures.ThreadPoolExecutor(2), interceptors=[AsyncParseRequestsInterceptor()])
        coordinator_pb2_grpc.add_CoordinatorServicer_to_server(SyncCounts(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ready.set_result(port)
        await stop.wait()
        await server.stop(0)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    yield ready.result(timeout=10)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


@pytest.mark.parametrize("payload", MALFORMED)
def test_sync_server_refuses_malformed_bytes(sync_port: int, payload: bytes) -> None:
    code, details, _ = raw_count(sync_port, payload)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request to /shoal.v1.Coordinator/Count" in details


def test_sync_server_still_parses_good_requests(sync_port: int) -> None:
    code, _, reply = raw_count(sync_port, coordinator_pb2.CountRequest(collection="abc").SerializeToString())
    assert code == grpc.StatusCode.OK
    assert coordinator_pb2.CountResponse.FromString(reply).count == 3


def test_async_server_refuses_malformed_and_serves_good() -> None:
    async def main() -> list[tuple[grpc.StatusCode, str, bytes]]:
        server = grpc.aio.server(interceptors=[AsyncParseRequestsInterceptor()])
        coordinator_pb2_grpc.add_CoordinatorServicer_to_server(AsyncCounts(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            payloads = [*MALFORMED, coordinator_pb2.CountRequest(collection="abcd").SerializeToString()]
            return [await asyncio.to_thread(raw_count, port, p) for p in payloads]
        finally:
            await server.stop(0)

    *bad, good = asyncio.run(main())
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT and "malformed request" in details for code, details, _ in bad)
    assert good[0] == grpc.StatusCode.OK and coordinator_pb2.CountResponse.FromString(good[2]).count == 4


def refusing_stream(request: coordinator_pb2.CountRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
    """A sync server-streaming handler that is not a generator and aborts before it returns any iterator."""
    context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"no stream for {request.collection}")
    return iter(())


def test_sync_stream_handler_runs_off_the_loop() -> None:
    """A sync streaming handler's abort must not wait on the very loop it runs on (that froze the server)."""
    async def main() -> tuple[grpc.StatusCode, str]:
        server = grpc.aio.server(futures.ThreadPoolExecutor(2), interceptors=[AsyncParseRequestsInterceptor()])
        handler = grpc.unary_stream_rpc_method_handler(
            refusing_stream, request_deserializer=coordinator_pb2.CountRequest.FromString)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.S", {"Stream": handler})])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            def call() -> tuple[grpc.StatusCode, str]:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    fn = channel.unary_stream("/t.S/Stream", request_serializer=None, response_deserializer=None)
                    try:
                        list(fn(coordinator_pb2.CountRequest(collection="c1").SerializeToString(), timeout=5))
                    except grpc.RpcError as err:
                        return err.code(), err.details()
                    return grpc.StatusCode.OK, ""
            return await asyncio.to_thread(call)
        finally:
            await server.stop(0)

    code, details = asyncio.run(main())
    assert code == grpc.StatusCode.FAILED_PRECONDITION and details == "no stream for c1"
