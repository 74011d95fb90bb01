"""Background rebuild of a shard's HNSW index: build from the live documents off the serving path, then swap.

The store supplies the steps that touch its state (copy the live set, replay writes, swap); this module
builds the fresh partition, runs the whole job on one background thread, and keeps the figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shard_node.partition import Partition
from shard_node.settings import DEFAULT_ALLOWED_CACHE_MB, PartitionSpec

BUILD_CHUNK = 1024  # documents per add_items call while building: progress and cancellation points
HEADROOM = 1.5      # a rebuilt index has room for this many times its live documents before it grows
MIN_CAPACITY = 1024


RebuildObserver = Callable[[str, float], None]  # (outcome: ok | error | cancelled, seconds the job ran)


class RebuildCancelled(Exception):
    """The shard is closing; the half-built index is dropped (the old one and its files are untouched)."""


@dataclass(frozen=True)
class RebuildFigures:
    """What a shard tells about its rebuilds."""

    running: bool
    phase: str              # "" when idle; copy, build, catch-up, snapshot, swap while running
    progress: float         # share of the live documents inserted into the new index (0..1)
    total: int              # rebuilds finished since the process started
    last_finished_at: float  # unix seconds, 0 = never (in this process or on disk)
    last_seconds: float
    last_reason: str
    last_error: str
    elapsed: float = 0.0    # seconds the running rebuild has taken so far (0 when idle)


def tombstone_ratio(live: int, tombstones: int) -> float:
    """Deleted share of the documents in a graph (0 for an empty one)."""
    return tombstones / max(live + tombstones, 1)


def capacity_for(live: int) -> int:
    """Capacity of a rebuilt index: a power of two with headroom above the live count."""
    need = max(int(live * HEADROOM), MIN_CAPACITY)
    return 1 << (need - 1).bit_length()


def build_partition(spec: PartitionSpec, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]],
                    search_threads: int, build_threads: int, on_progress: Callable[[float], None],
                    cancelled: Callable[[], bool], allowed_cache_mb: int = DEFAULT_ALLOWED_CACHE_MB) -> Partition:
    """A fresh partition holding exactly the given documents, filled through the ordinary upsert path.

    Going through upsert means every per-document structure a partition keeps is rebuilt with it."""
    fresh = Partition(spec, capacity=capacity_for(len(ids)), search_threads=search_threads,
                      allowed_cache_mb=allowed_cache_mb)
    for start in range(0, len(ids), BUILD_CHUNK):
        if cancelled():
            raise RebuildCancelled
        end = start + BUILD_CHUNK
        fresh.upsert(ids[start:end], vectors[start:end], payloads[start:end], num_threads=build_threads)
        on_progress(min(end, len(ids)) / max(len(ids), 1))
    on_progress(1.0)
    return fresh


def respec(spec: PartitionSpec, m: int = 0, ef_construction: int = 0) -> PartitionSpec:
    """The spec a rebuild builds with: the current one, with M and ef_construction replaced when given."""
    return replace(spec, m=m or spec.m, ef_construction=ef_construction or spec.ef_construction)


class Rebuilder:
    """Runs at most one rebuild job at a time on a background thread and keeps its figures."""

    def __init__(self, last_finished_at: float = 0.0, last_seconds: float = 0.0,
                 on_end: RebuildObserver | None = None) -> None:
        self._on_end = on_end
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._done.set()
        self._cancel = threading.Event()
        self._phase = ""
        self._progress = 0.0
        self._total = 0
        self._last_finished_at = last_finished_at
        self._last_seconds = last_seconds
        self._began = 0.0
        self._last_reason = ""
        self._last_error = ""

    @property
    def running(self) -> bool:
        """A rebuild is under way."""
        return not self._done.is_set()

    def cancelled(self) -> bool:
        """The job should stop at its next check."""
        return self._cancel.is_set()

    def phase(self, name: str) -> None:
        """Record which step the job is in."""
        self._phase = name

    def progress(self, fraction: float) -> None:
        """Record how far the build has got."""
        self._progress = fraction

    def start(self, job: Callable[[Rebuilder], None], reason: str) -> bool:
        """Run job(self) in the background unless a rebuild already runs; True when this call started one."""
        with self._lock:
            if self.running:
                return False
            self._done.clear()
            self._began = time.monotonic()
            self._phase, self._progress, self._last_error = "copy", 0.0, ""
            self._thread = threading.Thread(target=self._run, args=(job, reason), name="shard-rebuild", daemon=True)
            self._thread.start()
            return True

    def elapsed(self) -> float:
        """Seconds since the running rebuild began (0 when none runs)."""
        return time.monotonic() - self._began if self.running and self._began else 0.0

    def _run(self, job: Callable[[Rebuilder], None], reason: str) -> None:
        self._began = began = time.monotonic()
        outcome = "ok"
        try:
            job(self)
        except RebuildCancelled:
            outcome, self._last_error = "cancelled", "cancelled: the shard closed"
        except Exception as exc:  # noqa: BLE001 - a failed rebuild leaves the old index serving; say why
            outcome, self._last_error = "error", f"{type(exc).__name__}: {exc}"
        else:
            self._total += 1
            self._last_finished_at = time.time()
            self._last_seconds = time.monotonic() - began
            self._last_reason = reason
        finally:
            self._phase = ""
            if self._on_end is not None:
                self._on_end(outcome, time.monotonic() - began)
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no rebuild runs; False on timeout."""
        return self._done.wait(timeout)

    def cancel(self, timeout: float = 10.0) -> None:
        """Ask a running job to stop and wait for it a while."""
        self._cancel.set()
        self._done.wait(timeout)

    def figures(self) -> RebuildFigures:
        """Current figures."""
        return RebuildFigures(running=self.running, phase=self._phase, progress=self._progress, total=self._total,
                              last_finished_at=self._last_finished_at, last_seconds=self._last_seconds,
                              last_reason=self._last_reason, last_error=self._last_error, elapsed=self.elapsed())
