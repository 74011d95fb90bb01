"""Waiting on a condition instead of sleeping: poll the real state, bounded, and say what never happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Poll(Generic[T]):
    """One check per call: its result when truthy, None to go on; AssertionError naming `what` past the deadline."""

    def __init__(self, check: Callable[[], T], timeout: float, what: str) -> None:
        self.check, self.timeout, self.what = check, timeout, what
        self.deadline = time.monotonic() + timeout

    def __call__(self) -> T | None:
        result = self.check()
        if result:
            return result
        if time.monotonic() > self.deadline:
            raise AssertionError(f"timed out after {self.timeout:g}s waiting for {self.what}")
        return None


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call check() until it returns something truthy and return that; AssertionError naming `what` after timeout."""
    poll = _Poll(check, timeout, what)
    while (result := poll()) is None:
        time.sleep(interval)
    return result


async def wait_until_async(check: Callable[[], T], timeout: float, what: str, interval: float = 0.001) -> T:
    """wait_until inside an event loop: polls between loop turns, so the code under test runs meanwhile."""
    poll = _Poll(check, timeout, what)
    while (result := poll()) is None:
        await asyncio.sleep(interval)
    return result
