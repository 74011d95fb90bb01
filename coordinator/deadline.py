"""The current request's deadline, set once at the servicer edge and honoured by every shard call under it."""

from __future__ import annotations

import time
from contextvars import ContextVar

from protos.errors import DeadlineExceeded

_DEADLINE: ContextVar[float | None] = ContextVar("shoal_request_deadline", default=None)


def set_request_deadline(seconds_left: float | None) -> None:
    """Record how long the caller still waits (None: no deadline) for this request's context."""
    _DEADLINE.set(None if seconds_left is None else time.monotonic() + seconds_left)


def deadline(within: float) -> float:
    """Monotonic time by which work must end: `within` seconds from now, or the request's deadline if sooner."""
    limit = time.monotonic() + within
    request = _DEADLINE.get()
    return limit if request is None else min(limit, request)


def time_left(within: float) -> float:
    """Seconds a shard or embedder call may take: at most `within`, never past the request's deadline."""
    left = deadline(within) - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the request's deadline passed before the shards or the embedder answered")
    return left
