"""A cluster whose shard data lives on a real small filesystem (tmpfs): a full disk answers RESOURCE_EXHAUSTED
naming the collection, shard and path, a read-only one UNAVAILABLE; nothing acknowledged is lost, reads go on,
and writes resume without a restart once space (or write access) is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import shoal
from shoal.serve import LocalCluster
from tests.support.tmpfs import fill, free, set_read_only, small_tmpfs

DIM = 32
BIG = 2000  # documents in a write that cannot fit in the slack of the WAL's last page


@pytest.fixture(scope="module")
def disk_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, Path]]:
    """A cluster (no embedder) whose shard data directory is a 48 MiB tmpfs."""
    base = tmp_path_factory.mktemp("disk-full")
    with small_tmpfs(base / "shards", 48 << 20) as disk, \
            LocalCluster(base / "cluster", embedder=False, coordinator_args=[f"--shard-data-dir={disk}"]) as lc:
        yield lc, disk


def batch(start: int, n: int) -> tuple[list[str], np.ndarray, list[dict]]:
    """n documents numbered from start."""
    ids = [f"d{i}" for i in range(start, start + n)]
    return ids, np.random.default_rng(start).standard_normal((n, DIM)), [{"n": i} for i in range(start, start + n)]


def held(client: shoal.Client, name: str, ids: list[str]) -> int:
    """How many of ids the collection holds."""
    return sum(len(client.get(name, ids[i:i + 1000], with_vectors=False)) for i in range(0, len(ids), 1000))


def test_full_then_read_only_disk(disk_cluster: tuple[LocalCluster, Path]) -> None:
    lc, disk = disk_cluster
    # One shard: its WAL is the filesystem's only open file, so it can be remounted read-only below.
    with shoal.Client(lc.address, retries=2, backoff=0.05) as client:
        client.create_collection("full", dim=DIM, shards=1)
        ids, vectors, payloads = batch(0, 500)
        client.upsert("full", ids, vectors, payloads)
        acked = list(ids)
        probe = vectors[7]
        fill(disk)
        try:
            big = batch(500, BIG)
            with pytest.raises(shoal.ResourceExhausted) as info:
                client.upsert("full", *big)
            message = str(info.value)
            assert "collection 'full' shard 0 replica 0" in message and str(disk) in message, message
            assert "no space" in message and "ENOSPC" in message
            assert client.count("full") == 500 and held(client, "full", big[0]) == 0  # nothing of it applied
            assert client.search("full", vector=probe, k=1)[0].id == "d7"  # reads go on
            shard = client.describe_collection("full").shard_info[0]
            assert "ENOSPC" in shard["disk_error"]
        finally:
            free(disk)
        client.upsert("full", *big)  # no restart
        acked += big[0]
        assert client.describe_collection("full").shard_info[0]["disk_error"] == ""

        fill(disk)
        with pytest.raises(shoal.ResourceExhausted):
            client.upsert("full", *batch(3000, BIG))
        free(disk)
        set_read_only(disk, True)
        try:
            with pytest.raises(shoal.Unavailable) as info:
                client.upsert("full", *batch(3000, BIG))
            assert "read-only" in str(info.value) and "EROFS" in str(info.value) and str(disk) in str(info.value)
            assert client.search("full", vector=probe, k=1)[0].id == "d7"
        finally:
            set_read_only(disk, False)
        later = batch(3000, BIG)
        client.upsert("full", *later)
        acked += later[0]
        assert client.count("full") == len(acked) == held(client, "full", acked)
        client.drop_collection("full")
