"""Worker threads for tests: a thread that dies of an exception fails the test that joins it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class CheckedThread(threading.Thread):
    """A thread that keeps the exception it died of; join() raises it, and raises if the thread outlives timeout.

    Subclasses put their loop in body(); a plain CheckedThread(target=...) runs its target."""

    def __init__(self, target: Callable[..., Any] | None = None, args: tuple = (), kwargs: dict | None = None,
                 name: str | None = None, daemon: bool = True) -> None:
        super().__init__(target=target, args=args, kwargs=kwargs, name=name, daemon=daemon)
        self.error: BaseException | None = None

    def body(self) -> None:
        """The thread's work (by default its target)."""
        super().run()

    def run(self) -> None:
        try:
            self.body()
        except BaseException as exc:  # noqa: BLE001 - kept for join(), which fails the test with it
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread; AssertionError if it is still running after timeout or died of an exception."""
        super().join(timeout)
        if self.is_alive():
            raise AssertionError(f"thread {self.name} still runs after {timeout}s")
        if self.error is not None:
            raise AssertionError(f"thread {self.name} died: {self.error!r}") from self.error


def join_all(threads: list[CheckedThread], timeout: float | None = None) -> None:
    """Join every thread (all of them, even after one failed), then fail with every error found."""
    errors = []
    for t in threads:
        try:
            t.join(timeout)
        except AssertionError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise AssertionError(f"{len(errors)} threads failed: " + "; ".join(map(str, errors))) from errors[0]
