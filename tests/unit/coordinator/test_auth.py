"""coordinator/auth.py: the RPC role table, key parsing, and the interceptor on a real in-process grpc.aio server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coordinator import auth
from coordinator.auth import ApiKeyInterceptor, Authorizer, KeyFileError, KeyRing, Role
from protos import coordinator_pb2, coordinator_pb2_grpc
from protos.serving import add_health_and_reflection, mark_serving_async

READ_KEY = "ro-3f9a1c0d5e7b2468ace0"
WRITE_KEY = "rw-8b7c6d5e4f3a2b1c0d9e"
PREFIX = "/shoal.v1.Coordinator/"


def test_every_coordinator_rpc_has_a_role() -> None:
    """A new RPC in coordinator.proto that is not classified fails here (and at server start)."""
    methods = {m.name for m in auth.COORDINATOR_SERVICE.methods}
    assert methods == auth.READ_RPCS | auth.WRITE_RPCS, "classify new RPCs in coordinator/auth.py; drop stale ones"
    assert not auth.READ_RPCS & auth.WRITE_RPCS
    roles = auth.required_roles()
    assert roles[PREFIX + "Search"] == Role.READ_ONLY
    assert roles[PREFIX + "Upsert"] == Role.READ_WRITE


def test_an_unclassified_rpc_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """required_roles names the RPCs missing from the table."""
    monkeypatch.setattr(auth, "WRITE_RPCS", auth.WRITE_RPCS - {"Compact"})
    with pytest.raises(ValueError, match="Compact"):
        auth.required_roles()


def test_key_file_and_env_parsing(tmp_path: Path) -> None:
    """Roles, comments and blank lines; errors name the line but never the key."""
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# team keys\n\nread-only {READ_KEY}  # dashboards\nREAD-WRITE {WRITE_KEY}\n")
    ring = KeyRing.load(str(keys_file), "read-only:env-key-1, read-write:env-key-2,")
    assert len(ring) == 4
    assert ring.role_of(READ_KEY) == Role.READ_ONLY
    assert ring.role_of(WRITE_KEY) == Role.READ_WRITE
    assert ring.role_of("env-key-1") == Role.READ_ONLY and ring.role_of("env-key-2") == Role.READ_WRITE
    assert ring.role_of("nope") is None and ring.role_of("") is None
    assert len(KeyRing.load("", "")) == 0

    with pytest.raises(KeyFileError, match="line 1: unknown role 'admin'") as bad_role:
        auth.parse_key_file("admin secret-admin-key\n")
    assert "secret-admin-key" not in str(bad_role.value)
    with pytest.raises(KeyFileError, match="line 2: expected") as three_words:
        auth.parse_key_file(f"read-only {READ_KEY}\nread-only secret-a secret-b\n")
    assert "secret-a" not in str(three_words.value)
    with pytest.raises(KeyFileError, match="entry 1: expected 'role:key'") as no_role:
        auth.parse_key_env("secret-only")
    assert "secret-only" not in str(no_role.value)
    with pytest.raises(KeyFileError, match="cannot read"):
        KeyRing.load(str(tmp_path / "missing"), "")


def test_only_digests_are_kept() -> None:
    """The key ring holds no key in clear."""
    ring = KeyRing([(Role.READ_WRITE, WRITE_KEY)])
    assert WRITE_KEY not in repr(vars(ring)) and WRITE_KEY.encode() not in repr(vars(ring)).encode()
    assert auth.key_fingerprint(WRITE_KEY) != WRITE_KEY and len(auth.key_fingerprint(WRITE_KEY)) == 12


def test_authorizer_decisions() -> None:
    """Missing, malformed, unknown, read-only-on-write; health and reflection open."""
    check = Authorizer(KeyRing([(Role.READ_ONLY, READ_KEY), (Role.READ_WRITE, WRITE_KEY)])).check

    def bearer(key: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {key}")]

    assert check(PREFIX + "Search", None).code == grpc.StatusCode.UNAUTHENTICATED
    assert check(PREFIX + "Search", [("authorization", READ_KEY)]).code == grpc.StatusCode.UNAUTHENTICATED
    assert check(PREFIX + "Search", bearer("wrong")).code == grpc.StatusCode.UNAUTHENTICATED
    assert check(PREFIX + "Search", bearer(READ_KEY)) is None
    assert check(PREFIX + "Search", [("Authorization", f"bearer {READ_KEY}")]) is None
    denied = check(PREFIX + "Upsert", bearer(READ_KEY))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.message == "this API key is read-only; Upsert needs a read-write key"
    assert check(PREFIX + "Upsert", bearer(WRITE_KEY)) is None
    assert check(PREFIX + "SomeFutureRpc", bearer(READ_KEY)).code == grpc.StatusCode.PERMISSION_DENIED
    assert check("/grpc.health.v1.Health/Check", None) is None
    assert check("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None) is None
    assert auth.method_label(PREFIX + "Upsert") == "Upsert"
    assert auth.method_label("/evil.Service/" + WRITE_KEY) == "unknown"


class _Answers(coordinator_pb2_grpc.CoordinatorServicer):
    """Answers Count and Upsert (the auth check runs before any servicer; a real one needs a cluster)."""

    def __init__(self) -> None:
        self.upserts = 0

    async def Count(self, request, context):  # noqa: ANN001, N802
        return coordinator_pb2.CountResponse(count=7)

    async def Upsert(self, request, context):  # noqa: ANN001, N802
        self.upserts += 1
        return coordinator_pb2.UpsertResponse(upserted=len(request.ids))


async def _exercise(denied: list[tuple[str, str]]) -> tuple[dict[str, object], int]:
    ring = KeyRing([(Role.READ_ONLY, READ_KEY), (Role.READ_WRITE, WRITE_KEY)])
    server = grpc.aio.server(interceptors=[ApiKeyInterceptor(Authorizer(ring), lambda m, c: denied.append((m, c)))])
    answers = _Answers()
    coordinator_pb2_grpc.add_CoordinatorServicer_to_server(answers, server)
    health = add_health_and_reflection(server, ["shoal.v1.Coordinator"])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await mark_serving_async(health, ["shoal.v1.Coordinator"])
    outcomes: dict[str, object] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = coordinator_pb2_grpc.CoordinatorStub(channel)
            calls = {
                "count-no-key": (stub.Count, ()),
                "count-wrong-key": (stub.Count, (("authorization", "Bearer wrong-" + READ_KEY),)),
                "count-read": (stub.Count, (("authorization", f"Bearer {READ_KEY}"),)),
                "upsert-read": (stub.Upsert, (("authorization", f"Bearer {READ_KEY}"),)),
                "upsert-write": (stub.Upsert, (("authorization", f"Bearer {WRITE_KEY}"),)),
            }
            for name, (method, metadata) in calls.items():
                request = (coordinator_pb2.UpsertRequest(ids=["a"]) if method is stub.Upsert
                           else coordinator_pb2.CountRequest())
                try:
                    outcomes[name] = await method(request, metadata=metadata, timeout=10)
                except grpc.aio.AioRpcError as err:
                    outcomes[name] = (err.code(), err.details())
            health_reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            outcomes["health"] = health_reply.status
    finally:
        await server.stop(0)
    return outcomes, answers.upserts


def test_interceptor_on_a_real_server(caplog: pytest.LogCaptureFixture) -> None:
    """Status codes and messages as seen by a client; refused writes never reach the servicer; no key in logs."""
    denied: list[tuple[str, str]] = []
    with caplog.at_level(logging.DEBUG):
        out, upserts = asyncio.run(_exercise(denied))
    assert out["count-no-key"][0] == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <key>" in out["count-no-key"][1]
    assert out["count-wrong-key"] == (grpc.StatusCode.UNAUTHENTICATED,
                                      "unknown API key: check the key or ask the operator")
    assert out["count-read"].count == 7
    assert out["upsert-read"][0] == grpc.StatusCode.PERMISSION_DENIED
    assert out["upsert-write"].upserted == 1
    assert upserts == 1, "the refused upsert must not reach the servicer"
    assert out["health"] == health_pb2.HealthCheckResponse.SERVING
    assert denied == [("Count", "UNAUTHENTICATED"), ("Count", "UNAUTHENTICATED"), ("Upsert", "PERMISSION_DENIED")]
    for secret in (READ_KEY, WRITE_KEY):
        assert secret not in caplog.text
        assert not any(secret in str(v) for v in out.values())
