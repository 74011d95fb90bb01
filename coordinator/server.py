"""Wires the coordinator: Ray connection, engine, gRPC server with health, reflection and metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import grpc

from coordinator import shards
from coordinator.discovery import SD_PATH, ShardTargets
from coordinator.documents import Documents
from coordinator.engine import Engine
from coordinator.fanout import ShardPool
from coordinator.metrics import CoordinatorMetrics
from coordinator.metrics_http import serve_metrics
from coordinator.servicer import CoordinatorServicer
from coordinator.settings import CoordinatorSettings
from embedder.client import EmbedderClient
from protos import coordinator_pb2, coordinator_pb2_grpc
from protos.serving import (
    add_health_and_reflection,
    load_settings,
    mark_serving_async,
    server_options,
    wait_for_stop_signal,
)

SERVICE_NAME = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].full_name
log = logging.getLogger("shoal.coordinator")


async def serve(settings: CoordinatorSettings) -> None:
    """Run the coordinator until SIGTERM/SIGINT."""
    await asyncio.to_thread(shards.connect, settings.ray_address, settings.ray_namespace)
    metrics = CoordinatorMetrics()
    placer = shards.ShardPlacer(settings)
    targets = ShardTargets(settings.metrics_sd_file, metrics.shard_targets.set)
    engine = Engine.wire(settings, placer, ShardPool(placer, settings, metrics, targets), metrics)
    embedder = (EmbedderClient(settings.embedder_address, settings.embedder_timeout_s, settings.max_message_bytes)
                if settings.embedder_address else None)
    server = grpc.aio.server(options=server_options(settings.max_message_bytes))
    servicer = CoordinatorServicer(engine, Documents(engine, embedder), metrics)
    coordinator_pb2_grpc.add_CoordinatorServicer_to_server(servicer, server)
    health = add_health_and_reflection(server, [SERVICE_NAME])
    try:
        port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    except RuntimeError:
        port = 0
    if port == 0:
        raise SystemExit(f"cannot listen on {settings.host}:{settings.port}: is another Shoal (or anything) using it?")
    if settings.metrics_port >= 0:
        http = serve_metrics(settings.host, settings.metrics_port, metrics.registry, {SD_PATH: targets.http_body})
        log.info("metrics on http://%s:%d/metrics, shard discovery on %s", settings.host, http.server_port, SD_PATH)
    await engine.start()
    await server.start()
    await mark_serving_async(health, [SERVICE_NAME])
    # One machine-readable line so supervisors and tests know where we listen.
    print(f"coordinator serving on {settings.host}:{port} (pid {os.getpid()})", flush=True)

    await wait_for_stop_signal()
    await server.stop(grace=2.0)
    await engine.stop()
    shards.disconnect()


def main(argv: list[str] | None = None) -> None:
    """Entry point: `python -m coordinator.server [--flags]`."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(load_settings(CoordinatorSettings, argv, prog="coordinator.server")))


if __name__ == "__main__":
    main()
