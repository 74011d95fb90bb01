"""Write consistency through the public API, the SDK and the CLI: the default rule, changes after creation,
and INVALID_ARGUMENT naming the limits for a factor outside 1..replication_factor (nothing created or changed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shoal
from shoal.serve import LocalCluster

DIM = 4


def test_defaults_update_and_limits(client: shoal.Client, collection_name: str) -> None:
    three = client.create_collection(collection_name, dim=DIM, shards=1, replication_factor=3)
    assert three.write_consistency == 2  # a majority of 3
    assert client.update_collection(collection_name, write_consistency=3).write_consistency == 3
    assert client.describe_collection(collection_name).write_consistency == 3
    for bad in (0, 4):
        with pytest.raises(shoal.InvalidArgument, match=r"between 1 and the replication factor \(3\), got"):
            client.update_collection(collection_name, write_consistency=bad)
    assert client.describe_collection(collection_name).write_consistency == 3
    client.upsert(collection_name, ["a"], [[1.0, 0.0, 0.0, 0.0]])  # W=3 and all three up: acknowledged
    assert client.count(collection_name) == 1
    with pytest.raises(shoal.InvalidArgument, match=r"replication factor \(2\), got 0"):
        client.create_collection(collection_name + "w0", dim=DIM, replication_factor=2, write_consistency=0)
    with pytest.raises(shoal.InvalidArgument, match=r"replication factor \(1\), got 2"):
        client.create_collection(collection_name + "w2", dim=DIM, write_consistency=2)
    assert not {collection_name + "w0", collection_name + "w2"} & {c.name for c in client.list_collections()}
    with pytest.raises(shoal.NotFound):
        client.update_collection("no-such-collection", write_consistency=1)


def test_cli_create_and_update(cluster: LocalCluster, client: shoal.Client, collection_name: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shoal.cli", "--address", cluster.address, *args],
                              capture_output=True, text=True, timeout=120, check=False)

    made = cli("create", collection_name, "--dim", str(DIM), "--replicas", "2", "--write-consistency", "2")
    assert made.returncode == 0, made.stderr
    assert "2 replicas (writes need 2)" in made.stdout
    changed = cli("update", collection_name, "--write-consistency", "1")
    assert changed.returncode == 0 and "once 1 of 2 replicas" in changed.stdout, changed.stderr
    refused = cli("update", collection_name, "--write-consistency", "5")
    assert refused.returncode != 0 and "between 1 and the replication factor (2)" in refused.stderr
    assert client.describe_collection(collection_name).write_consistency == 1
