"""The Embedder gRPC service: proto in, EmbedService calls, proto out."""

from __future__ import annotations

import asyncio

import grpc

from embedder.metrics import EmbedderMetrics
from embedder.models.base import ModelSpec
from embedder.registry import ModelStatus
from embedder.service import EmbedService
from protos import embedder_pb2, embedder_pb2_grpc
from protos.errors import rpc_edge
from protos.serving import observe
from protos.wire import pack_matrix

KIND_NAMES = {embedder_pb2.TEXT_KIND_UNSPECIFIED: "query", embedder_pb2.QUERY: "query",
              embedder_pb2.PASSAGE: "passage"}


def spec_to_proto(spec: ModelSpec, default: str) -> embedder_pb2.ModelInfo:
    """A loaded model's identity as ModelInfo."""
    return embedder_pb2.ModelInfo(name=spec.name, version=spec.version, dim=spec.dim, modality=spec.modality,
                                  digest=spec.extra.get("digest", ""), description=spec.description,
                                  available=True, is_default=spec.ref == default)


def status_to_proto(status: ModelStatus, default: str) -> embedder_pb2.ModelInfo:
    """A registry entry's status as ModelInfo."""
    e = status.entry
    return embedder_pb2.ModelInfo(name=e.name, version=e.version, dim=e.dim, modality=e.modality,
                                  digest=status.digest, description=e.description, available=status.available,
                                  unavailable_reason=status.reason, is_default=e.ref == default)


class EmbedderServicer(embedder_pb2_grpc.EmbedderServicer):
    """Serves an EmbedService over gRPC (asyncio)."""

    def __init__(self, service: EmbedService, metrics: EmbedderMetrics) -> None:
        self._service = service
        self._metrics = metrics

    def _observe(self, method: str) -> observe:
        return observe(self._metrics.requests, self._metrics.latency, (), method)

    @rpc_edge
    async def EmbedText(self, request: embedder_pb2.EmbedTextRequest,
                        context: grpc.aio.ServicerContext) -> embedder_pb2.EmbedResponse:
        with self._observe("EmbedText"):
            kind = KIND_NAMES.get(request.kind, "")
            spec, vectors = await self._service.embed_texts(request.model, list(request.texts), kind)
            return embedder_pb2.EmbedResponse(model=spec_to_proto(spec, self._service.default_ref),
                                              vectors=pack_matrix(vectors))

    @rpc_edge
    async def EmbedImage(self, request: embedder_pb2.EmbedImageRequest,
                         context: grpc.aio.ServicerContext) -> embedder_pb2.EmbedResponse:
        with self._observe("EmbedImage"):
            spec, vectors = await self._service.embed_images(request.model, list(request.images))
            return embedder_pb2.EmbedResponse(model=spec_to_proto(spec, self._service.default_ref),
                                              vectors=pack_matrix(vectors))

    @rpc_edge
    async def ListModels(self, request: embedder_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> embedder_pb2.ListModelsResponse:
        with self._observe("ListModels"):
            statuses = await asyncio.to_thread(self._service.models)
            return embedder_pb2.ListModelsResponse(
                models=[status_to_proto(s, self._service.default_ref) for s in statuses])
