"""API keys on the coordinator's public server: who may call what.

Keys come from a file of `<role> <key>` lines and/or env SHOAL_API_KEYS (`role:key,role:key`). Only
their SHA-256 digests are kept; a presented key is hashed and compared against every digest in
constant time. Health and reflection stay open so probes and tooling work without a key.
No key configured means auth is off (the `make run` default).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from protos import coordinator_pb2

AUTH_HEADER = "authorization"
BEARER = "bearer "
COORDINATOR_SERVICE = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"]
# Probes and API discovery: reachable without a key.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                 "grpc.reflection.v1.ServerReflection")


class Role(enum.IntEnum):
    """What a key may do; a higher role includes the lower ones."""

    READ_ONLY = 1
    READ_WRITE = 2

    @property
    def label(self) -> str:
        """The role as written in key files."""
        return self.name.lower().replace("_", "-")


ROLES_BY_LABEL = {r.label: r for r in Role}

# Every Coordinator RPC, by the role it needs. tests/unit/coordinator/test_auth.py fails when an RPC
# in protos/coordinator.proto is missing here, so a new RPC cannot ship unclassified.
READ_RPCS = frozenset({"ListCollections", "DescribeCollection", "Get", "Count", "Search", "SearchStream"})
# Snapshot writes files on the coordinator's machine and Restore creates a collection: both are writes.
WRITE_RPCS = frozenset({"CreateCollection", "DropCollection", "UpdateCollection", "Upsert", "Delete", "Compact",
                        "Snapshot", "Restore"})


def required_roles() -> dict[str, Role]:
    """Full gRPC method path -> the role it needs, derived from the Coordinator service definition."""
    names = [m.name for m in COORDINATOR_SERVICE.methods]
    unclassified = sorted(set(names) - READ_RPCS - WRITE_RPCS)
    if unclassified:
        raise ValueError(f"Coordinator RPCs without a role in coordinator/auth.py: {', '.join(unclassified)}")
    prefix = f"/{COORDINATOR_SERVICE.full_name}/"
    return {prefix + n: Role.READ_ONLY if n in READ_RPCS else Role.READ_WRITE for n in names}


class KeyFileError(ValueError):
    """A key file or SHOAL_API_KEYS entry is malformed (the message never contains a key)."""


def _role(label: str, where: str) -> Role:
    role = ROLES_BY_LABEL.get(label.strip().lower())
    if role is None:
        raise KeyFileError(f"{where}: unknown role {label.strip()!r}; use one of {', '.join(ROLES_BY_LABEL)}")
    return role


def parse_key_file(text: str, source: str = "api_keys_file") -> list[tuple[Role, str]]:
    """Lines `<role> <key>`; blank lines and `#` comments are skipped."""
    keys = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise KeyFileError(f"{source} line {number}: expected '<role> <key>' (two words)")
        keys.append((_role(parts[0], f"{source} line {number}"), parts[1]))
    return keys


def parse_key_env(text: str) -> list[tuple[Role, str]]:
    """`role:key,role:key` as in env SHOAL_API_KEYS."""
    keys = []
    for number, item in enumerate((i.strip() for i in text.split(",")), 1):
        if not item:
            continue
        label, sep, key = item.partition(":")
        if not sep or not key.strip():
            raise KeyFileError(f"SHOAL_API_KEYS entry {number}: expected 'role:key'")
        keys.append((_role(label, f"SHOAL_API_KEYS entry {number}"), key.strip()))
    return keys


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_fingerprint(key: str) -> str:
    """A short, non-secret name for a key (e.g. to count a client's calls); never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class KeyRing:
    """The configured keys, as digests with their roles."""

    def __init__(self, keys: Iterable[tuple[Role, str]]) -> None:
        self._entries = [(_digest(key), role) for role, key in keys]

    @classmethod
    def load(cls, keys_file: str, env_value: str) -> KeyRing:
        """Keys from the file (if given) and from the SHOAL_API_KEYS value (if non-empty)."""
        keys: list[tuple[Role, str]] = []
        if keys_file:
            try:
                text = Path(keys_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise KeyFileError(f"api_keys_file: cannot read {keys_file!r}: {exc.strerror or exc}") from None
            keys += parse_key_file(text)
        keys += parse_key_env(env_value)
        return cls(keys)

    def __len__(self) -> int:
        return len(self._entries)

    def role_of(self, key: str) -> Role | None:
        """The role of a presented key, or None; every digest is compared, so timing says nothing."""
        presented = _digest(key)
        found: Role | None = None
        for digest, role in self._entries:
            if hmac.compare_digest(presented, digest) and (found is None or role > found):
                found = role
        return found


@dataclass(frozen=True)
class Denial:
    """Why a call was refused."""

    code: grpc.StatusCode
    message: str


def bearer_key(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The key of an `authorization: Bearer <key>` header; "" when the header is malformed, None when absent."""
    for name, value in metadata or ():
        if name.lower() == AUTH_HEADER:
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            if text[:len(BEARER)].lower() != BEARER:
                return ""
            return text[len(BEARER):].strip()
    return None


class Authorizer:
    """Decides one call: allowed (None) or a Denial with a message that never repeats the key."""

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys
        self._roles = required_roles()

    def check(self, method: str, metadata: Iterable[tuple[str, Any]] | None) -> Denial | None:
        """Check the caller's key against the role `method` needs."""
        if method.lstrip("/").split("/", 1)[0] in OPEN_SERVICES:
            return None
        key = bearer_key(metadata)
        if key is None:
            return Denial(grpc.StatusCode.UNAUTHENTICATED,
                          "missing API key: send metadata 'authorization: Bearer <key>' "
                          "(SDK: Client(api_key=...), CLI: --api-key or SHOAL_API_KEY)")
        if not key:
            return Denial(grpc.StatusCode.UNAUTHENTICATED,
                          "malformed authorization metadata: expected 'Bearer <key>'")
        role = self._keys.role_of(key)
        if role is None:
            return Denial(grpc.StatusCode.UNAUTHENTICATED, "unknown API key: check the key or ask the operator")
        # Methods outside the table (none today) need the strongest role rather than none.
        needed = self._roles.get(method, Role.READ_WRITE)
        if role < needed:
            return Denial(grpc.StatusCode.PERMISSION_DENIED,
                          f"this API key is {role.label}; {method.rsplit('/', 1)[-1]} needs a {needed.label} key")
        return None


def method_label(method: str) -> str:
    """The RPC name for metrics: a Coordinator method's short name, else "unknown" (bounded label values)."""
    prefix, _, name = method.rpartition("/")
    return name if prefix == f"/{COORDINATOR_SERVICE.full_name}" and name in READ_RPCS | WRITE_RPCS else "unknown"


def _deny_handler(handler: grpc.RpcMethodHandler, denial: Denial) -> grpc.RpcMethodHandler:
    """A handler of the same shape as the real one that only aborts with the denial."""

    async def abort(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(denial.code, denial.message)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(denial.code, denial.message)
        yield  # pragma: no cover - makes this an async generator, as streaming handlers are

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(abort_stream, handler.request_deserializer,
                                                    handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort, handler.request_deserializer,
                                                    handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(abort_stream, handler.request_deserializer,
                                                 handler.response_serializer)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a fitting API key before they reach the servicer.

    `on_denied(method_label, code_name)` lets the caller count refusals (e.g. in its requests metric)."""

    def __init__(self, authorizer: Authorizer, on_denied: Callable[[str, str], None] | None = None) -> None:
        self._authorizer = authorizer
        self._on_denied = on_denied

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Pass the call on, or answer it with UNAUTHENTICATED / PERMISSION_DENIED."""
        denial = self._authorizer.check(handler_call_details.method, handler_call_details.invocation_metadata)
        handler = await continuation(handler_call_details)
        if denial is None or handler is None:
            return handler
        if self._on_denied is not None:
            self._on_denied(method_label(handler_call_details.method), denial.code.name)
        return _deny_handler(handler, denial)
