"""Runs one shard node's gRPC server (inside a Ray actor, or standalone with `python -m shard_node.server`)."""

from __future__ import annotations

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
from protos.request_parsing import ParseRequestsInterceptor
from protos.serving import add_health_and_reflection, load_settings, mark_serving, server_options
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
    """A ShardNode (its partitions reopened from disk) served over gRPC until stop()."""

    def __init__(self, node_dir: Path, settings: ShardSettings) -> None:
        self.node_dir = node_dir
        self.metrics = ShardMetrics()
        self.node = ShardNode(node_dir, settings, self.metrics)
        # Partitions of one request are searched side by side on these threads (hnswlib releases the GIL).
        self._search_pool = futures.ThreadPoolExecutor(max_workers=settings.search_workers,
                                                       thread_name_prefix="partition-search")
        servicer = ShardServicer(self.node, self.metrics, self._search_pool)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=settings.grpc_workers),
                                   options=server_options(settings.max_message_bytes),
                                   interceptors=[ParseRequestsInterceptor()])
        shard_pb2_grpc.add_ShardServicer_to_server(servicer, self._server)
        health = add_health_and_reflection(self._server, [SERVICE_NAME])
        port = add_port(self._server, f"{settings.bind_host}:{settings.port}", ServerTLS.of(settings))
        if port == 0:
            raise RuntimeError(f"shard node cannot listen on {settings.bind_host}:{settings.port}")
        self.address = f"{advertised_host(settings)}:{port}"
        self.metrics_port = -1
        if settings.metrics_port >= 0:
            http_server, _ = start_http_server(settings.metrics_port, addr=settings.bind_host,
                                               registry=self.metrics.registry)
            self.metrics_port = http_server.server_port
        self._server.start()
        mark_serving(health, [SERVICE_NAME])

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving and close every partition's WAL."""
        self._server.stop(grace).wait()
        self._search_pool.shutdown(wait=False, cancel_futures=True)
        self.node.close_all()

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()


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
