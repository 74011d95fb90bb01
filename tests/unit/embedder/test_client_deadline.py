"""The embedder client's calls end at the caller's deadline, not only at its own timeout."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from embedder.client import EmbedderClient
from protos import embedder_pb2, embedder_pb2_grpc
from protos.errors import DeadlineExceeded


class SlowEmbedder(embedder_pb2_grpc.EmbedderServicer):
    """Answers nothing for longer than any test waits: only a deadline ends the call."""

    async def EmbedText(self, request, context):  # noqa: ANN001, ANN201, N802
        await asyncio.sleep(30)
        return embedder_pb2.EmbedResponse()


async def _call_with(time_left) -> float:  # noqa: ANN001
    server = grpc.aio.server()
    embedder_pb2_grpc.add_EmbedderServicer_to_server(SlowEmbedder(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = EmbedderClient(f"127.0.0.1:{port}", timeout_s=20.0, max_message_bytes=1 << 20, time_left=time_left)
    start = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded):
            await client.embed_texts("m", ["hello"], "query")
        return time.monotonic() - start
    finally:
        await client.close()
        await server.stop(0)


def test_the_callers_deadline_shortens_the_call() -> None:
    """With 0.3 s left on the request, a call whose own timeout is 20 s ends after about 0.3 s."""
    elapsed = asyncio.run(_call_with(lambda within: min(within, 0.3)))
    assert elapsed < 5.0


def test_a_passed_deadline_refuses_before_calling() -> None:
    """When the caller's deadline has passed, the client raises without waiting on the embedder."""
    def passed(within: float) -> float:
        raise DeadlineExceeded("the request's deadline passed")

    assert asyncio.run(_call_with(passed)) < 5.0
