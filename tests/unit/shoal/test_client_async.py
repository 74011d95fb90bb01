"""Client.explain_async: the same request and answer as explain, retried on UNAVAILABLE, errors mapped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest

import shoal
from protos import coordinator_pb2
from protos.wire import pack_floats, payload_to_proto


class _Search(grpc.GenericRpcHandler):
    """Answers Search (and each search of SearchStream, as the coordinator does) with two packed hits; refuses the
    first `unavailable` calls, and k=0 as invalid."""

    def __init__(self, unavailable: int = 0) -> None:
        self.unavailable = unavailable
        self.requests: list[coordinator_pb2.SearchRequest] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        types = (coordinator_pb2.SearchRequest.FromString, coordinator_pb2.SearchResponse.SerializeToString)
        if details.method == "/shoal.v1.Coordinator/SearchStream":
            return grpc.stream_stream_rpc_method_handler(self._stream, *types)
        if details.method == "/shoal.v1.Coordinator/Search":
            return grpc.unary_unary_rpc_method_handler(self._unary, *types)
        return None

    def _answer(self, req: coordinator_pb2.SearchRequest
                ) -> coordinator_pb2.SearchResponse | tuple[grpc.StatusCode, str]:
        """The reply to one search, or the status it is refused with."""
        self.requests.append(req)
        if self.unavailable:
            self.unavailable -= 1
            return grpc.StatusCode.UNAVAILABLE, "starting"
        if req.k == 0:
            return grpc.StatusCode.INVALID_ARGUMENT, "k must be at least 1"
        resp = coordinator_pb2.SearchResponse(missing_shards=[1])
        resp.columns.offsets.extend([0, 2])
        resp.columns.ids.extend(["a", "b"])
        resp.columns.scores = pack_floats(np.asarray([0.75, 0.5], np.float32))
        resp.columns.distances = pack_floats(np.asarray([0.25, 0.5], np.float32))
        resp.columns.payloads.extend([payload_to_proto({"n": 1}), payload_to_proto({})])
        return resp

    def _unary(self, req: coordinator_pb2.SearchRequest, context: grpc.ServicerContext
               ) -> coordinator_pb2.SearchResponse:
        answer = self._answer(req)
        if isinstance(answer, tuple):
            context.abort(*answer)
        return answer

    def _stream(self, requests: Iterator[coordinator_pb2.SearchRequest], context: grpc.ServicerContext
                ) -> Iterator[coordinator_pb2.SearchResponse]:
        for req in requests:
            answer = self._answer(req)
            if isinstance(answer, tuple):
                code, message = answer
                if code == grpc.StatusCode.UNAVAILABLE:  # the coordinator was not up: the stream fails
                    context.abort(code, message)
                answer = coordinator_pb2.SearchResponse(error_code=code.value[0], error=message)
            yield answer


@pytest.fixture
def server() -> Iterator[tuple[str, _Search]]:
    """An in-process gRPC server standing in for the coordinator's Search."""
    handler = _Search(unavailable=1)
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", handler
    srv.stop(0)


def test_explain_async_matches_explain_and_retries(server: tuple[str, _Search]) -> None:
    address, handler = server
    with shoal.Client(address, api_key="", backoff=0.01) as c:
        async def both() -> tuple:
            got = await c.explain_async("c", vector=[1.0, 0.0], k=2, explain=False, allow_partial=True)
            with pytest.raises(shoal.InvalidArgument, match="k must be at least 1"):
                await c.explain_async("c", vector=[1.0, 0.0], k=0)
            return got

        hits, plan = asyncio.run(both())
        again, _ = asyncio.run(c.explain_async("c", vector=[1.0, 0.0], k=2))   # a second loop gets its own channel
        want, _ = c.explain("c", vector=[1.0, 0.0], k=2, explain=False, allow_partial=True)
    assert [(h.id, h.score, h.distance, h.payload) for h in hits] == [("a", 0.75, 0.25, {"n": 1}), ("b", 0.5, 0.5, {})]
    assert hits == want == again and hits.missing_shards == [1] and plan == {}
    # One refused (UNAVAILABLE, retried), one answered, one invalid (not retried), the second loop's, the blocking one.
    assert len(handler.requests) == 5
    for r in handler.requests:
        assert r.timeout_s == 60.0  # searches travel on streams, each with the client's timeout
    assert handler.requests[1] == handler.requests[4]
