"""SDK clients of the coordinator, one per API key a caller presents (the key travels on every gRPC call)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from gateway.errors import GatewayError
from gateway.settings import MAX_CLIENTS, GatewaySettings
from shoal.client import Client


def bearer_key(authorization: str) -> str:
    """The API key of an Authorization header ("" for none); 401 for a header that is not 'Bearer <key>'."""
    if not authorization:
        return ""
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise GatewayError(401, "UNAUTHENTICATED", "the Authorization header must be 'Bearer <API key>'")
    return key.strip()


class ClientPool:
    """Keeps a bounded set of open clients by key digest, least recently used closed first."""

    def __init__(self, settings: GatewaySettings, size: int = MAX_CLIENTS) -> None:
        self._settings = settings
        self._size = size
        self._clients: OrderedDict[str, Client] = OrderedDict()
        self._lock = threading.Lock()

    def for_key(self, api_key: str) -> Client:
        """The client that sends `api_key` ("" = none) to the coordinator."""
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        with self._lock:
            client = self._clients.get(digest)
            if client is not None:
                self._clients.move_to_end(digest)
                return client
            s = self._settings
            # Explicit "" values: the gateway's own SHOAL_* environment must not lend a caller a key or TLS file.
            client = Client(s.coordinator, timeout=s.timeout_s, api_key=api_key, tls_ca=s.tls_ca,
                            tls_server_name=s.tls_server_name, tls_cert=s.tls_cert, tls_key=s.tls_key)
            self._clients[digest] = client
            while len(self._clients) > self._size:
                self._clients.popitem(last=False)[1].close()
            return client

    def close(self) -> None:
        """Close every client."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
