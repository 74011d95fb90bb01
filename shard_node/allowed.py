"""A filter's allowed set on one partition version, and an LRU of them bounded in bytes.

An Allowed holds the sorted labels a filter selects and, built the first time a plan needs them, a bool
mask over labels (post-filtered HNSW and the graph's filtered walk) and the allowed rows
already gathered and scaled for the metric (the exact scan: one gemv per query, one gemm per batch).
Entries are keyed by (filter, partition version); any write bumps the version, so a stale entry is never
hit and ages out of the LRU.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np


class Allowed:
    """The live labels a filter allows at one partition version (labels sorted, int64)."""

    def __init__(self, labels: np.ndarray, version: int) -> None:
        self.labels = labels
        self.version = version
        self._mask: np.ndarray | None = None
        self.rows: np.ndarray | None = None       # gathered rows (unit rows for cosine), float32, C order
        self.row_sq: np.ndarray | None = None     # their squared norms (l2 only)
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """How many labels are allowed."""
        return len(self.labels)

    def mask(self) -> np.ndarray:
        """A bool mask over labels [0, last allowed label]: post-filtered HNSW's check and the graph's filtered
        walk."""
        if self._mask is None:
            with self._lock:
                if self._mask is None:
                    size = int(self.labels[-1]) + 1 if len(self.labels) else 0
                    m = np.zeros(size, dtype=bool)
                    m[self.labels] = True
                    self._mask = m
        return self._mask

    def contains(self, labels: np.ndarray) -> np.ndarray:
        """Which of `labels` are allowed (labels past the set's last one are not)."""
        mask = self.mask()
        inside = labels < len(mask)
        keep = np.zeros(len(labels), dtype=bool)
        keep[inside] = mask[labels[inside]]
        return keep

    def gathered(self, rows_of: Callable[[np.ndarray], np.ndarray], norms: np.ndarray, metric: str
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """The allowed rows (decoded by `rows_of`, a fresh array) ready for an exact scan (unit rows for cosine)
        and, for l2, their squared norms."""
        if self.rows is None:
            with self._lock:
                if self.rows is None:
                    rows = rows_of(self.labels)
                    if metric == "cosine":
                        rows /= norms[self.labels][:, None]
                    self.row_sq = np.einsum("ij,ij->i", rows, rows) if metric == "l2" else None
                    self.rows = rows
        return self.rows, self.row_sq

    def nbytes(self) -> int:
        """Bytes this entry holds."""
        total = self.labels.nbytes
        for arr in (self._mask, self.rows, self.row_sq):
            total += arr.nbytes if arr is not None else 0
        return total


class AllowedCache:
    """LRU of Allowed entries, bounded by the bytes they hold; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Any, Allowed] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Any) -> Allowed | None:
        """The entry for key, marked as just used; None when absent."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def peek(self, key: Any) -> Allowed | None:
        """The entry for key if present (marked as just used), without counting a miss."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return entry

    def put(self, key: Any, entry: Allowed) -> None:
        """Store (or re-size, after it gathered more) an entry; drop older versions and the least recently used."""
        with self._lock:
            for old_key in [k for k, e in self._entries.items() if e.version < entry.version]:
                del self._entries[old_key]  # a write made them stale for good
            self._entries[key] = entry
            self._entries.move_to_end(key)
            total = sum(e.nbytes() for e in self._entries.values())
            while total > self.max_bytes and self._entries:
                _, old = self._entries.popitem(last=False)
                total -= old.nbytes()

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
