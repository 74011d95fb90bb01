"""Shared fixtures: a real local cluster (Ray head, shard actors, coordinator) on loopback ports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import shoal
from shoal.serve import LocalCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for the whole session; always stopped at the end."""
    lc = LocalCluster(tmp_path_factory.mktemp("cluster"))
    lc.start()
    try:
        yield lc
    finally:
        lc.stop()


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[shoal.Client]:
    """An SDK client of the session cluster."""
    with shoal.Client(cluster.address) as c:
        yield c


@pytest.fixture
def collection_name(client: shoal.Client) -> Iterator[str]:
    """A fresh collection name, dropped after the test if it was created."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    if any(c.name == name for c in client.list_collections()):
        client.drop_collection(name)
