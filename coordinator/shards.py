"""Where shard nodes live: the one module that talks to Ray (starting, finding, killing shard node actors)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from coordinator.catalog import CollectionSpec
from coordinator.placement import spread
from coordinator.settings import CoordinatorSettings
from protos.errors import Unavailable
from shard_node.actor import ShardNodeActor
from shard_node.settings import PartitionSpec, ShardSettings

_ACTOR_PREFIX = "shard-"       # every shard actor Shoal ever named (per-shard actors of older versions too)
_NODE_PREFIX = "shard-node-"
# Share of the shard resource one shard node asks for: a Ray node offering one unit can take many shard
# nodes, so Ray can restart those of a lost Ray node on a surviving one (a whole unit each would leave no room).
SHARD_RESOURCE_SHARE = 0.001
log = logging.getLogger("shoal.coordinator.shards")


class _RayShardNode(ShardNodeActor):
    """The shard node as Ray runs it: its info also names the Ray node (machine) it runs on."""

    def info(self) -> dict[str, Any]:
        """Where this node serves, which process and which Ray node it is."""
        return {**super().info(), "machine": ray.get_runtime_context().get_node_id()}


_RemoteNode = ray.remote(_RayShardNode)


@dataclass(frozen=True)
class ShardLocation:
    """Where one shard node serves right now."""

    address: str
    pid: int
    host: str
    metrics_port: int
    machine: str = ""  # the Ray node id it runs on


def node_name(node: int) -> str:
    """Ray name of a shard node actor."""
    return f"{_NODE_PREFIX}{node}"


def replicas_of(spec: CollectionSpec) -> range:
    """The replica numbers of every shard of a collection."""
    return range(max(spec.replication_factor, 1))


def connect(address: str, namespace: str) -> None:
    """Join the Ray cluster at `address`, or start a local Ray instance when it is empty."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, namespace=namespace, log_to_driver=False)
    else:
        ray.init(address="local", namespace=namespace, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")


def cluster_answers() -> bool:
    """Whether the Ray cluster this process joined answers (a lost head raises, hangs, or ends the process)."""
    return bool(ray.cluster_resources())


def disconnect() -> None:
    """Leave Ray (stops a local instance this process started)."""
    if ray.is_initialized():
        ray.shutdown()


class ShardPlacer:
    """Starts, finds and kills shard node actors, and says where each partition's data lives."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self._settings = settings
        self._namespace = settings.ray_namespace
        root = settings.shard_data_dir or str(Path(settings.data_dir).resolve() / "collections")
        self._root = Path(root)
        self._shard_settings = ShardSettings(
            bind_host=settings.shard_bind_host, max_message_bytes=settings.max_message_bytes,
            metrics_port=0 if settings.shard_metrics else -1,
            tls_cert=settings.shard_tls_cert, tls_key=settings.shard_tls_key,
            tls_client_ca=settings.shard_tls_client_ca, event_loop=settings.event_loop,
        ).to_dict()

    def data_dir(self, spec: CollectionSpec, index: int, replica: int) -> str:
        """Where a shard replica's snapshots and WAL live (the same layout as before shard nodes)."""
        leaf = f"shard-{index}" if replica == 0 else f"shard-{index}-r{replica}"
        return str(self._root / f"{spec.name}-{spec.uid}" / leaf)

    def partition_spec(self, spec: CollectionSpec) -> PartitionSpec:
        """What each partition of a collection is."""
        return PartitionSpec(dim=spec.dim, metric=spec.metric, m=spec.m, ef_construction=spec.ef_construction,
                             ef_search=spec.ef_search, fields=dict(spec.fields), storage=spec.storage)

    def machines(self) -> list[str]:
        """Ids of the live Ray nodes that may host shard nodes: those offering the shard resource, else those
        with CPUs (a head started with none hosts no shards); in a stable order."""
        key = self._settings.shard_ray_resource or "CPU"
        return sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get(key, 0) > 0)

    def node_count(self) -> int:
        """How many shard nodes this deployment runs: the setting, else one per Ray node offering the shard
        resource (one per KubeRay worker pod), else one per CPU of the Ray cluster; at least 1."""
        if self._settings.shard_nodes > 0:
            return self._settings.shard_nodes
        if self._settings.shard_ray_resource:
            return max(len(self.machines()), 1)
        return max(int(ray.cluster_resources().get("CPU", 1)), 1)

    def _create(self, node: int, machine: str) -> Any:
        node_dir = str(self._root / "nodes" / f"node-{node}")
        return _RemoteNode.options(**self.actor_options(node, machine)).remote(node_dir, self._shard_settings)

    def actor_options(self, node: int, machine: str = "") -> dict[str, Any]:
        """Ray options of a shard node actor: named, detached, restarted forever, on a Ray node offering the shard
        resource, preferably `machine` (soft affinity: Ray restarts it elsewhere when that machine is gone)."""
        resource = self._settings.shard_ray_resource
        options = {"name": node_name(node), "namespace": self._namespace, "lifetime": "detached",
                   "get_if_exists": True, "max_restarts": -1, "max_task_retries": -1, "num_cpus": 0,
                   "resources": {resource: SHARD_RESOURCE_SHARE} if resource else {}}
        if machine:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(machine, soft=True)
        return options

    def _existing(self, node: int) -> Any | None:
        try:
            return ray.get_actor(node_name(node), namespace=self._namespace)
        except ValueError:
            return None

    def ensure(self, nodes: int) -> list[ShardLocation]:
        """Start (or find) shard nodes 0..nodes-1 and wait until each serves (it reopens its partitions first).
        Missing ones are spread over the machines, least used first, so shard nodes land on distinct Ray nodes."""
        handles = {n: h for n in range(nodes) if (h := self._existing(n)) is not None}
        found = {n: self._info(h) for n, h in handles.items()}
        used = Counter(w.machine for w in found.values())
        for n, machine in spread([n for n in range(nodes) if n not in handles], self.machines(), used).items():
            handles[n] = self._create(n, machine)
        return [found.get(n) or self._info(handles[n]) for n in range(nodes)]

    def locate(self, node: int) -> ShardLocation:
        """Where a shard node serves now, waiting for it if Ray is restarting it (re-creating it when Ray lost it,
        as after a restart of a Ray head without GCS fault tolerance)."""
        handle = self._existing(node)
        if handle is None:
            handle = self._create(node, spread([node], self.machines(), Counter())[node])
        return self._info(handle)

    def _info(self, handle: Any) -> ShardLocation:
        try:
            info = ray.get(handle.info.remote(), timeout=self._settings.shard_restart_wait_s)
        except (GetTimeoutError, RayActorError) as exc:
            raise Unavailable(f"shard node did not come up within {self._settings.shard_restart_wait_s}s: "
                              f"{exc}") from None
        return ShardLocation(**info)

    def running_nodes(self) -> dict[int, ShardLocation]:
        """Every shard node actor of this namespace and where it serves (waiting for those Ray restarts)."""
        names = [n for n in self.shard_actors() if n.startswith(_NODE_PREFIX)]
        return {int(n.removeprefix(_NODE_PREFIX)): self._info(ray.get_actor(n, namespace=self._namespace))
                for n in names}

    def rebalance(self) -> int | None:
        """Move one shard node from the machine running the most of them to a machine running none (one that
        joined, or came back after its shard nodes moved away); returns the node moved, None when balanced.
        The node reopens its partitions from the shared data directory there; its peers' replicas serve reads
        meanwhile."""
        where = self.running_nodes()  # first: it waits for nodes Ray is restarting, after their machine died
        machines = self.machines()
        used = Counter({m: 0 for m in machines})
        used.update(w.machine for w in where.values() if w.machine in used)
        empty = [m for m in machines if used[m] == 0]
        crowded = max(machines, key=lambda m: used[m], default="")
        if not empty or used[crowded] < 2:
            return None
        node = max(n for n, w in where.items() if w.machine == crowded)
        ray.kill(ray.get_actor(node_name(node), namespace=self._namespace), no_restart=True)
        deadline = time.monotonic() + self._settings.shard_restart_wait_s
        while self._existing(node) is not None:  # the name is free once Ray has ended the old actor
            if time.monotonic() > deadline:
                raise Unavailable(f"shard node {node} did not stop within {self._settings.shard_restart_wait_s}s")
            time.sleep(0.1)
        self._info(self._create(node, spread([node], empty, Counter())[node]))
        log.warning("moved shard node %d from Ray node %s (running %d shard nodes) to Ray node %s (running none)",
                    node, crowded, used[crowded], empty[0])
        return node

    def machine_resources(self) -> dict[str, dict[str, float]]:
        """The resources every live Ray node offers, by node id."""
        return {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}

    def remove_collection_dir(self, spec: CollectionSpec) -> None:
        """Delete what is left of a dropped collection's data on this machine."""
        shutil.rmtree(self._root / f"{spec.name}-{spec.uid}", ignore_errors=True)

    def shard_actors(self) -> list[str]:
        """Names of every shard actor (node, or a per-shard actor of an older version) in this namespace."""
        return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                      if a["namespace"] == self._namespace and a["name"].startswith(_ACTOR_PREFIX))

    def reap_legacy(self) -> list[str]:
        """Stop per-shard actors left by a version before shard nodes (their data is reopened by nodes)."""
        legacy = [name for name in self.shard_actors() if not name.startswith(_NODE_PREFIX)]
        for name in legacy:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=self._namespace), no_restart=True)
            log.warning("stopped per-shard actor %s of an older version; a shard node hosts its data now", name)
        return legacy

    def kill_node(self, node: int, how: str = "ray") -> ShardLocation:
        """Kill a shard node the hard way (for fault tests and chaos): `ray` = ray.kill, `sigkill`, or `sigstop`
        (freeze it; `sigcont` thaws it)."""
        handle = ray.get_actor(node_name(node), namespace=self._namespace)
        where = self._info(handle)
        signals = {"sigkill": signal.SIGKILL, "sigstop": signal.SIGSTOP}
        if how in signals:
            os.kill(where.pid, signals[how])
        else:
            ray.kill(handle, no_restart=False)
        return where

    def kill(self, spec: CollectionSpec, index: int, how: str = "ray", replica: int = 0) -> ShardLocation:
        """Kill the shard node that hosts a shard replica (every partition on it goes down with it)."""
        return self.kill_node(spec.node_of(index, replica), how)


def main(argv: list[str] | None = None) -> None:
    """Operator tool: `python -m coordinator.shards list|nodes`, or `kill|locate --collection C --shard I [--how H]`
    (`nodes`: where every shard node serves and on which Ray node, and what each Ray node offers)."""
    import argparse
    import dataclasses
    import json

    from coordinator.catalog import Catalog
    from protos.serving import load_settings

    parser = argparse.ArgumentParser(prog="coordinator.shards", add_help=False)
    parser.add_argument("action", choices=["kill", "locate", "list", "nodes"])
    parser.add_argument("--node", type=int, default=-1, help="a shard node by index (instead of --collection)")
    parser.add_argument("--collection", default="")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--how", choices=["ray", "sigkill", "sigstop"], default="ray")
    parser.add_argument("--replica", type=int, default=0)
    known, rest = parser.parse_known_args(argv)
    settings = load_settings(CoordinatorSettings, rest, prog="coordinator.shards")
    connect(settings.ray_address, settings.ray_namespace)
    placer = ShardPlacer(settings)
    if known.action == "list":
        print(json.dumps(placer.shard_actors()), flush=True)
        return
    if known.action == "nodes":
        nodes = {n: dataclasses.asdict(w) for n, w in placer.running_nodes().items()}
        print(json.dumps({"nodes": nodes, "machines": placer.machine_resources()}), flush=True)
        return
    node = known.node
    if node < 0:
        node = Catalog(Path(settings.data_dir)).get(known.collection).node_of(known.shard, known.replica)
    act = {"kill": lambda: placer.kill_node(node, known.how), "locate": lambda: placer.locate(node)}
    where = act[known.action]()
    print(json.dumps(dataclasses.asdict(where)), flush=True)


if __name__ == "__main__":
    main()
