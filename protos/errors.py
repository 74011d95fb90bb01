"""Domain errors shared by every Shoal process, and their one mapping to gRPC status codes."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc


class ShoalError(Exception):
    """Base of every error Shoal reports to a caller; `code` is its gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(ShoalError):
    """The request itself is wrong (bad dimension, NaN, empty id, k out of range, ...)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ShoalError):
    """A named collection (or other object) does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ShoalError):
    """Creating something whose name is taken."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ShoalError):
    """The request is well-formed but does not fit the state it targets."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ShoalError):
    """A shard or service cannot be reached now; retrying later may succeed."""

    code = grpc.StatusCode.UNAVAILABLE


class DiskUnavailable(Unavailable):
    """A process that answered cannot write its data directory (read-only): unavailable for writes, not down."""


class DeadlineExceeded(ShoalError):
    """The work did not finish within the request's deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhausted(ShoalError):
    """A limit (message size, batch size, concurrency) was exceeded."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(ShoalError):
    """The call carried no API key, or one the server does not know."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ShoalError):
    """The caller's API key may not do this (e.g. a read-only key asked to write)."""

    code = grpc.StatusCode.PERMISSION_DENIED


_BY_CODE: dict[grpc.StatusCode, type[ShoalError]] = {
    cls.code: cls
    for cls in (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Unavailable,
                DeadlineExceeded, ResourceExhausted, Unauthenticated, PermissionDenied)
}


# Subclasses that share a status code with their base travel by name in this trailing metadata key, so a
# client tells "the node answered: its disk is read-only" from "the node is unreachable".
ERROR_KEY = "shoal-error"
_BY_NAME: dict[str, type[ShoalError]] = {cls.__name__: cls for cls in (DiskUnavailable,)}

OVERSIZED_HINT = ("; the gRPC message size limit was hit (setting max_message_bytes, 64 MiB by default): "
                  "send fewer or smaller items per call")


def error_from_rpc(err: grpc.RpcError) -> ShoalError:
    """Turn a failed call's status back into the matching domain error."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "message larger than max" in (details or ""):
        # gRPC's own words name neither the setting nor the remedy.
        details += OVERSIZED_HINT
    cls = _BY_CODE.get(code, ShoalError)
    trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == ERROR_KEY and value in _BY_NAME and _BY_NAME[value].code == code:
            cls = _BY_NAME[value]
    exc = cls(details or code.name)
    if cls is ShoalError:
        exc.code = code
    return exc


F = TypeVar("F", bound=Callable[..., Any])


def _abort_args(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, ShoalError):
        return exc.code, str(exc)
    if isinstance(exc, grpc.RpcError):
        mapped = error_from_rpc(exc)
        return mapped.code, str(mapped)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def _mark(exc: BaseException, context: Any) -> None:
    """Name a subclass that shares its base's status code in the trailing metadata."""
    if type(exc).__name__ in _BY_NAME:
        context.set_trailing_metadata(((ERROR_KEY, type(exc).__name__),))


def rpc_edge(method: F) -> F:
    """Wrap a servicer method so domain errors leave it as a gRPC status with their message."""
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_wrapper(self: Any, request: Any, context: Any) -> Any:
            try:
                return await method(self, request, context)
            except Exception as exc:  # noqa: BLE001 - every failure must become a status
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                _mark(exc, context)
                await context.abort(*_abort_args(exc))

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every failure must become a status
            _mark(exc, context)
            context.abort(*_abort_args(exc))

    return wrapper  # type: ignore[return-value]


def stream_edge(method: F) -> F:
    """rpc_edge for a sync server-streaming method: a failure while streaming also becomes a status."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            yield from method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every failure must become a status
            _mark(exc, context)
            context.abort(*_abort_args(exc))

    return wrapper  # type: ignore[return-value]


_CODE_OF_VALUE: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def error_fields(exc: BaseException) -> tuple[int, str, str]:
    """A failure as the (status code number, message, subclass name) a streamed answer carries in its fields."""
    code, message = _abort_args(exc)
    return code.value[0], message, type(exc).__name__ if type(exc).__name__ in _BY_NAME else ""


def error_from_fields(code: int, message: str, kind: str = "") -> ShoalError:
    """The domain error of a streamed answer's status fields (error_fields' inverse)."""
    status = _CODE_OF_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    cls = _BY_CODE.get(status, ShoalError)
    named = _BY_NAME.get(kind)
    if named is not None and named.code == status:
        cls = named
    exc = cls(message or status.name)
    if cls is ShoalError:
        exc.code = status
    return exc


def raise_from(err: grpc.RpcError) -> NoReturn:
    """Re-raise a failed call as its domain error (for clients)."""
    raise error_from_rpc(err) from None
