"""Runs one shard node's asyncio gRPC server (inside a Ray actor, or standalone with `python -m shard_node.server`)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import threading
from concurrent import futures
from pathlib import Path

import grpc
from prometheus_client import start_http_server

from protos import shard_pb2, shard_pb2_grpc
from protos.request_parsing import AsyncParseRequestsInterceptor
from protos.serving import (
    add_health_and_reflection,
    load_settings,
    mark_serving_async,
    new_event_loop,
    server_options,
)
from protos.tls import ServerTLS, add_port
from shard_node.metrics import ShardMetrics
from shard_node.node import ShardNode
from shard_node.servicer import ShardServicer
from shard_node.settings import ShardSettings

SERVICE_NAME = shard_pb2.DESCRIPTOR.services_by_name["Shard"].full_name


def advertised_host(settings: ShardSettings) -> str:
    """The host name other processes should dial (never a wildcard address)."""
    if settings.advertise_host:
        return settings.advertise_host
    if settings.bind_host in ("0.0.0.0", "::", ""):
        return own_address()
    return settings.bind_host


def own_address() -> str:
    """This host's IPv4 address as its name resolves, a non-loopback one first.

    In a Kubernetes pod the hostname resolves to the pod IP (the kubelet writes it into /etc/hosts), which
    is what a coordinator on another node must dial; a workstation whose name maps to 127.0.x.x keeps
    loopback, which is right for a one-machine cluster."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        infos = []
    found = [str(info[4][0]) for info in infos]
    routable = [a for a in found if not ipaddress.ip_address(a).is_loopback]
    return (routable or found or ["127.0.0.1"])[0]


class NodeServer:
    """A ShardNode (its partitions reopened from disk) served by an asyncio gRPC server until stop().

    The server runs on its own event-loop thread, so a Ray actor's constructor (or main) returns once it serves.
    NodeSearchStream is a coroutine that answers small searches on the loop itself (hnswlib and numpy release the
    GIL; a thread hand-off costs more than the search at small ef) and big ones on threads; writes, admin calls
    and the file streams are sync handlers that the server runs on its thread pool."""

    def __init__(self, node_dir: Path, settings: ShardSettings) -> None:
        self.node_dir = node_dir
        self.metrics = ShardMetrics()
        self.node = ShardNode(node_dir, settings, self.metrics)
        # Partitions of one request are searched side by side on these threads (hnswlib releases the GIL).
        self._search_pool = futures.ThreadPoolExecutor(max_workers=settings.search_workers,
                                                       thread_name_prefix="partition-search")
        self._handler_pool = futures.ThreadPoolExecutor(max_workers=settings.grpc_workers,
                                                        thread_name_prefix="node-grpc")
        self._loop = new_event_loop(settings.event_loop)
        self._stopped: asyncio.Event | None = None
        self._grace = 1.0
        ready: futures.Future[str] = futures.Future()
        self._thread = threading.Thread(target=self._run, args=(settings, ready), name="node-grpc-loop",
                                        daemon=True)
        self._thread.start()
        self.address = ready.result()  # re-raises what went wrong while the server started
        self.metrics_port = -1
        if settings.metrics_port >= 0:
            http_server, _ = start_http_server(settings.metrics_port, addr=settings.bind_host,
                                               registry=self.metrics.registry)
            self.metrics_port = http_server.server_port

    def _run(self, settings: ShardSettings, ready: futures.Future[str]) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve(settings, ready))

    async def _serve(self, settings: ShardSettings, ready: futures.Future[str]) -> None:
        try:
            self._stopped = asyncio.Event()
            server = grpc.aio.server(self._handler_pool, options=server_options(settings.max_message_bytes),
                                     interceptors=[AsyncParseRequestsInterceptor()])
            servicer = ShardServicer(self.node, self.metrics, self._search_pool, self._handler_pool)
            shard_pb2_grpc.add_ShardServicer_to_server(servicer, server)
            health = add_health_and_reflection(server, [SERVICE_NAME])
            port = add_port(server, f"{settings.bind_host}:{settings.port}", ServerTLS.of(settings))
            if port == 0:
                raise RuntimeError(f"shard node cannot listen on {settings.bind_host}:{settings.port}")
            await server.start()
            await mark_serving_async(health, [SERVICE_NAME])
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(f"{advertised_host(settings)}:{port}")
        await self._stopped.wait()
        await server.stop(self._grace)

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving and close every partition's WAL."""
        if self._thread.is_alive() and self._stopped is not None:
            self._grace = grace
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(grace + 10.0)
        self._search_pool.shutdown(wait=False, cancel_futures=True)
        self._handler_pool.shutdown(wait=False, cancel_futures=True)
        self.node.close_all()


def main(argv: list[str] | None = None) -> None:
    """Serve one shard node (the partitions its directory's manifest lists) until SIGTERM/SIGINT."""
    import argparse

    parser = argparse.ArgumentParser(prog="shard_node.server", add_help=False)
    parser.add_argument("--data-dir", required=True)
    known, rest = parser.parse_known_args(argv)
    settings = load_settings(ShardSettings, rest, prog="shard_node.server")
    server = NodeServer(Path(known.data_dir), settings)
    print(f"shard node serving on {server.address} (pid {os.getpid()})", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
