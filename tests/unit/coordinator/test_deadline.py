"""The request deadline caps every shard call made under it."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from coordinator.deadline import deadline, set_request_deadline, time_left
from protos.errors import DeadlineExceeded

T = TypeVar("T")


def in_fresh_context(fn: Callable[[], T]) -> T:
    """Run fn in a copy of an empty context, so deadlines do not leak between tests."""
    return contextvars.Context().run(fn)


def test_no_request_deadline_leaves_the_limit() -> None:
    """Without a caller deadline the shard timeout applies as is."""
    def run() -> float:
        set_request_deadline(None)
        return time_left(30.0)

    assert 29.9 < in_fresh_context(run) <= 30.0


def test_request_deadline_shortens_shard_calls() -> None:
    """A caller that waits 0.2 s gets shard calls of at most 0.2 s."""
    def run() -> tuple[float, float]:
        set_request_deadline(0.2)
        return time_left(30.0), deadline(30.0) - time.monotonic()

    left, until = in_fresh_context(run)
    assert 0 < left <= 0.2 and 0 < until <= 0.2


def test_passed_deadline_raises() -> None:
    """Once the caller's deadline has passed, no shard call starts."""
    def run() -> None:
        set_request_deadline(0.01)
        time.sleep(0.02)
        time_left(30.0)

    with pytest.raises(DeadlineExceeded, match="deadline passed"):
        in_fresh_context(run)
