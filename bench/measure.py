"""System-independent measurement: batched recall/throughput curves, single-query latency, ingest rate."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

WARMUP_QUERIES = 20   # untimed single queries before a latency run: first calls pay for channel and cache set-up
MISSING = -1          # label that stands for "fewer than k hits came back"


class System(Protocol):
    """What the harness needs from a searchable system (Shoal, hnswlib, brute force)."""

    name: str

    def ingest(self, vectors: np.ndarray, batch: int) -> float:
        """Index every vector (label = row number); returns the seconds spent in the system's calls."""
        ...

    def search(self, queries: np.ndarray, k: int, ef: int) -> Any:
        """Top-k of each query row, in whatever form the system answers (timed)."""
        ...

    def labels(self, raw: Any, k: int) -> np.ndarray:
        """A (rows, k) int64 array of row numbers from what search() returned (not timed)."""
        ...

    def search_one(self, query: np.ndarray, k: int, ef: int) -> Any:
        """Top-k of one query through the system's single-query path (timed)."""
        ...

    def labels_one(self, raw: Any, k: int) -> np.ndarray:
        """A (k,) int64 array of row numbers (MISSING-padded) from what search_one() returned (not timed)."""
        ...


@dataclass
class CurvePoint:
    """Recall and batched throughput of one system at one ef."""

    system: str
    ef: int
    recall: float
    qps: float
    seconds: float
    queries: int
    batch: int
    pass_seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for results.json."""
        return asdict(self)


@dataclass
class Latency:
    """Single-query latency of one system at one ef."""

    system: str
    ef: int
    queries: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    recall: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for results.json."""
        return asdict(self)


@dataclass
class Ingest:
    """How fast one system indexed the data set."""

    system: str
    vectors: int
    batch: int
    seconds: float

    @property
    def rate(self) -> float:
        """Vectors per second."""
        return self.vectors / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for results.json."""
        return {**asdict(self), "vectors_per_s": self.rate}


def batch_slices(rows: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` rows covering range(rows)."""
    return [slice(start, min(start + size, rows)) for start in range(0, rows, size)]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row's true top-k that the found top-k contains."""
    k = truth.shape[1]
    hit = (found[:, :, None] == truth[:, None, :]).any(axis=1)
    return float(hit.sum() / (truth.shape[0] * k))


def pad_labels(rows: Sequence[Sequence[int]] | np.ndarray, k: int) -> np.ndarray:
    """(rows, k) int64 array; rows shorter than k are filled with MISSING."""
    out = np.full((len(rows), k), MISSING, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row[:k]
    return out


def run_batched(system: System, queries: np.ndarray, k: int, ef: int, batch: int, bar: tqdm | None = None
                ) -> tuple[np.ndarray, float]:
    """Labels of every query and the seconds spent inside the system's search calls only."""
    spent = 0.0
    parts = []
    for sl in batch_slices(len(queries), batch):
        start = time.perf_counter()
        raw = system.search(queries[sl], k, ef)
        spent += time.perf_counter() - start
        parts.append(system.labels(raw, k))
        if bar is not None:
            bar.update(sl.stop - sl.start)
    return np.concatenate(parts), spent


def measure_curve(system: System, queries: np.ndarray, truth: np.ndarray, efs: Sequence[int], batch: int,
                  repeats: int = 1) -> list[CurvePoint]:
    """Recall@k and batched queries/s at each ef (best of `repeats` passes), after one untimed warm-up batch."""
    k = truth.shape[1]
    system.search(queries[:batch], k, efs[0])
    points = []
    with tqdm(total=len(efs) * len(queries) * repeats, desc=f"{system.name} batched search", unit="q",
              leave=False) as bar:
        for ef in efs:
            bar.set_postfix(ef=ef)
            passes = [run_batched(system, queries, k, ef, batch, bar) for _ in range(repeats)]
            # The fastest pass is the one least disturbed by whatever else the machine was doing.
            seconds = min(s for _, s in passes)
            points.append(CurvePoint(system.name, ef, recall_at_k(passes[0][0], truth), len(queries) / seconds,
                                     seconds, len(queries), batch, [s for _, s in passes]))
    return points


def latency_of(system: str, ef: int, ms: np.ndarray, recall: float | None = None) -> Latency:
    """Percentiles, mean and max of per-query milliseconds."""
    return Latency(system, ef, len(ms), float(np.percentile(ms, 50)), float(np.percentile(ms, 99)),
                   float(ms.mean()), float(ms.max()), recall)


def measure_latency(system: System, queries: np.ndarray, k: int, ef: int, truth: np.ndarray | None = None
                    ) -> Latency:
    """Latency percentiles of one-at-a-time queries, each timed around the system call alone; with `truth`
    (rows matching `queries`), also the recall of those answers."""
    for q in queries[:WARMUP_QUERIES]:
        system.search_one(q, k, ef)
    seconds = np.empty(len(queries))
    found = np.full((len(queries), k), MISSING, dtype=np.int64)
    label = f" ef={ef}" if ef else ""
    for i, q in enumerate(tqdm(queries, desc=f"{system.name} single query{label}", unit="q", leave=False)):
        start = time.perf_counter()
        raw = system.search_one(q, k, ef)
        seconds[i] = time.perf_counter() - start
        if truth is not None:
            found[i] = system.labels_one(raw, k)
    recall = None if truth is None else recall_at_k(found, truth[: len(queries)])
    return latency_of(system.name, ef, seconds * 1e3, recall)


def fastest_latency(runs: Sequence[Latency]) -> Latency:
    """The run with the lowest p50 (best of passes: the one least disturbed by the rest of the machine)."""
    return min(runs, key=lambda x: x.p50_ms)


def fastest_points(passes: Sequence[Sequence[CurvePoint]]) -> list[CurvePoint]:
    """Per ef, the pass with the highest QPS; pass_seconds collects every pass's time."""
    by_ef: dict[int, list[CurvePoint]] = {}
    for points in passes:
        for p in points:
            by_ef.setdefault(p.ef, []).append(p)
    out = []
    for ef, points in by_ef.items():
        best = max(points, key=lambda p: p.qps)
        out.append(CurvePoint(best.system, ef, best.recall, best.qps, best.seconds, best.queries, best.batch,
                              [s for p in points for s in p.pass_seconds]))
    return out


def cheapest_ef_reaching(recall_by_ef: dict[int, float], recall: float) -> int | None:
    """The smallest ef whose recall is at least `recall`, or None when no measured ef reaches it."""
    return min((ef for ef, r in recall_by_ef.items() if r >= recall), default=None)


def measure_ingest(system: System, vectors: np.ndarray, batch: int) -> Ingest:
    """Index all vectors through the system and record its rate."""
    return Ingest(system.name, len(vectors), batch, system.ingest(vectors, batch))


def qps_at_recall(curve: Sequence[CurvePoint], recall: float) -> float | None:
    """Throughput the curve reaches at `recall` (log-linear interpolation), or None outside its range."""
    pts = sorted(curve, key=lambda p: (p.recall, -p.qps))
    # Keep the best QPS per recall level so the x values strictly increase.
    xs: list[float] = []
    ys: list[float] = []
    for p in pts:
        if xs and p.recall <= xs[-1]:
            continue
        xs.append(p.recall)
        ys.append(np.log(p.qps))
    if not xs or recall < xs[0] or recall > xs[-1]:
        return None
    return float(np.exp(np.interp(recall, xs, ys)))
