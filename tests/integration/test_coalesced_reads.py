"""Concurrent searches through a real cluster travel to the shard nodes in batches (the coordinator's
coalesced-reads counter rises) and every client still gets exactly its own answer: the brute-force top-k."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import shoal
from shoal.serve import LocalCluster
from tests.support.data import random_vectors
from tests.support.threads import CheckedThread, join_all

pytestmark = pytest.mark.slow

DIM, N, K, CLIENTS, SEARCHES = 16, 2000, 10, 8, 40
NAME = "coalesced"
FAMILY = "shoal_coordinator_coalesced_reads_total"


@pytest.fixture(scope="module")
def lc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster without the embedder, metrics on."""
    with LocalCluster(Path(tmp_path_factory.mktemp("coalesced")), embedder=False, metrics_port=0) as cluster:
        yield cluster


def _coalesced(lc: LocalCluster) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{lc.metrics_port}/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(FAMILY + " "))


def test_concurrent_searches_are_batched_and_each_gets_the_exact_top_k(lc: LocalCluster) -> None:
    """8 clients search at once (plain and filtered); each answer equals numpy's exact top-k of its own query."""
    docs = random_vectors(N, DIM, seed=3)
    with shoal.Client(lc.address) as c:
        c.create_collection(NAME, dim=DIM, shards=3, metric="l2", fields={"n": "int"})
        c.upsert(NAME, [f"d{i}" for i in range(N)], docs, [{"n": i} for i in range(N)])
    before = _coalesced(lc)
    queries = random_vectors(CLIENTS * SEARCHES, DIM, seed=4)
    d2 = ((queries[:, None, :] - docs[None, :, :]) ** 2).sum(axis=2)
    wrong: list[str] = []

    def client(t: int) -> None:
        with shoal.Client(lc.address) as c:
            for j in range(SEARCHES):
                i = t * SEARCHES + j
                filtered = j % 2 == 1
                hits = c.search(NAME, queries[i], k=K, ef=400, filter="n<1000" if filtered else None)
                dist = np.where(np.arange(N) < 1000, d2[i], np.inf) if filtered else d2[i]
                want = [f"d{x}" for x in np.argsort(dist, kind="stable")[:K]]
                got = [h.id for h in hits]
                if got != want or any(h.payload["n"] != int(h.id[1:]) for h in hits):
                    wrong.append(f"client {t} query {i}: {got} != {want}")

    threads = [CheckedThread(target=client, args=(t,)) for t in range(CLIENTS)]
    for t in threads:
        t.start()
    join_all(threads, timeout=300)
    assert not wrong, wrong[:3]
    assert _coalesced(lc) > before  # some searches left in a batch with others
