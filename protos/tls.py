"""TLS for every Shoal gRPC server and client: PEM files in, gRPC credentials out.

Servers listen in plaintext unless they are given a certificate and key; with a client CA they
also demand a client certificate signed by it (mutual TLS). Clients dial in plaintext unless they
are given a CA to trust. The files are read when a port or channel is opened, so a restarted
process (or a re-dialled shard) picks up rotated certificates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

# gRPC checks the server certificate against this name instead of the dialled host when it is set.
_TARGET_NAME_OVERRIDE = "grpc.ssl_target_name_override"


class TLSConfigError(ValueError):
    """A TLS setting is incomplete or names a file that cannot be read."""


def read_pem(path: str, what: str) -> bytes:
    """The bytes of a PEM file, or a TLSConfigError that names the setting and the path."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"{what}: cannot read {path!r}: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise TLSConfigError(f"{what}: {path!r} is not a PEM file")
    return data


@dataclass(frozen=True)
class ServerTLSSettings:
    """The TLS fields every server's settings share (env SHOAL_TLS_CERT, SHOAL_TLS_KEY, SHOAL_TLS_CLIENT_CA)."""

    tls_cert: str = field(default="", metadata={"help": "PEM certificate of the gRPC server (empty: plaintext)"})
    tls_key: str = field(default="", metadata={"help": "PEM private key of the gRPC server"})
    tls_client_ca: str = field(default="", metadata={
        "help": "PEM CA; set = clients must present a certificate it signed (mutual TLS)"})


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate and key; with client_ca, clients must present a certificate it signed."""

    cert: str = ""
    key: str = ""
    client_ca: str = ""

    @classmethod
    def of(cls, settings: ServerTLSSettings) -> ServerTLS:
        """From a server's settings."""
        return cls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)

    @property
    def enabled(self) -> bool:
        """True when the server should speak TLS."""
        return bool(self.cert or self.key)

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials (raises TLSConfigError when a file is missing or only one half is set)."""
        if not (self.cert and self.key):
            raise TLSConfigError("TLS needs both tls_cert and tls_key (PEM paths); one of them is empty")
        pair = (read_pem(self.key, "tls_key"), read_pem(self.cert, "tls_cert"))
        client_ca = read_pem(self.client_ca, "tls_client_ca") if self.client_ca else None
        return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                           require_client_auth=client_ca is not None)


def add_port(server: grpc.Server | grpc.aio.Server, address: str, tls: ServerTLS) -> int:
    """Listen on address with TLS when configured, else in plaintext; the bound port (0 if it failed)."""
    if tls.client_ca and not tls.enabled:
        raise TLSConfigError("tls_client_ca (mutual TLS) needs tls_cert and tls_key as well")
    try:
        if tls.enabled:
            return server.add_secure_port(address, tls.credentials())
        return server.add_insecure_port(address)
    except RuntimeError:
        return 0


@dataclass(frozen=True)
class ClientTLS:
    """What a client needs to dial a TLS server: the CA to trust, optionally its own certificate and key,
    and the name to check in the server's certificate (default: the dialled host)."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""

    @property
    def enabled(self) -> bool:
        """True when the client should speak TLS."""
        return bool(self.ca)

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials (raises TLSConfigError on an unreadable file or half a key pair)."""
        if bool(self.cert) != bool(self.key):
            raise TLSConfigError("a client certificate needs both its cert and key (PEM paths)")
        key = read_pem(self.key, "client key") if self.key else None
        chain = read_pem(self.cert, "client certificate") if self.cert else None
        return grpc.ssl_channel_credentials(root_certificates=read_pem(self.ca, "CA certificate"),
                                            private_key=key, certificate_chain=chain)

    def options(self) -> list[tuple[str, Any]]:
        """Channel options this TLS configuration adds (the server-name override)."""
        return [(_TARGET_NAME_OVERRIDE, self.server_name)] if self.enabled and self.server_name else []


def open_channel(address: str, options: list[tuple[str, Any]], tls: ClientTLS | None = None) -> grpc.Channel:
    """A blocking-API channel to address: TLS when tls is enabled, plaintext otherwise."""
    if tls is not None and tls.enabled:
        return grpc.secure_channel(address, tls.credentials(), options=[*options, *tls.options()])
    return grpc.insecure_channel(address, options=options)


def open_aio_channel(address: str, options: list[tuple[str, Any]], tls: ClientTLS | None = None) -> grpc.aio.Channel:
    """An asyncio channel to address: TLS when tls is enabled, plaintext otherwise."""
    if tls is not None and tls.enabled:
        return grpc.aio.secure_channel(address, tls.credentials(), options=[*options, *tls.options()])
    return grpc.aio.insecure_channel(address, options=options)
