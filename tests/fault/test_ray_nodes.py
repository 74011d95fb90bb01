"""A cluster of several Ray nodes on one machine: shard nodes on distinct Ray nodes, replicas on distinct
machines, a whole worker machine lost under load (and back later), and the Ray head restarted."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import shoal
from coordinator.catalog import Catalog, CollectionSpec
from shoal.serve import LocalCluster
from tests.support.data import random_vectors
from tests.support.ray_nodes import RayTopology, cluster_on_nodes
from tests.support.threads import CheckedThread, join_all
from tests.support.waiting import wait_until

DIM = 16
SHARDS = 3
BATCH = 20
WORKERS = ("b", "c")
# Ray declares a killed node dead in about 2 s (the topology's health checks), restarts its shard node on a
# survivor, which reopens its partitions from the shared data directory: well within this.
FULL_REPLICATION_WITHIN_S = 45.0
MAX_READ_ERROR_BURST_S = 5.0   # longest run of failed reads while a machine is lost
LOAD_CALL_TIMEOUT_S = 60.0
COORDINATOR_ARGS = ["--compaction-interval-s=0",
                    "--shard-restart-wait-s=30", "--partial-wait-s=0.5",
                    "--ray-check-interval-s=0.5", "--ray-lost-after-s=5", "--rebalance-interval-s=1"]
REBALANCED_WITHIN_S = 60.0
RAY_LOST_WITHIN_S = 30.0
# Names a JSON file that collects each scenario's figures (e.g. bench/out/ray_nodes.json, for BENCHMARKS.md).
FIGURES_ENV = "SHOAL_RAY_NODES_FIGURES"


@pytest.fixture
def multinode(tmp_path: Path) -> Iterator[tuple[RayTopology, LocalCluster]]:
    """A Ray head and two worker machines on loopback, and a coordinator on them; all stopped afterwards."""
    with cluster_on_nodes(tmp_path, WORKERS, COORDINATOR_ARGS) as both:
        yield both


def _record(scenario: str, figures: dict[str, object]) -> None:
    """Print a scenario's figures, and keep them in the file FIGURES_ENV names."""
    print(f"\n{scenario}: {json.dumps(figures)}")
    if os.environ.get(FIGURES_ENV):
        path = Path(os.environ[FIGURES_ENV])
        kept = json.loads(path.read_text()) if path.exists() else {}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**kept, scenario: figures}, indent=1) + "\n")


def _spec(cluster: LocalCluster, name: str) -> CollectionSpec:
    return Catalog(cluster.data_dir).get(name)


def _where(cluster: LocalCluster) -> tuple[dict[int, str], dict[str, str]]:
    """(Ray node id of each shard node, worker name of each Ray node id)."""
    answer = cluster.shard_tool("nodes")
    machine_of = {int(n): w["machine"] for n, w in answer["nodes"].items()}
    names = {node_id: next((r.removeprefix("shoal_host_") for r in res if r.startswith("shoal_host_")), "?")
             for node_id, res in answer["machines"].items()}
    return machine_of, names


def _shard_node_machines(cluster: LocalCluster) -> list[str]:
    """The worker machine each shard node runs on, sorted."""
    machine_of, names = _where(cluster)
    return sorted(names.get(m, "?") for m in machine_of.values())


def _replica_hosts(cluster: LocalCluster, spec: CollectionSpec) -> list[list[str]]:
    """For every shard, the worker machine each of its replicas runs on."""
    machine_of, names = _where(cluster)
    return [[names.get(machine_of[n], "?") for n in replicas] for replicas in spec.placement]


class Load(CheckedThread):
    """Writes numbered batches and searches between them until stopped; records what was acknowledged and
    when each read failed."""

    def __init__(self, address: str, name: str, vectors: np.ndarray, reads: bool, prefix: str = "b") -> None:
        super().__init__()
        self.address, self.name, self.vectors, self.reads, self.prefix = address, name, vectors, reads, prefix
        self.acked: list[int] = []
        self.write_errors: list[str] = []
        self.read_ok = 0
        self.read_failures: list[float] = []
        self.stop = False

    def ids(self, b: int) -> list[str]:
        """Ids of batch b."""
        return [f"{self.prefix}{b}-{i}" for i in range(BATCH)]

    def progressed(self, writes: int = 0, reads: int = 0) -> bool:
        """Whether it has acknowledged `writes` batches and answered `reads` searches (raises if it died)."""
        if self.error is not None:
            raise AssertionError(f"load thread died: {self.error!r}") from self.error
        return len(self.acked) >= writes and self.read_ok >= reads

    def body(self) -> None:
        with shoal.Client(self.address, timeout=LOAD_CALL_TIMEOUT_S, retries=0) as client:
            b = 0
            while not self.stop and (b + 1) * BATCH <= len(self.vectors):
                if self.reads:
                    try:
                        client.search(self.name, self.vectors[b % 50], k=5)
                        self.read_ok += 1
                    except shoal.ShoalError:
                        self.read_failures.append(time.monotonic())
                    time.sleep(0.02)
                    continue
                try:
                    client.upsert(self.name, self.ids(b), self.vectors[b * BATCH:(b + 1) * BATCH])
                except shoal.ShoalError as exc:  # not acknowledged: tried again, as a client would
                    self.write_errors.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.1)
                    continue
                self.acked.append(b)
                b += 1
                time.sleep(0.02)


def _longest_burst(times: list[float], gap: float = 1.0) -> float:
    """Longest stretch of failures with no more than `gap` seconds between two of them."""
    longest, start = 0.0, None
    for prev, t in zip([None, *times], times, strict=False):
        start = t if prev is None or t - prev > gap else start
        longest = max(longest, t - start)
    return longest


def _assert_all_acked_there(client: shoal.Client, name: str, load: Load) -> None:
    want = [i for b in load.acked for i in load.ids(b)]
    found = {d.id for d in client.get(name, want, with_vectors=False)}
    lost = [i for i in want if i not in found]
    assert not lost, f"{len(lost)} acknowledged documents lost, e.g. {lost[:5]}"


def test_replicas_of_every_shard_are_on_distinct_ray_nodes(multinode: tuple[RayTopology, LocalCluster]) -> None:
    """RF=2: one shard node per worker machine, and the two replicas of every shard on different machines."""
    _, cluster = multinode
    with shoal.Client(cluster.address) as client:
        client.create_collection("placed", dim=DIM, shards=4, replication_factor=2)
    assert _shard_node_machines(cluster) == sorted(WORKERS), "shard nodes should be one per worker machine"
    hosts = _replica_hosts(cluster, _spec(cluster, "placed"))
    _record("placement", {"replica_machines_per_shard": hosts})
    assert all(len(set(h)) == 2 and "?" not in h for h in hosts), hosts


def _replica_counts(client: shoal.Client, name: str) -> dict[int, list[int]]:
    """Live documents of every replica of every shard (every replica must answer)."""
    out: dict[int, list[int]] = {}
    for s in sorted(client.describe_collection(name).shard_info, key=lambda s: (s["index"], s["replica"])):
        assert s["available"], f"shard {s['index']} replica {s['replica']} is unavailable: {s['error']}"
        out.setdefault(s["index"], []).append(s["live"])
    return out


def _assert_replicas_agree(client: shoal.Client, name: str, replicas: int) -> int:
    counts = _replica_counts(client, name)
    assert all(len(c) == replicas and len(set(c)) == 1 for c in counts.values()), f"replicas differ: {counts}"
    return sum(c[0] for c in counts.values())


def test_worker_machine_lost_under_load_then_back(multinode: tuple[RayTopology, LocalCluster]) -> None:
    """SIGKILL of a whole worker machine (raylet and every worker) under reads and writes, RF=2: no acknowledged
    write lost, reads go on but for a short burst, its shard nodes come back on the survivor and reopen their
    partitions from the shared data directory; then the machine rejoins and everything stays consistent."""
    topology, cluster = multinode
    name = "lost-machine"
    vectors = random_vectors(BATCH * 2000, DIM, seed=12)
    with shoal.Client(cluster.address) as client:
        client.create_collection(name, dim=DIM, shards=SHARDS, replication_factor=2)
        client.upsert(name, [f"seed-{i}" for i in range(200)], vectors[:200])
        machine_of, names = _where(cluster)
        lost = "c"
        lost_nodes = sorted(n for n, m in machine_of.items() if names[m] == lost)
        assert lost_nodes, f"no shard node on machine {lost}: {machine_of}"

        writer = Load(cluster.address, name, vectors[200:], reads=False)
        reader = Load(cluster.address, name, vectors, reads=True)
        writer.start()
        reader.start()
        wait_until(lambda: writer.progressed(writes=5) and reader.progressed(reads=5), 60, "load under way")
        acked_before = len(writer.acked)
        killed_at = time.monotonic()
        pids = topology.kill_worker(lost)
        # Full replication: every replica of every shard answers again (describe asks each one, waiting for
        # shard nodes that Ray is restarting).
        wait_until(lambda: _replica_counts(client, name), FULL_REPLICATION_WITHIN_S, "every replica back",
                   interval=0.2)
        back_after = time.monotonic() - killed_at
        wait_until(lambda: writer.progressed(writes=acked_before + 10), 30, "writes to resume")
        time.sleep(1.0)
        writer.stop = reader.stop = True
        join_all([writer, reader], timeout=120)

        machine_after, names_after = _where(cluster)
        burst = _longest_burst(reader.read_failures)
        _record("worker machine lost", {
            "machine": lost, "shard_nodes_on_it": lost_nodes, "processes_killed": len(pids),
            "full_replication_after_s": round(back_after, 2), "reads_ok": reader.read_ok,
            "reads_failed": len(reader.read_failures), "longest_read_error_burst_s": round(burst, 2),
            "batches_acked": len(writer.acked), "write_attempts_failed": len(writer.write_errors)})
        assert {names_after[m] for m in machine_after.values()} == {"b"}, "the lost shard nodes run on the survivor"
        assert back_after <= FULL_REPLICATION_WITHIN_S
        assert burst <= MAX_READ_ERROR_BURST_S, f"reads failed for {burst:.1f}s in a row"
        assert reader.read_ok > len(reader.read_failures)
        _assert_all_acked_there(client, name, writer)
        total = _assert_replicas_agree(client, name, 2)
        assert total >= 200 + BATCH * len(writer.acked)

        # The lost machine rejoins: a shard node moves back to it (under writes), nothing is lost, the replicas
        # of every shard are on distinct machines again, and a new collection works.
        more = Load(cluster.address, name, vectors[200 + BATCH * 1000:], reads=False, prefix="m")
        more.start()
        rejoined_at = time.monotonic()
        topology.start_worker(lost)
        wait_until(lambda: _shard_node_machines(cluster) == sorted(WORKERS), REBALANCED_WITHIN_S,
                   "a shard node to move back to the machine", interval=1)
        rebalanced = time.monotonic() - rejoined_at
        target = len(more.acked) + 5
        wait_until(lambda: more.progressed(writes=target), 60, "writes after the move")
        more.stop = True
        more.join(timeout=60)
        hosts = _replica_hosts(cluster, _spec(cluster, name))
        _record("worker machine back", {"one_shard_node_per_machine_after_s": round(rebalanced, 2),
                                        "batches_acked": len(more.acked),
                                        "write_attempts_failed": len(more.write_errors),
                                        "replica_machines_per_shard": hosts})
        assert all(len(set(h)) == 2 for h in hosts), f"replicas share a machine after the move back: {hosts}"
        _assert_all_acked_there(client, name, writer)
        _assert_all_acked_there(client, name, more)
        assert _assert_replicas_agree(client, name, 2) == client.count(name) >= total + BATCH * len(more.acked)
        client.create_collection("after-rejoin", dim=DIM, shards=2, replication_factor=2)
        client.upsert("after-rejoin", ["x", "y"], vectors[:2])
        assert [h.id for h in client.search("after-rejoin", vectors[0], k=1)] == ["x"]


def test_ray_head_restarted(multinode: tuple[RayTopology, LocalCluster]) -> None:
    """The Ray head stopped and started again on the same port (no GCS fault tolerance: every actor is lost with
    it): the coordinator reconnects, re-creates the shard nodes, which reopen their partitions from disk, and no
    acknowledged write is lost."""
    topology, cluster = multinode
    name = "head-restart"
    vectors = random_vectors(BATCH * 2000, DIM, seed=13)
    with shoal.Client(cluster.address, timeout=LOAD_CALL_TIMEOUT_S) as client:
        client.create_collection(name, dim=DIM, shards=SHARDS, replication_factor=2)
        writer = Load(cluster.address, name, vectors, reads=False)
        writer.start()
        wait_until(lambda: writer.progressed(writes=10), 60, "writes under way")
        restarted_at = time.monotonic()
        topology.restart_head()
        head_back = time.monotonic() - restarted_at
        # The coordinator notices that its Ray cluster is gone and exits; its supervisor (Kubernetes, here the
        # test) starts it again, and the new one joins the new head and re-creates the shard nodes.
        code = wait_until(lambda: cluster.wait_nonblocking(), RAY_LOST_WITHIN_S, "the coordinator to exit")
        exited = time.monotonic() - restarted_at
        cluster.start_coordinator()
        serving = time.monotonic() - restarted_at
        acked_at_restart = len(writer.acked)
        wait_until(lambda: writer.progressed(writes=acked_at_restart + 10), 90, "writes to resume")
        back_after = time.monotonic() - restarted_at
        writer.stop = True
        writer.join(timeout=120)
        _record("ray head restarted", {
            "ray_nodes_back_after_s": round(head_back, 2), "coordinator_exit_code": code,
            "coordinator_exited_by_s": round(exited, 2), "coordinator_serving_after_s": round(serving, 2),
            "writes_resumed_after_s": round(back_after, 2), "batches_acked": len(writer.acked),
            "write_attempts_failed": len(writer.write_errors), "first_errors": writer.write_errors[:2]})
        _assert_all_acked_there(client, name, writer)
        assert client.count(name) >= BATCH * len(writer.acked)
        assert _shard_node_machines(cluster) == sorted(WORKERS), "one shard node per machine again"
        # A write in flight when the head went down may have reached one replica only: the repair loop of the
        # new coordinator catches the other up from its peer (the replicas' own LSNs say which is behind).
        wait_until(lambda: all(len(set(c)) == 1 for c in _replica_counts(client, name).values()), 30,
                   "the replicas of every shard to converge after the head restart")
