"""Container probe for any Shoal gRPC server (coordinator, embedder, shard), TLS or not.

Usage: python -m protos.healthcheck ADDRESS [--tls-ca F] [--tls-server-name N] [--tls-cert F --tls-key F]

Exits 0 when the server's standard gRPC health service reports SERVING, 1 otherwise with the reason
on stderr. Unlike Kubernetes' built-in grpc probe it can dial a TLS (and mutual TLS) server.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.tls import ClientTLS, TLSConfigError, open_channel

DEFAULT_TIMEOUT_S = 5.0


def health_status(address: str, tls: ClientTLS | None = None, service: str = "",
                  timeout: float = DEFAULT_TIMEOUT_S) -> int:
    """The health status (health_pb2.HealthCheckResponse.ServingStatus) a server reports; raises grpc.RpcError."""
    with open_channel(address, [], tls) as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout).status


def probe(address: str, tls: ClientTLS | None = None, service: str = "",
          timeout: float = DEFAULT_TIMEOUT_S) -> tuple[bool, str]:
    """(serving?, a one-line explanation) for one health check."""
    try:
        status = health_status(address, tls, service, timeout)
    except TLSConfigError as exc:
        return False, str(exc)
    except grpc.RpcError as err:
        return False, f"{address}: health check failed: {err.code().name}: {err.details()}"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    return status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {name}"


def main(argv: list[str] | None = None) -> int:
    """Entry point; the exit code is the probe's answer."""
    parser = argparse.ArgumentParser(prog="protos.healthcheck", description=__doc__.split("\n\n")[2].strip())
    parser.add_argument("address", help="host:port of a Shoal gRPC server")
    parser.add_argument("--tls-ca", default="", help="PEM CA to trust; set = dial over TLS")
    parser.add_argument("--tls-server-name", default="", help="name to check in the server certificate")
    parser.add_argument("--tls-cert", default="", help="PEM client certificate (for servers that need mutual TLS)")
    parser.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    parser.add_argument("--service", default="", help="service name to ask about (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    tls = ClientTLS(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    if (args.tls_cert or args.tls_key or args.tls_server_name) and not tls.enabled:
        print("--tls-cert, --tls-key and --tls-server-name need --tls-ca", file=sys.stderr)
        return 2
    ok, message = probe(args.address, tls, args.service, args.timeout)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
