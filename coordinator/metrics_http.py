"""The coordinator's plaintext metrics HTTP server: `/metrics` for Prometheus, plus JSON routes (`/sd/shards`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

Route = Callable[[], bytes]  # returns a JSON body


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Scrapes every few seconds would flood the log."""


def metrics_app(registry: CollectorRegistry, routes: dict[str, Route]) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: the JSON routes by exact path, everything else the Prometheus exposition of `registry`."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            return metrics(environ, start_response)
        body = route()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def serve_metrics(host: str, port: int, registry: CollectorRegistry, routes: dict[str, Route]) -> WSGIServer:
    """Serve metrics_app on host:port (0 = any free port) from a daemon thread; returns the server."""
    httpd = make_server(host, port, metrics_app(registry, routes), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
    return httpd
