"""Settings of the gateway service, from flags and SHOAL_GATEWAY_* environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from protos.serving import load_settings

ENV_PREFIX = "SHOAL_GATEWAY_"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024   # a base64 image batch; the coordinator's own limit is 64 MiB
DEFAULT_TIMEOUT_S = 60.0
API_PREFIX = "/v1"                          # every REST path starts with it (the hot path matches on it too)
MAX_CLIENTS = 64                            # coordinator channels kept, one per API key seen


@dataclass(frozen=True)
class GatewaySettings:
    """Gateway settings: where it listens, how it dials the coordinator, what it serves besides the API."""

    host: str = field(default="127.0.0.1", metadata={"help": "address the HTTP server binds"})
    port: int = field(default=DEFAULT_PORT, metadata={"help": "port of the HTTP server (0 = any free one)"})
    coordinator: str = field(default="127.0.0.1:50051", metadata={"help": "the coordinator's gRPC address"})
    tls_ca: str = field(default="", metadata={"help": "PEM CA of the coordinator's certificate (set = dial TLS)"})
    tls_server_name: str = field(default="", metadata={"help": "name expected in the coordinator's certificate"})
    tls_cert: str = field(default="", metadata={"help": "PEM client certificate presented to the coordinator"})
    tls_key: str = field(default="", metadata={"help": "PEM key of tls_cert"})
    https_cert: str = field(default="", metadata={"help": "PEM certificate: set with https_key = serve HTTPS"})
    https_key: str = field(default="", metadata={"help": "PEM key of https_cert"})
    max_body_bytes: int = field(default=DEFAULT_MAX_BODY_BYTES, metadata={
        "help": "largest request body accepted (413 past it)"})
    timeout_s: float = field(default=DEFAULT_TIMEOUT_S, metadata={"help": "deadline of each coordinator call"})
    media: str = field(default="", metadata={
        "help": "image folders served under /media/NAME/: comma-separated NAME=DIR"})

    def media_dirs(self) -> dict[str, Path]:
        """The media folders by name."""
        dirs: dict[str, Path] = {}
        for item in filter(None, (part.strip() for part in self.media.split(","))):
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise SystemExit(f"media: {item!r} is not NAME=DIR")
            dirs[name] = Path(path).resolve()
        return dirs


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> GatewaySettings:
    """Settings from flags, then SHOAL_GATEWAY_* environment, then defaults."""
    return load_settings(GatewaySettings, argv, env, prog="python -m gateway.server", env_prefix=ENV_PREFIX)
