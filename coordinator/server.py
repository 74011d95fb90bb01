"""Wires the coordinator: Ray connection, engine, gRPC server with health, reflection and metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import grpc

from coordinator import shards
from coordinator.admission import Admission, AdmissionInterceptor
from coordinator.auth import ApiKeyInterceptor, Authorizer, KeyFileError, KeyRing
from coordinator.deadline import time_left
from coordinator.discovery import SD_PATH, ShardTargets
from coordinator.documents import Documents
from coordinator.engine import Engine
from coordinator.fanout import ShardPool
from coordinator.metrics import CoordinatorMetrics
from coordinator.metrics_http import serve_metrics
from coordinator.ray_watch import watch_ray
from coordinator.rebalance import rebalance_loop
from coordinator.servicer import CoordinatorServicer
from coordinator.settings import QUERY_DEPTH_CEILING, CoordinatorSettings
from embedder.client import EmbedderClient
from protos import coordinator_pb2, coordinator_pb2_grpc
from protos.request_parsing import AsyncParseRequestsInterceptor
from protos.serving import (
    add_health_and_reflection,
    load_settings,
    mark_serving_async,
    new_event_loop,
    pin_blas_threads,
    server_options,
    wait_for_stop_signal,
)
from protos.tls import ServerTLS, TLSConfigError, add_port

SERVICE_NAME = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].full_name
log = logging.getLogger("shoal.coordinator")


def _interceptors(keys: KeyRing, admission: Admission, metrics: CoordinatorMetrics
                  ) -> list[grpc.aio.ServerInterceptor]:
    """API keys (when configured), then admission, then our own parsing of the request bytes.

    Keys go first so only a checked key gets an allowance of its own. Refusals count in the requests metric
    like any status."""
    chain: list[grpc.aio.ServerInterceptor] = []
    if len(keys):
        log.info("API keys on: %d key(s) configured", len(keys))
        chain.append(ApiKeyInterceptor(Authorizer(keys), metrics.count_refusal))
    else:
        log.info("no API keys configured: every caller may read and write (set api_keys_file or SHOAL_API_KEYS)")
    chain.append(AdmissionInterceptor(admission, [SERVICE_NAME]))
    chain.append(AsyncParseRequestsInterceptor())
    return chain


async def serve(settings: CoordinatorSettings, keys: KeyRing | None = None) -> None:
    """Run the coordinator until SIGTERM/SIGINT; keys default to api_keys_file plus env SHOAL_API_KEYS."""
    try:
        keys = keys if keys is not None else KeyRing.load(settings.api_keys_file, os.environ.get("SHOAL_API_KEYS", ""))
        public_tls = ServerTLS.of(settings)
        if settings.internal_tls().enabled:
            settings.internal_tls().credentials()  # unreadable files fail here, not on the first shard call
    except (KeyFileError, TLSConfigError) as exc:
        raise SystemExit(f"coordinator: {exc}") from None
    await asyncio.to_thread(shards.connect, settings.ray_address, settings.ray_namespace)
    metrics = CoordinatorMetrics()
    placer = shards.ShardPlacer(settings)
    targets = ShardTargets(settings.metrics_sd_file, metrics.shard_targets.set)
    engine = Engine.wire(settings, placer, ShardPool(placer, settings, metrics, targets), metrics)
    embedder = (EmbedderClient(settings.embedder_address, settings.embedder_timeout_s, settings.max_message_bytes,
                               settings.internal_tls(), time_left=time_left)
                if settings.embedder_address else None)
    if settings.default_deadline_s <= 0 or settings.max_deadline_s <= 0:
        raise SystemExit("default_deadline_s and max_deadline_s must be positive")
    if not 1 <= settings.max_query_depth <= QUERY_DEPTH_CEILING:
        raise SystemExit(f"max_query_depth must be between 1 and {QUERY_DEPTH_CEILING} (protobuf refuses deeper "
                         "messages)")
    # Without keys, a made-up key would let one host dodge its limit: admission then counts per peer host.
    admission = Admission(settings, by_api_key=bool(len(keys)), on_refused=metrics.count_refusal)
    server = grpc.aio.server(options=server_options(settings.max_message_bytes),
                             interceptors=_interceptors(keys, admission, metrics))
    servicer = CoordinatorServicer(engine, Documents(engine, embedder), metrics, admission)
    coordinator_pb2_grpc.add_CoordinatorServicer_to_server(servicer, server)
    health = add_health_and_reflection(server, [SERVICE_NAME])
    try:
        port = add_port(server, f"{settings.host}:{settings.port}", public_tls)
    except TLSConfigError as exc:
        raise SystemExit(f"coordinator: {exc}") from None
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
    log.info("public gRPC: %s; shards and embedder dialled %s", "TLS" if public_tls.enabled else "plaintext",
             "over TLS" if settings.internal_tls().enabled else "in plaintext")

    loop = asyncio.get_running_loop()
    background = [loop.create_task(watch_ray(settings)), loop.create_task(rebalance_loop(placer, settings))]
    await wait_for_stop_signal()
    for task in background:
        task.cancel()
    await server.stop(grace=2.0)
    await engine.stop()
    shards.disconnect()


def main(argv: list[str] | None = None) -> None:
    """Entry point: `python -m coordinator.server [--flags]`."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(CoordinatorSettings, argv, prog="coordinator.server")
    pin_blas_threads(settings.blas_threads)
    with asyncio.Runner(loop_factory=lambda: new_event_loop(settings.event_loop)) as runner:
        runner.run(serve(settings))


if __name__ == "__main__":
    main()
