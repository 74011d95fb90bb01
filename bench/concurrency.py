"""Many concurrent clients, each its own connection, each sending single-vector searches one after another."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.measure import MISSING, System, recall_at_k

WARMUP_PER_CLIENT = 5   # untimed queries per client before the start line (connection set-up, prepared plans)


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

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for results.json."""
        return asdict(self)


def client_rows(client: int, clients: int, per_client: int, total_queries: int) -> np.ndarray:
    """Query row numbers of one client: consecutive from its own offset, wrapping round the query set."""
    start = client * total_queries // clients
    return (start + np.arange(per_client)) % total_queries


def run_concurrent(make_client: Callable[[], System], name: str, queries: np.ndarray, truth: np.ndarray, k: int,
                   ef: int, clients: int, per_client: int, close: Callable[[System], None] | None = None
                   ) -> Concurrent:
    """`clients` threads, each with a client from make_client(), start together and run `per_client` single
    searches each; QPS = all searches / wall time from the start line to the last answer."""
    conns = [make_client() for _ in range(clients)]
    rows = [client_rows(c, clients, per_client, len(queries)) for c in range(clients)]
    seconds = np.zeros((clients, per_client))
    found = np.full((clients, per_client, k), MISSING, dtype=np.int64)
    errors: list[BaseException] = []
    start_line = threading.Barrier(clients + 1)
    finished = np.zeros(clients)

    def work(c: int) -> None:
        conn = conns[c]
        try:
            for r in rows[c][:WARMUP_PER_CLIENT]:
                conn.search_one(queries[r], k, ef)
        except BaseException as err:  # noqa: BLE001 - reported after the run, never swallowed
            errors.append(err)
        start_line.wait()
        if errors:
            return
        try:
            for i, r in enumerate(rows[c]):
                t0 = time.perf_counter()
                raw = conn.search_one(queries[r], k, ef)
                seconds[c, i] = time.perf_counter() - t0
                found[c, i] = conn.labels_one(raw, k)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)
        finished[c] = time.perf_counter()

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    start_line.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    try:
        if errors:
            raise RuntimeError(f"{name}: {len(errors)} of {clients} clients failed") from errors[0]
        wall = float(finished.max() - began)
        ms = seconds.ravel() * 1e3
        total = clients * per_client
        recall = recall_at_k(found.reshape(total, k), truth[np.concatenate(rows)])
        return Concurrent(name, ef, clients, total, wall, total / wall, float(np.percentile(ms, 50)),
                          float(np.percentile(ms, 99)), recall)
    finally:
        for conn in conns:
            if close is not None:
                close(conn)


def fastest_concurrent(runs: Sequence[Concurrent]) -> Concurrent:
    """The pass with the highest QPS."""
    return max(runs, key=lambda x: x.qps)
