"""NodeClient's search stream against a scripted NodeSearchStream peer on loopback: answers reach their callers by
number in any order, a failed search comes back as its domain error while the stream goes on, a hung node is a
deadline, and a node that goes away fails the waiting searches as Unavailable until it serves again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from protos import shard_pb2
from protos.errors import DeadlineExceeded, DiskUnavailable, InvalidArgument, Unavailable, error_fields
from shard_node.client import NodeClient

Script = Callable[[shard_pb2.NodeSearchRequest], Awaitable[shard_pb2.NodeSearchResponse | None]]
LIMIT = 4 * 1024 * 1024


class Peer:
    """An asyncio gRPC server whose NodeSearchStream answers each request by `script` (None: never answers)."""

    def __init__(self, script: Script, port: int = 0) -> None:
        self.script = script
        self.port = port
        self.streams = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> str:
        async def handler(requests: AsyncIterator[shard_pb2.NodeSearchRequest], context: grpc.aio.ServicerContext
                          ) -> None:
            self.streams += 1

            async def one(request: shard_pb2.NodeSearchRequest) -> None:
                resp = await self.script(request)
                if resp is not None:
                    resp.call = request.call
                    await context.write(resp)

            tasks = [asyncio.ensure_future(one(r)) async for r in requests]
            await asyncio.gather(*tasks)

        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("shoal.v1.Shard", {
            "NodeSearchStream": grpc.stream_stream_rpc_method_handler(
                handler, request_deserializer=shard_pb2.NodeSearchRequest.FromString,
                response_serializer=shard_pb2.NodeSearchResponse.SerializeToString)}),))
        self.port = self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        assert self._server is not None
        await self._server.stop(0)


@contextlib.asynccontextmanager
async def serving(script: Script) -> AsyncIterator[tuple[Peer, NodeClient]]:
    """A scripted peer on a free port and a NodeClient of it; both closed at the end."""
    peer = Peer(script)
    client = NodeClient(await peer.start(), LIMIT)
    try:
        yield peer, client
    finally:
        await client.close()
        await peer.stop()


def request(k: int) -> bytes:
    """A serialised request whose k tells the script what to do."""
    return shard_pb2.NodeSearchRequest(partitions=["p"], k=k).SerializeToString()


def test_answers_reach_their_callers_in_any_order() -> None:
    """The slower search is asked first; each caller still gets its own answer, over one stream."""
    async def script(r: shard_pb2.NodeSearchRequest) -> shard_pb2.NodeSearchResponse:
        await asyncio.sleep(0.2 if r.k == 1 else 0.0)
        return shard_pb2.NodeSearchResponse(per_row=r.k)

    async def run() -> None:
        async with serving(script) as (peer, client):
            slow = asyncio.ensure_future(client.node_search(request(1), 5.0))
            await asyncio.sleep(0.05)
            fast = await client.node_search(request(2), 5.0)
            assert not slow.done() and fast.per_row == 2
            assert (await slow).per_row == 1
            assert peer.streams == 1

    asyncio.run(run())


def test_a_failed_search_is_its_domain_error_and_the_stream_goes_on() -> None:
    async def script(r: shard_pb2.NodeSearchRequest) -> shard_pb2.NodeSearchResponse:
        if r.k == 1:
            code, message, kind = error_fields(InvalidArgument("k is wrong"))
        elif r.k == 2:
            code, message, kind = error_fields(DiskUnavailable("disk is read-only"))
        else:
            return shard_pb2.NodeSearchResponse(per_row=r.k)
        return shard_pb2.NodeSearchResponse(error_code=code, error=message, error_kind=kind)

    async def run() -> None:
        async with serving(script) as (peer, client):
            with pytest.raises(InvalidArgument, match="k is wrong"):
                await client.node_search(request(1), 5.0)
            with pytest.raises(DiskUnavailable, match="read-only"):
                await client.node_search(request(2), 5.0)
            assert (await client.node_search(request(3), 5.0)).per_row == 3
            assert peer.streams == 1

    asyncio.run(run())


def test_a_hung_node_is_a_deadline_and_the_next_search_opens_a_new_stream() -> None:
    hang = asyncio.Event()

    async def script(r: shard_pb2.NodeSearchRequest) -> shard_pb2.NodeSearchResponse | None:
        if r.k == 1:
            await hang.wait()
            return None
        return shard_pb2.NodeSearchResponse(per_row=r.k)

    async def run() -> None:
        async with serving(script) as (peer, client):
            try:
                with pytest.raises(DeadlineExceeded, match="did not answer a search within 0.3 s"):
                    await client.node_search(request(1), 0.3)
                assert (await client.node_search(request(2), 5.0)).per_row == 2
                assert peer.streams == 2  # the stream that answered nothing was given up
            finally:
                hang.set()

    asyncio.run(run())


def test_a_node_that_goes_away_fails_waiting_searches_and_is_found_again() -> None:
    async def script(r: shard_pb2.NodeSearchRequest) -> shard_pb2.NodeSearchResponse:
        await asyncio.sleep(10.0 if r.k == 1 else 0.0)
        return shard_pb2.NodeSearchResponse(per_row=r.k)

    async def run() -> None:
        peer = Peer(script)
        client = NodeClient(await peer.start(), LIMIT)
        try:
            waiting = asyncio.ensure_future(client.node_search(request(1), 30.0))
            await asyncio.sleep(0.1)
            await peer.stop()
            with pytest.raises(Unavailable):
                await asyncio.wait_for(waiting, 5.0)
            with pytest.raises(Unavailable):
                await client.node_search(request(2), 5.0)
            peer = Peer(script, peer.port)  # the node serves again at the same address
            await peer.start()
            for _ in range(50):  # the channel reconnects with backoff
                try:
                    assert (await client.node_search(request(2), 5.0)).per_row == 2
                    break
                except Unavailable:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the node serving again was never reached")
        finally:
            await client.close()
            await peer.stop()

    asyncio.run(run())
