"""`python -m gateway.server`: serve the REST API and the console over HTTP until SIGTERM/Ctrl-C."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings, load


def _bind(settings: GatewaySettings) -> socket.socket:
    # IPPROTO_TCP spelled out: asyncio turns on TCP_NODELAY only for sockets whose proto says TCP, and without it
    # a response's header and body writes meet the client's delayed ACK (40 ms per request).
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gateway."""
    settings = load(argv)
    # Bound before uvicorn starts, so port 0 is resolved and the ready line names the real port.
    sock = _bind(settings)
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.https_cert else "http"
    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False,
                            ssl_certfile=settings.https_cert or None, ssl_keyfile=settings.https_key or None,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    print(f"gateway serving on {scheme}://{host}:{port} (pid {os.getpid()}) for coordinator {settings.coordinator}",
          file=sys.stderr, flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
