"""Wires the embedder: registry, service, gRPC server with health, reflection and metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import grpc
from prometheus_client import start_http_server

from embedder.catalog import build_registry
from embedder.metrics import EmbedderMetrics
from embedder.service import EmbedService
from embedder.servicer import EmbedderServicer
from embedder.settings import EmbedderSettings
from protos import embedder_pb2, embedder_pb2_grpc
from protos.request_parsing import AsyncParseRequestsInterceptor
from protos.serving import (
    add_health_and_reflection,
    load_settings,
    mark_serving_async,
    server_options,
    wait_for_stop_signal,
)
from protos.tls import ServerTLS, TLSConfigError, add_port

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name
log = logging.getLogger("shoal.embedder")


async def serve(settings: EmbedderSettings) -> None:
    """Run the embedder until SIGTERM/SIGINT; the preloaded models are ready before it reports serving."""
    # These machines reach no model hub; libraries must fail fast instead of retrying downloads.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    metrics = EmbedderMetrics()
    registry = build_registry(settings)
    service = EmbedService(registry, settings, metrics)
    server = grpc.aio.server(options=server_options(settings.max_message_bytes),
                             interceptors=[AsyncParseRequestsInterceptor()])
    embedder_pb2_grpc.add_EmbedderServicer_to_server(EmbedderServicer(service, metrics), server)
    health = add_health_and_reflection(server, [SERVICE_NAME])
    try:
        port = add_port(server, f"{settings.host}:{settings.port}", ServerTLS.of(settings))
    except TLSConfigError as exc:
        raise SystemExit(f"embedder: {exc}") from None
    if port == 0:
        raise SystemExit(f"cannot listen on {settings.host}:{settings.port}: is something else using it?")
    if settings.metrics_port >= 0:
        http, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=metrics.registry)
        log.info("metrics on %s:%d", settings.host, http.server_port)
    for ref in [r.strip() for r in (settings.preload or registry.default).split(",") if r.strip()]:
        encoder = await service.load(ref)
        log.info("loaded %s (%d dims)", encoder.spec.ref, encoder.spec.dim)
    await server.start()
    await mark_serving_async(health, [SERVICE_NAME])
    # One machine-readable line so supervisors and tests know where we listen.
    print(f"embedder serving on {settings.host}:{port} (pid {os.getpid()})", flush=True)

    await wait_for_stop_signal()
    await server.stop(grace=2.0)
    service.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point: `python -m embedder.server [--flags]`."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(load_settings(EmbedderSettings, argv, prog="embedder.server")))


if __name__ == "__main__":
    main()
