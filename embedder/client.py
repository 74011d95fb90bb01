"""Async client of the Embedder service, used by the coordinator (errors come back as domain errors)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
import numpy as np

from protos import embedder_pb2, embedder_pb2_grpc
from protos.errors import raise_from
from protos.serving import grpc_options
from protos.tls import ClientTLS, open_aio_channel
from protos.wire import unpack_matrix

KINDS = {"query": embedder_pb2.QUERY, "passage": embedder_pb2.PASSAGE}


@dataclass(frozen=True)
class Embedded:
    """Vectors and the model (name@version, dim) that made them."""

    model: str
    dim: int
    vectors: np.ndarray


class EmbedderClient:
    """One channel to an embedder; every call has a deadline."""

    def __init__(self, address: str, timeout_s: float, max_message_bytes: int, tls: ClientTLS | None = None,
                 time_left: Callable[[float], float] | None = None) -> None:
        self.address = address
        self._timeout_s = timeout_s
        # The caller's own deadline (e.g. the coordinator's request deadline) can only shorten a call.
        self._time_left = time_left or (lambda within: within)
        self._channel = open_aio_channel(address, grpc_options(max_message_bytes), tls)
        self._stub = embedder_pb2_grpc.EmbedderStub(self._channel)

    async def embed_texts(self, model: str, texts: Sequence[str], kind: str) -> Embedded:
        """Embed texts as "query" or "passage"."""
        request = embedder_pb2.EmbedTextRequest(model=model, texts=list(texts), kind=KINDS[kind])
        return await self._call(self._stub.EmbedText, request)

    async def embed_images(self, model: str, images: Sequence[bytes]) -> Embedded:
        """Embed encoded images."""
        return await self._call(self._stub.EmbedImage, embedder_pb2.EmbedImageRequest(model=model, images=list(images)))

    async def list_models(self) -> list[embedder_pb2.ModelInfo]:
        """Every model the embedder knows."""
        try:
            reply = await self._stub.ListModels(embedder_pb2.ListModelsRequest(),
                                               timeout=self._time_left(self._timeout_s))
        except grpc.RpcError as err:
            raise_from(err)
        return list(reply.models)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def _call(self, method, request) -> Embedded:  # noqa: ANN001
        try:
            reply = await method(request, timeout=self._time_left(self._timeout_s))
        except grpc.RpcError as err:
            raise_from(err)
        ref = f"{reply.model.name}@{reply.model.version}"
        return Embedded(ref, reply.model.dim, unpack_matrix(reply.vectors).copy())
