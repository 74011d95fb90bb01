"""A readers/writer lock whose readers share only when they agree on a search parameter."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SearchGate:
    """Writers run alone; readers run together when they ask for the same ef; neither side starves.

    hnswlib keeps ef on the index, not per query, so two searches with different ef must not
    overlap; searches with the same ef (the common case) run in parallel. A waiting writer holds
    back new readers, and readers that were waiting when a writer finished go before the next
    writer, so back-to-back writes cannot lock searches out (nor the reverse).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._reader_ef = -1
        self._writer = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._read_turn = False
        self._frozen = 0

    @contextmanager
    def read(self, ef: int) -> Iterator[bool]:
        """Hold the gate for a search at `ef`; yields True when the caller must set ef first."""
        with self._cond:
            self._readers_waiting += 1
            while (self._writer or (self._writers_waiting and not self._read_turn)
                   or (self._readers and self._reader_ef != ef)):
                self._cond.wait()
            self._readers_waiting -= 1
            if self._readers_waiting == 0:
                self._read_turn = False
                self._cond.notify_all()
            must_set = self._reader_ef != ef
            self._readers += 1
            self._reader_ef = ef
        try:
            yield must_set
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the gate alone."""
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers or self._read_turn or self._frozen:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._reader_ef = -1
                self._read_turn = self._readers_waiting > 0
                self._cond.notify_all()

    @contextmanager
    def freeze(self) -> Iterator[None]:
        """Keep writers out while searches at any ef go on (for reading the whole state, e.g. a snapshot)."""
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._frozen += 1
        try:
            yield
        finally:
            with self._cond:
                self._frozen -= 1
                self._cond.notify_all()
