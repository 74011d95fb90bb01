"""Domain errors <-> gRPC status codes, and the rpc_edge servicer wrapper (with a fake context)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from protos.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ShoalError,
    Unauthenticated,
    Unavailable,
    error_from_rpc,
    raise_from,
    rpc_edge,
)

EXPECTED = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


class FakeRpcError(grpc.RpcError):
    """A failed call as a client sees it."""

    def __init__(self, code: grpc.StatusCode, details: str | None) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details


class Aborted(Exception):
    """What the fake context raises from abort(), like grpc does."""


class FakeContext:
    """Records abort() calls; abort raises, as on a real servicer context."""

    def __init__(self) -> None:
        self.aborts: list[tuple[grpc.StatusCode, str]] = []

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborts.append((code, details))
        raise Aborted(details)


class FakeAioContext(FakeContext):
    """The aio flavour: abort is a coroutine raising grpc.aio.AbortError."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:  # type: ignore[override]
        self.aborts.append((code, details))
        raise grpc.aio.AbortError(details)


@pytest.mark.parametrize(("cls", "code"), list(EXPECTED.items()))
def test_codes_both_ways(cls: type[ShoalError], code: grpc.StatusCode) -> None:
    assert cls.code == code
    exc = error_from_rpc(FakeRpcError(code, "the details"))
    assert type(exc) is cls
    assert exc.code == code and str(exc) == "the details"


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED,
                                  grpc.StatusCode.DATA_LOSS])
def test_unmapped_code_keeps_its_code(code: grpc.StatusCode) -> None:
    exc = error_from_rpc(FakeRpcError(code, "boom"))
    assert type(exc) is ShoalError and exc.code == code
    assert ShoalError.code == grpc.StatusCode.INTERNAL, "the class default must not be modified"


def test_empty_details_fall_back_to_code_name() -> None:
    assert str(error_from_rpc(FakeRpcError(grpc.StatusCode.NOT_FOUND, ""))) == "NOT_FOUND"
    assert str(error_from_rpc(FakeRpcError(grpc.StatusCode.UNAVAILABLE, None))) == "UNAVAILABLE"


def test_raise_from() -> None:
    with pytest.raises(Unavailable, match="shard down") as info:
        raise_from(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "shard down"))
    assert info.value.__cause__ is None and info.value.__suppress_context__


class Servicer:
    """A servicer whose methods fail in the ways rpc_edge must translate."""

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc

    @rpc_edge
    def Call(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method naming
        """Echo the request or raise the configured error."""
        if self.exc is not None:
            raise self.exc
        return ("ok", request)

    @rpc_edge
    async def AsyncCall(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method naming
        """The async twin of Call."""
        await asyncio.sleep(0)
        if self.exc is not None:
            raise self.exc
        return ("ok", request)


CASES: list[tuple[BaseException, grpc.StatusCode, str]] = [
    *[(cls("bad thing"), code, "bad thing") for cls, code in EXPECTED.items()],
    (FakeRpcError(grpc.StatusCode.UNAVAILABLE, "downstream gone"), grpc.StatusCode.UNAVAILABLE, "downstream gone"),
    (ValueError("oops"), grpc.StatusCode.INTERNAL, "internal error: ValueError: oops"),
    (KeyError("k"), grpc.StatusCode.INTERNAL, "internal error: KeyError: 'k'"),
]


@pytest.mark.parametrize(("exc", "code", "message"), CASES)
def test_rpc_edge_sync_aborts_with_code(exc: BaseException, code: grpc.StatusCode, message: str) -> None:
    ctx = FakeContext()
    with pytest.raises(Aborted):
        Servicer(exc).Call("req", ctx)
    assert ctx.aborts == [(code, message)]


@pytest.mark.parametrize(("exc", "code", "message"), CASES)
def test_rpc_edge_async_aborts_with_code(exc: BaseException, code: grpc.StatusCode, message: str) -> None:
    ctx = FakeAioContext()
    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(Servicer(exc).AsyncCall("req", ctx))
    assert ctx.aborts == [(code, message)]


def test_rpc_edge_passes_results_through() -> None:
    ctx, actx = FakeContext(), FakeAioContext()
    assert Servicer(None).Call("r", ctx) == ("ok", "r")
    assert asyncio.run(Servicer(None).AsyncCall("r", actx)) == ("ok", "r")
    assert ctx.aborts == [] and actx.aborts == []
    assert Servicer.Call.__name__ == "Call" and Servicer.AsyncCall.__doc__ == "The async twin of Call."
    assert asyncio.iscoroutinefunction(Servicer.AsyncCall)


def test_rpc_edge_async_reraises_an_abort_untouched() -> None:
    ctx = FakeAioContext()
    abort = grpc.aio.AbortError("already aborted")
    with pytest.raises(grpc.aio.AbortError) as info:
        asyncio.run(Servicer(abort).AsyncCall("r", ctx))
    assert info.value is abort
    assert ctx.aborts == []


def test_oversized_message_error_names_the_setting() -> None:
    """gRPC's 'larger than max' status gets the setting and the remedy added; other messages stay as they are."""
    exc = error_from_rpc(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      "Sent message larger than max (70000000 vs. 67108864)"))
    assert isinstance(exc, ResourceExhausted)
    assert "70000000 vs. 67108864" in str(exc) and "max_message_bytes" in str(exc) and "fewer" in str(exc)
    other = error_from_rpc(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many concurrent requests"))
    assert str(other) == "too many concurrent requests"


class MarkingContext(FakeContext):
    """A context that also records trailing metadata."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing: tuple = ()

    def set_trailing_metadata(self, md: tuple) -> None:
        self.trailing = md


def test_disk_unavailable_travels_by_name_and_stays_an_unavailable() -> None:
    from protos.errors import DiskUnavailable, stream_edge

    class Svc:
        @rpc_edge
        def Unary(self, request: Any, context: Any) -> Any:
            raise DiskUnavailable("read-only data directory /x")

        @stream_edge
        def Stream(self, request: Any, context: Any) -> Any:
            yield 1
            raise DiskUnavailable("read-only while streaming")

    for call in (lambda ctx: Svc().Unary(None, ctx), lambda ctx: list(Svc().Stream(None, ctx))):
        ctx = MarkingContext()
        with pytest.raises(Aborted):
            call(ctx)
        assert ctx.aborts[0][0] == grpc.StatusCode.UNAVAILABLE

        class Marked(FakeRpcError):
            def trailing_metadata(self, md: tuple = ctx.trailing) -> tuple:
                return md

        exc = error_from_rpc(Marked(grpc.StatusCode.UNAVAILABLE, ctx.aborts[0][1]))
        assert type(exc) is DiskUnavailable and isinstance(exc, Unavailable)
    # A plain UNAVAILABLE (an unreachable node) carries no name and stays Unavailable.
    ctx = MarkingContext()
    with pytest.raises(Aborted):
        rpc_edge(lambda self, r, c: (_ for _ in ()).throw(Unavailable("down")))(None, None, ctx)
    assert ctx.trailing == ()
