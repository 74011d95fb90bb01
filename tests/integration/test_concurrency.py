"""Concurrent writers and readers through the cluster: no errors, nothing lost, reads see whole documents."""

from __future__ import annotations

import threading
import time

import numpy as np

import shoal
from shoal.serve import LocalCluster
from tests.support.data import random_vectors
from tests.support.threads import CheckedThread, join_all

DIM = 16
WRITERS = 3
BATCHES_PER_WRITER = 40
BATCH = 50
READERS = 3
READ_SECONDS_MAX = 120


def test_parallel_upserts_deletes_and_searches(cluster: LocalCluster, collection_name: str) -> None:
    """Writers upsert and delete their own ids while readers search, get and count; the end state is exact."""
    with shoal.Client(cluster.address) as setup:
        setup.create_collection(collection_name, dim=DIM, shards=3)
    vectors = random_vectors(WRITERS * BATCHES_PER_WRITER * BATCH, DIM, seed=11)
    errors: list[str] = []
    done = threading.Event()
    reads = [0] * READERS

    def writer(w: int) -> None:
        with shoal.Client(cluster.address) as c:
            for b in range(BATCHES_PER_WRITER):
                start = (w * BATCHES_PER_WRITER + b) * BATCH
                ids = [f"w{w}-{i}" for i in range(start, start + BATCH)]
                try:
                    c.upsert(collection_name, ids, vectors[start:start + BATCH], [{"w": w, "i": i} for i in
                                                                                  range(start, start + BATCH)])
                    if b % 4 == 3:  # delete the first ten of every fourth batch
                        c.delete(collection_name, ids[:10])
                except shoal.ShoalError as exc:
                    errors.append(f"writer {w}: {exc}")

    def reader(r: int) -> None:
        rng = np.random.default_rng(r)
        deadline = time.monotonic() + READ_SECONDS_MAX
        with shoal.Client(cluster.address) as c:
            while not done.is_set() and time.monotonic() < deadline:
                try:
                    hits = c.search(collection_name, rng.standard_normal(DIM), k=5)
                    for h in hits:  # a hit is a whole document: its payload names its own id
                        assert h.id == f"w{h.payload['w']}-{h.payload['i']}"
                    c.count(collection_name)
                    reads[r] += 1
                except (shoal.ShoalError, AssertionError) as exc:
                    errors.append(f"reader {r}: {exc}")

    threads = [CheckedThread(target=writer, args=(w,)) for w in range(WRITERS)]
    threads += [CheckedThread(target=reader, args=(r,)) for r in range(READERS)]
    for t in threads:
        t.start()
    try:
        join_all(threads[:WRITERS], timeout=READ_SECONDS_MAX + 60)
    finally:
        done.set()
        join_all(threads[WRITERS:], timeout=60)

    assert errors == []
    assert min(reads) > 0
    total = WRITERS * BATCHES_PER_WRITER * BATCH
    deleted = WRITERS * (BATCHES_PER_WRITER // 4) * 10
    with shoal.Client(cluster.address) as c:
        assert c.count(collection_name) == total - deleted
        probe = [f"w1-{i}" for i in range(BATCHES_PER_WRITER * BATCH, 2 * BATCHES_PER_WRITER * BATCH)]
        got = {d.id: d for d in c.get(collection_name, probe)}
        for offset, doc_id in enumerate(probe):
            b, pos = divmod(offset, BATCH)
            assert (doc_id in got) == (not (b % 4 == 3 and pos < 10))
            if doc_id in got:
                np.testing.assert_array_equal(got[doc_id].vector, vectors[BATCHES_PER_WRITER * BATCH + offset])
    print(f"\nreads per reader: {reads}")
