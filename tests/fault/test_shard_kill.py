"""A shard actor killed in the middle of an ingest comes back by itself and loses no acknowledged write."""

from __future__ import annotations

import time

import numpy as np
import pytest

import shoal
from shoal.serve import LocalCluster
from tests.support.data import random_vectors
from tests.support.threads import CheckedThread
from tests.support.waiting import wait_until

DIM = 32
BATCH = 100
BATCHES = 150
KILL_AFTER_BATCHES = 10
PAUSE_S = 0.05  # spreads the ingest so that the kill (a few seconds to deliver) lands in its middle


class Writer(CheckedThread):
    """Upserts numbered batches, remembering which were acknowledged and which raised."""

    def __init__(self, client: shoal.Client, name: str, vectors: np.ndarray) -> None:
        super().__init__()
        self.client, self.name, self.vectors = client, name, vectors
        self.acked: list[int] = []
        self.failed: dict[int, str] = {}

    def ids(self, b: int) -> list[str]:
        """Ids of batch b."""
        return [f"b{b}-{i}" for i in range(BATCH)]

    def body(self) -> None:
        for b in range(BATCHES):
            try:
                self.client.upsert(self.name, self.ids(b), self.vectors[b * BATCH:(b + 1) * BATCH])
                self.acked.append(b)
                time.sleep(PAUSE_S)
            except shoal.ShoalError as exc:
                self.failed[b] = f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("how", ["ray", "sigkill"])
def test_shard_killed_mid_ingest_recovers_every_acked_write(cluster: LocalCluster, client: shoal.Client,
                                                            collection_name: str, how: str) -> None:
    """ray.kill or SIGKILL of a shard actor during an ingest: it restarts, acked writes all there, others whole."""
    client.create_collection(collection_name, dim=DIM, shards=3)
    vectors = random_vectors(BATCH * BATCHES, DIM, seed=7)
    writer = Writer(client, collection_name, vectors)
    writer.start()
    wait_until(lambda: len(writer.acked) >= KILL_AFTER_BATCHES or not writer.is_alive(), 120,
               f"{KILL_AFTER_BATCHES} acknowledged batches", interval=0.01)
    before = cluster.shard_tool("kill", collection_name, 0, how)
    acked_at_kill = len(writer.acked)
    writer.join(timeout=300)  # raises if the writer died of anything but a ShoalError, or still runs
    after = cluster.shard_tool("locate", collection_name, 0)
    print(f"\n{how}: node of shard 0, pid {before['pid']} -> {after['pid']}; batches acked at kill "
          f"{acked_at_kill}, acked {len(writer.acked)}, failed {len(writer.failed)} {writer.failed}")
    assert acked_at_kill < BATCHES, "the kill should land mid-ingest"
    assert after["pid"] != before["pid"], "Ray should have restarted the shard actor in a new process"

    expected = 0
    for b in range(BATCHES):
        docs = client.get(collection_name, writer.ids(b))
        rows = vectors[b * BATCH:(b + 1) * BATCH]
        if b in writer.acked:
            assert len(docs) == BATCH, f"acknowledged batch {b} lost {BATCH - len(docs)} documents"
        for d in docs:  # whatever is there is whole: the vector that was sent
            np.testing.assert_array_equal(d.vector, rows[int(d.id.split("-")[1])])
        expected += len(docs)
    assert client.count(collection_name) == expected
    hits = client.search(collection_name, vectors[5], k=1)
    assert hits[0].id == "b0-5"
