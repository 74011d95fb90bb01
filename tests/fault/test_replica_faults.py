"""Replicas through a hung node and a coordinator crash (RF=2, write consistency 1, real cluster): writes and
reads keep being served while one shard node is frozen, the replicas converge after it thaws, and a coordinator
SIGKILLed while a replica lags loses nothing and serves no deleted document after its restart. The scenarios
are bench/fault.py's, shorter."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.request
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

import shoal
from bench.fault import COORDINATOR_ARGS, DIM, converged, coordinator_kill, frozen_pid, hang, time_to_converge
from protos import shard_pb2, shard_pb2_grpc
from protos.wire import pack_matrix
from shoal.serve import LocalCluster
from tests.support.waiting import wait_until

HANG_S = 10.0
CONVERGE_S = 30.0


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Two shard nodes, no embedder, a fast repair loop."""
    lc = LocalCluster(tmp_path_factory.mktemp("replicas"), embedder=False, coordinator_args=COORDINATOR_ARGS,
                      metrics_port=0)
    lc.start()
    try:
        yield lc
    finally:
        lc.stop()


def test_a_frozen_node_keeps_writes_and_reads_served_and_replicas_converge_after(replicated: LocalCluster) -> None:
    res = hang(replicated, "hung", healthy_s=2.0, hang_s=HANG_S, after_s=1.0)
    print(f"\nhung replica: {res}")
    hung_writes, hung_reads = res["writes"].get("hung", {}), res["reads"].get("hung", {})
    assert sum(hung_writes.values()) >= 50 and sum(hung_reads.values()) >= 50, "the load must run while hung"
    assert res["writes_acked_while_hung"] >= 0.99, hung_writes
    assert res["reads_answered_while_hung"] >= 0.999, hung_reads
    assert res["seconds_to_catch_up_after_sigcont"] <= CONVERGE_S
    assert res["seconds_to_converge_after_sigcont"] <= CONVERGE_S
    assert res["acked_writes_lost"] == 0 and res["acked_deletes_undone"] == 0
    assert res["reads_returning_deleted"] == 0 and res["reads_missing_acked"] == 0
    with shoal.Client(replicated.address) as c:
        info = c.describe_collection("hung", checksums=True).shard_info
    assert {s["replica"] for s in info} == {0, 1} and all(s["checksum"] for s in info)


def test_a_coordinator_killed_while_a_replica_lags_loses_nothing_and_replicas_converge(
        replicated: LocalCluster) -> None:
    res = coordinator_kill(replicated, "lagging", lag_s=4.0)
    print(f"\ncoordinator killed: {res}")
    assert res["writes"].get("lagging", {}).get("ok", 0) >= 20, "writes must be acknowledged while a replica lags"
    assert res["seconds_to_converge_after_restart"] <= CONVERGE_S
    assert res["acked_writes_lost"] == 0 and res["acked_deletes_undone"] == 0
    assert res["reads_returning_deleted"] == 0 and res["reads_missing_acked"] == 0


def test_a_replica_behind_a_peer_whose_wal_a_snapshot_dropped_is_caught_up_from_a_copy(
        replicated: LocalCluster) -> None:
    """While replica 1 is frozen, replica 0 rebuilds (its new snapshot drops the WAL replica 1 would need): the
    repair loop copies replica 0's documents, then its WAL tail; deletes made meanwhile stay deleted."""
    name = "copied"
    with shoal.Client(replicated.address) as c:
        c.create_collection(name, dim=DIM, metric="l2", shards=1, replication_factor=2)
        vecs = np.random.default_rng(3).standard_normal((400, DIM)).astype(np.float32)
        c.upsert(name, [f"c{i}" for i in range(300)], vecs[:300])
        pid = frozen_pid(replicated, name)
        os.kill(pid, signal.SIGSTOP)
        try:
            c.upsert(name, [f"c{i}" for i in range(300, 400)], vecs[300:])
            c.delete(name, [f"c{i}" for i in range(50)])
            before = copies(replicated)
            c.compact(name)  # replica 0 rebuilds now; replica 1's rebuild waits for it to thaw

            def rebuilt() -> bool:
                r0 = [s for s in c.describe_collection(name, allow_partial=True).shard_info if s["replica"] == 0]
                return r0[0]["rebuild"]["last_finished_at"] > 0

            wait_until(rebuilt, 60, "replica 0's rebuild")
            c.delete(name, ["c399"])
        finally:
            os.kill(pid, signal.SIGCONT)
        assert time_to_converge(c, name) <= CONVERGE_S
        assert copies(replicated) > before, "the catch-up must have gone through a copy"
        assert c.count(name) == 349
        assert c.get(name, [f"c{i}" for i in range(50)] + ["c399"]) == []
        info = c.describe_collection(name, checksums=True).shard_info
        assert info[0]["checksum"] == info[1]["checksum"] and info[0]["live"] == info[1]["live"] == 349


def test_replicas_at_one_lsn_with_other_content_are_detected_and_repaired_by_the_rule(
        replicated: LocalCluster) -> None:
    """Both replicas take a different record under the same LSN behind the coordinator's back (what a lost W=1
    write leaves): the checksum comparison finds it and, on the RF=2 tie, replica 0's content wins."""
    name = "diverged"
    rng = np.random.default_rng(5)
    with shoal.Client(replicated.address) as c:
        c.create_collection(name, dim=DIM, metric="l2", shards=1, replication_factor=2)
        c.upsert(name, [f"d{i}" for i in range(20)], rng.standard_normal((20, DIM)).astype(np.float32))
        wait_until(lambda: converged(c, name), CONVERGE_S, "the replicas to agree before the test diverges them")
        before = metric(replicated, "shoal_coordinator_divergences_total")
        uid = next(s["uid"] for s in json.loads((replicated.data_dir / "catalog.json").read_text())["collections"]
                   if s["name"] == name)
        mine = {r: rng.standard_normal((1, DIM)).astype(np.float32) for r in (0, 1)}
        for s in c.describe_collection(name).shard_info:
            with grpc.insecure_channel(s["address"]) as channel:
                lsn = shard_pb2_grpc.ShardStub(channel).Upsert(shard_pb2.ShardUpsertRequest(
                    partition=f"{name}-{uid}/0/{s['replica']}", ids=["x"], vectors=pack_matrix(mine[s["replica"]])),
                    timeout=10).lsn
                assert lsn == 2
        assert time_to_converge(c, name) <= CONVERGE_S
        assert metric(replicated, "shoal_coordinator_divergences_total") > before
        for _ in range(4):  # whichever replica answers: replica 0's record
            np.testing.assert_array_equal(c.get(name, ["x"], with_vectors=True)[0].vector, mine[0][0])
        assert c.count(name) == 21


def metric(lc: LocalCluster, family: str, labels: str = "") -> float:
    """One sample of the coordinator's metrics (0 when it has none yet)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{lc.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.search(rf"^{family}{re.escape(labels)} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def copies(lc: LocalCluster) -> float:
    """How many catch-ups the coordinator has done by copying a peer."""
    return metric(lc, "shoal_coordinator_catchups_total", '{how="copy"}')
