"""The SDK's searches over SearchStream against a scripted coordinator on loopback: one stream per thread, a
failed search is its domain error and the stream goes on, a coordinator that stops answering is a deadline, and
a closed stream is retried on a new one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest

import shoal
from protos import coordinator_pb2
from protos.errors import DeadlineExceeded, NotFound, error_fields
from protos.wire import pack_floats

Script = Callable[[coordinator_pb2.SearchRequest], coordinator_pb2.SearchResponse | None]


class _Coordinator(grpc.GenericRpcHandler):
    """Answers SearchStream by `script` (None: hang until released; "close" in the collection: end the stream)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.streams = 0
        self.timeouts: list[float] = []
        self.release = threading.Event()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method != "/shoal.v1.Coordinator/SearchStream":
            return None

        def stream(requests: Iterator[coordinator_pb2.SearchRequest], context: grpc.ServicerContext
                   ) -> Iterator[coordinator_pb2.SearchResponse]:
            self.streams += 1
            for request in requests:
                self.timeouts.append(request.timeout_s)
                if request.collection == "close":
                    return
                resp = self.script(request)
                if resp is None:
                    self.release.wait(30.0)
                    return
                yield resp

        return grpc.stream_stream_rpc_method_handler(stream, coordinator_pb2.SearchRequest.FromString,
                                                     coordinator_pb2.SearchResponse.SerializeToString)


def _hits(ids: list[str]) -> coordinator_pb2.SearchResponse:
    resp = coordinator_pb2.SearchResponse()
    resp.columns.offsets.extend([0, len(ids)])
    resp.columns.ids.extend(ids)
    resp.columns.scores = pack_floats(np.ones(len(ids), np.float32))
    resp.columns.distances = pack_floats(np.zeros(len(ids), np.float32))
    return resp


def _script(request: coordinator_pb2.SearchRequest) -> coordinator_pb2.SearchResponse | None:
    if request.collection == "missing":
        code, message, _ = error_fields(NotFound("collection 'missing' does not exist"))
        return coordinator_pb2.SearchResponse(error_code=code, error=message)
    if request.collection == "hang":
        return None
    return _hits([f"{request.collection}-{request.k}"])


@pytest.fixture
def coordinator() -> Iterator[tuple[str, _Coordinator]]:
    handler = _Coordinator(_script)
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[handler])
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", handler
    handler.release.set()
    srv.stop(0)


def test_each_thread_keeps_one_stream_and_gets_its_own_answers(coordinator: tuple[str, _Coordinator]) -> None:
    address, handler = coordinator
    with shoal.Client(address, timeout=7.0) as client:
        def run(t: int) -> list[str]:
            return [client.search(f"c{t}", [1.0, 0.0], k=i + 1)[0].id for i in range(20)]

        with futures.ThreadPoolExecutor(4) as pool:
            got = list(pool.map(run, range(4)))
    assert got == [[f"c{t}-{i + 1}" for i in range(20)] for t in range(4)]
    assert handler.streams == 4
    assert set(handler.timeouts) == {7.0}  # the client's timeout travels with each search


def test_a_failed_search_is_its_domain_error_and_the_stream_goes_on(coordinator: tuple[str, _Coordinator]) -> None:
    address, handler = coordinator
    with shoal.Client(address) as client:
        with pytest.raises(NotFound, match="'missing' does not exist"):
            client.search("missing", [1.0, 0.0])
        assert client.search("c", [1.0, 0.0], k=3)[0].id == "c-3"
    assert handler.streams == 1


def test_a_coordinator_that_stops_answering_is_a_deadline(coordinator: tuple[str, _Coordinator]) -> None:
    address, handler = coordinator
    with shoal.Client(address, timeout=0.5) as client:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="did not answer a search within 0.5 s"):
            client.search("hang", [1.0, 0.0])
        waited = time.monotonic() - start
        assert 0.5 < waited < 5.0
        assert client.search("c", [1.0, 0.0], k=2)[0].id == "c-2"  # on a new stream
    assert handler.streams == 2


def test_a_closed_stream_is_retried_on_a_new_one(coordinator: tuple[str, _Coordinator]) -> None:
    address, handler = coordinator
    with shoal.Client(address, retries=2, backoff=0.01) as client:
        with pytest.raises(shoal.errors.Unavailable, match="closed the search stream"):
            client.search("close", [1.0, 0.0])  # closed every time: retried, then given up
        assert handler.streams == 3
        assert client.search("c", [1.0, 0.0], k=1)[0].id == "c-1"


def test_asyncio_searches_run_side_by_side_on_pooled_streams(coordinator: tuple[str, _Coordinator]) -> None:
    """Concurrent explain_async calls on one loop each take a stream; answered streams are reused."""
    address, handler = coordinator
    with shoal.Client(address, timeout=0.5) as client:
        async def run() -> list[str]:
            first = await asyncio.gather(*(client.explain_async(f"c{i}", [1.0, 0.0], k=1, explain=False)
                                           for i in range(4)))
            again = await asyncio.gather(*(client.explain_async(f"c{i}", [1.0, 0.0], k=2, explain=False)
                                           for i in range(4)))
            with pytest.raises(NotFound, match="'missing' does not exist"):
                await client.explain_async("missing", [1.0, 0.0])
            with pytest.raises(DeadlineExceeded, match="did not answer a search within 0.5 s"):
                await client.explain_async("hang", [1.0, 0.0])
            return [hits[0].id for hits, _ in (*first, *again)]

        got = asyncio.run(run())
    assert got == [f"c{i}-1" for i in range(4)] + [f"c{i}-2" for i in range(4)]
    assert 4 <= handler.streams <= 5  # four side by side, reused for the second round and the errors
