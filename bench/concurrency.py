"""Many concurrent clients, each its own connection, each sending single-vector searches one after another.

Clients are threads of the benchmark process by default, or processes of their own (`processes=True`), each
opening its connection from a picklable Opener."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from bench.measure import MISSING, recall_at_k

WARMUP_PER_CLIENT = 5     # untimed queries per client before the start line (connection set-up, prepared plans)
START_TIMEOUT_S = 300.0   # every client connected and warmed up (spawned processes import the SDK first)
RUN_TIMEOUT_S = 1800.0


class Searcher(Protocol):
    """One client's connection: single searches, their labels, close."""

    def search_one(self, query: np.ndarray, k: int, ef: int) -> Any:
        """Top-k of one query."""
        ...

    def labels_one(self, raw: Any, k: int) -> np.ndarray:
        """(k,) row numbers of an answer."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


@dataclass(frozen=True)
class Opener:
    """Opens one more client as `factory(*args)`; picklable (for client processes) when the factory is a
    module-level class, function or classmethod and the args are plain values."""

    factory: Callable[..., Searcher]
    args: tuple[Any, ...]

    def open(self) -> Searcher:
        """A new connection."""
        return self.factory(*self.args)


@dataclass
class Concurrent:
    """Throughput and latency of `clients` clients searching at once."""

    system: str
    ef: int
    clients: int
    queries: int
    seconds: float
    qps: float
    p50_ms: float
    p99_ms: float
    recall: float
    mode: str = "threads"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for results.json."""
        return asdict(self)


@dataclass
class ClientReport:
    """What one client sends back: per-search seconds and labels, when it left the start line and finished."""

    client: int
    seconds: np.ndarray | None
    found: np.ndarray | None
    began: float
    finished: float
    error: str = ""


def client_rows(client: int, clients: int, per_client: int, total_queries: int) -> np.ndarray:
    """Query row numbers of one client: consecutive from its own offset, wrapping round the query set."""
    start = client * total_queries // clients
    return (start + np.arange(per_client)) % total_queries


def client_work(opener: Opener, queries: np.ndarray, k: int, ef: int, start_line: Any, out: Any, c: int) -> None:
    """One client (thread or process): connect, warm up, wait at the start line, search every query, put a
    ClientReport on `out`. perf_counter is the system's monotonic clock on Linux, so times from different
    processes compare."""
    system = None
    try:
        system = opener.open()
        for q in queries[:WARMUP_PER_CLIENT]:
            system.search_one(q, k, ef)
        start_line.wait(START_TIMEOUT_S)
        began = time.perf_counter()
        seconds = np.empty(len(queries))
        found = np.full((len(queries), k), MISSING, dtype=np.int64)
        for i, q in enumerate(queries):
            t0 = time.perf_counter()
            raw = system.search_one(q, k, ef)
            seconds[i] = time.perf_counter() - t0
            found[i] = system.labels_one(raw, k)
        out.put(ClientReport(c, seconds, found, began, time.perf_counter()))
    except BaseException as err:  # noqa: BLE001 - reported to the caller, which raises
        start_line.abort()
        out.put(ClientReport(c, None, None, 0.0, 0.0, f"{type(err).__name__}: {err}"))
    finally:
        if system is not None:
            system.close()


def run_concurrent(opener: Opener, name: str, queries: np.ndarray, truth: np.ndarray, k: int, ef: int,
                   clients: int, per_client: int, processes: bool = False) -> Concurrent:
    """`clients` clients, each opened by `opener`, start together and run `per_client` single searches each;
    QPS = all searches / wall time from the start line to the last answer."""
    rows = [client_rows(c, clients, per_client, len(queries)) for c in range(clients)]
    if processes:
        ctx = multiprocessing.get_context("spawn")   # a fork would copy the parent's gRPC threads
        start_line, out = ctx.Barrier(clients + 1), ctx.Queue()
        workers = [ctx.Process(target=client_work, args=(opener, queries[rows[c]], k, ef, start_line, out, c),
                               daemon=True) for c in range(clients)]
    else:
        start_line, out = threading.Barrier(clients + 1), queue.Queue()
        workers = [threading.Thread(target=client_work, args=(opener, queries[rows[c]], k, ef, start_line, out, c),
                                    daemon=True) for c in range(clients)]
    for w in workers:
        w.start()
    with contextlib.suppress(threading.BrokenBarrierError):   # a client failed before the start: see `out`
        start_line.wait(START_TIMEOUT_S)
    reports = [out.get(timeout=RUN_TIMEOUT_S) for _ in range(clients)]
    for w in workers:
        w.join(RUN_TIMEOUT_S)
    errors = [r.error for r in reports if r.error]
    if errors:
        raise RuntimeError(f"{name}: {len(errors)} of {clients} clients failed; first: {errors[0]}")
    reports.sort(key=lambda r: r.client)
    # From the first client leaving the start line (this thread may wake after them) to the last answer.
    wall = max(r.finished for r in reports) - min(r.began for r in reports)
    ms = np.concatenate([r.seconds for r in reports]) * 1e3
    found = np.concatenate([r.found for r in reports])
    total = clients * per_client
    return Concurrent(name, ef, clients, total, wall, total / wall, float(np.percentile(ms, 50)),
                      float(np.percentile(ms, 99)), recall_at_k(found, truth[np.concatenate(rows)]),
                      "processes" if processes else "threads")


def fastest_concurrent(runs: Sequence[Concurrent]) -> Concurrent:
    """The pass with the highest QPS."""
    return max(runs, key=lambda x: x.qps)
