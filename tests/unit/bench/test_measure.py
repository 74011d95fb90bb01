"""The benchmark's pure helpers: recall, percentiles, best-of-passes and equal-recall matching."""

import numpy as np

from bench.concurrency import client_rows
from bench.measure import (
    MISSING,
    CurvePoint,
    cheapest_ef_reaching,
    fastest_points,
    latency_of,
    pad_labels,
    recall_at_k,
)


def test_recall_counts_true_neighbours_in_any_order_and_ignores_missing() -> None:
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 2, 9], [MISSING, MISSING, 4]])
    assert recall_at_k(found, truth) == 3 / 6


def test_pad_labels_fills_short_rows_and_cuts_long_ones() -> None:
    out = pad_labels([[7], [1, 2, 3, 4]], 3)
    assert out.tolist() == [[7, MISSING, MISSING], [1, 2, 3]]


def test_latency_percentiles_and_recall_carried() -> None:
    ms = np.arange(1, 101, dtype=float)
    x = latency_of("s", 64, ms, 0.5)
    assert (x.queries, x.p50_ms, x.max_ms, x.recall) == (100, 50.5, 100.0, 0.5)
    assert 99.0 < x.p99_ms < 100.0


def test_fastest_points_keeps_best_qps_per_ef_and_every_pass_time() -> None:
    a = [CurvePoint("s", 16, 0.9, 100.0, 1.0, 100, 10, [1.0]), CurvePoint("s", 32, 0.95, 50.0, 2.0, 100, 10, [2.0])]
    b = [CurvePoint("s", 16, 0.9, 125.0, 0.8, 100, 10, [0.8]), CurvePoint("s", 32, 0.95, 40.0, 2.5, 100, 10, [2.5])]
    best = {p.ef: p for p in fastest_points([a, b])}
    assert best[16].qps == 125.0 and best[32].qps == 50.0
    assert sorted(best[16].pass_seconds) == [0.8, 1.0]


def test_cheapest_ef_reaching_picks_the_smallest_sufficient_ef() -> None:
    recall = {16: 0.90, 32: 0.97, 64: 0.99, 128: 0.999}
    assert cheapest_ef_reaching(recall, 0.97) == 32
    assert cheapest_ef_reaching(recall, 0.98) == 64
    assert cheapest_ef_reaching(recall, 0.9999) is None


def test_client_rows_spread_clients_over_the_query_set_and_wrap() -> None:
    rows = [client_rows(c, 4, 30, 100) for c in range(4)]
    assert [r[0] for r in rows] == [0, 25, 50, 75]
    assert rows[3][-1] == (75 + 29) % 100
