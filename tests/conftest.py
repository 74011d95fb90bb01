"""Shared fixtures: a real local cluster (Ray head, shard actors, coordinator) on loopback ports, and a check
that the suite leaves no process behind."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

import shoal
from shoal.serve import LocalCluster
from tests.support.processes import SESSION_ENV, describe, kill_all, suite_processes
from tests.support.waiting import wait_until

LEFTOVER_GRACE_S = 30.0  # Ray workers take a few seconds to follow their raylet out


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Marks every process the session starts; at its end (after every other fixture stopped what it started)
    fails if one still runs, and ends those."""
    marker = uuid.uuid4().hex
    os.environ[SESSION_ENV] = marker
    basetemp = tmp_path_factory.getbasetemp()
    yield
    try:
        wait_until(lambda: not suite_processes(marker, basetemp), LEFTOVER_GRACE_S, "the suite's processes to end",
                   interval=0.5)
    except AssertionError:
        left = suite_processes(marker, basetemp)
        report = describe(left)
        kill_all(left)
        pytest.fail(f"{len(left)} processes the test suite started were still running at its end (now killed):\n"
                    f"{report}", pytrace=False)


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
