"""Malformed request bytes answer INVALID_ARGUMENT (not gRPC's INTERNAL/UNKNOWN), on sync and asyncio servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from protos import coordinator_pb2, coordinator_pb2_grpc
from protos.request_parsing import AsyncParseRequestsInterceptor, ParseRequestsInterceptor

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
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[ParseRequestsInterceptor()])
    coordinator_pb2_grpc.add_CoordinatorServicer_to_server(SyncCounts(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


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
