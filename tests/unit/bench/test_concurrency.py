"""Concurrent clients: every client's searches are counted, timed and scored, in threads and in processes."""

import numpy as np
import pytest

from bench.concurrency import Opener, run_concurrent
from bench.systems import top_k_by_dot

K = 3


class ExactSearcher:
    """Exact top-k by numpy: a real answer to score, without a server."""

    def __init__(self, vectors: np.ndarray, fail: bool) -> None:
        if fail:
            raise ConnectionError("no server here")
        self.vectors = vectors

    def search_one(self, query: np.ndarray, k: int, ef: int) -> np.ndarray:
        return top_k_by_dot(query[None, :], self.vectors, k)[0]

    def labels_one(self, raw: np.ndarray, k: int) -> np.ndarray:
        return raw

    def close(self) -> None:
        pass


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((200, 8)).astype(np.float32)
    queries = rng.standard_normal((20, 8)).astype(np.float32)
    return vectors, queries, top_k_by_dot(queries, vectors, K)


@pytest.mark.parametrize("processes", [False, True])
def test_every_client_search_is_counted_and_scored(processes: bool) -> None:
    vectors, queries, truth = _data()
    x = run_concurrent(Opener(ExactSearcher, (vectors, False)), "exact", queries, truth, K, 0, clients=3, per_client=7,
                       processes=processes)
    assert x.queries == 21 and x.clients == 3
    assert x.recall == 1.0
    assert x.qps > 0 and 0 < x.p50_ms <= x.p99_ms
    assert x.mode == ("processes" if processes else "threads")


def test_a_client_that_cannot_connect_fails_the_run() -> None:
    vectors, queries, truth = _data()
    with pytest.raises(RuntimeError, match="3 of 3 clients failed.*no server here"):
        run_concurrent(Opener(ExactSearcher, (vectors, True)), "exact", queries, truth, K, 0, clients=3, per_client=2)
