"""Where shards live: the one module that talks to Ray (placing, finding, killing shard actors)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from coordinator.catalog import CollectionSpec
from coordinator.settings import CoordinatorSettings
from protos.errors import Unavailable
from shard_node.actor import ShardActor
from shard_node.settings import PartitionSpec, ShardSettings

_ACTOR_PREFIX = "shard-"
log = logging.getLogger("shoal.coordinator.shards")
_RemoteShard = ray.remote(ShardActor)


@dataclass(frozen=True)
class ShardLocation:
    """Where one shard serves right now."""

    address: str
    pid: int
    host: str
    metrics_port: int


def actor_name(spec: CollectionSpec, index: int, replica: int = 0) -> str:
    """Ray name of a shard actor; the uid keeps a re-created collection apart from a dropped one.

    Replica 0 has the plain name (as before replication existed); further copies end in -r<replica>."""
    base = f"{_ACTOR_PREFIX}{spec.name}-{spec.uid}-{index}"
    return base if replica == 0 else f"{base}-r{replica}"


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


def disconnect() -> None:
    """Leave Ray (stops a local instance this process started)."""
    if ray.is_initialized():
        ray.shutdown()


class ShardPlacer:
    """Creates, finds and removes the shard actors of collections."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self._settings = settings
        self._namespace = settings.ray_namespace
        root = settings.shard_data_dir or str(Path(settings.data_dir).resolve() / "collections")
        self._root = Path(root)
        self._shard_settings = ShardSettings(
            bind_host=settings.shard_bind_host, max_message_bytes=settings.max_message_bytes,
            metrics_port=0 if settings.shard_metrics else -1,
            tls_cert=settings.shard_tls_cert, tls_key=settings.shard_tls_key,
            tls_client_ca=settings.shard_tls_client_ca,
        ).to_dict()

    def _data_dir(self, spec: CollectionSpec, index: int, replica: int) -> str:
        leaf = f"shard-{index}" if replica == 0 else f"shard-{index}-r{replica}"
        return str(self._root / f"{spec.name}-{spec.uid}" / leaf)

    def _handle(self, spec: CollectionSpec, index: int, replica: int) -> Any:
        part = PartitionSpec(dim=spec.dim, metric=spec.metric, m=spec.m,
                             ef_construction=spec.ef_construction, ef_search=spec.ef_search,
                             fields=dict(spec.fields))
        return _RemoteShard.options(**self.actor_options(spec, index, replica)).remote(
            spec.name, index, part.to_dict(), self._data_dir(spec, index, replica), self._shard_settings)

    def actor_options(self, spec: CollectionSpec, index: int, replica: int) -> dict[str, Any]:
        """Ray options of one shard actor: named, detached, restarted forever, placed by the shard resource."""
        resource = self._settings.shard_ray_resource
        return {"name": actor_name(spec, index, replica), "namespace": self._namespace, "lifetime": "detached",
                "get_if_exists": True, "max_restarts": -1, "max_task_retries": -1, "num_cpus": 0,
                "resources": {resource: 1} if resource else {}}

    def ensure(self, spec: CollectionSpec) -> list[ShardLocation]:
        """Start (or find) every shard actor (every replica) of a collection and wait until each serves."""
        handles = [self._handle(spec, i, r) for i in range(spec.shards) for r in replicas_of(spec)]
        return [self._info(h) for h in handles]

    def locate(self, spec: CollectionSpec, index: int, replica: int = 0) -> ShardLocation:
        """Where a shard replica serves now, waiting for it if Ray is restarting it."""
        try:
            handle = ray.get_actor(actor_name(spec, index, replica), namespace=self._namespace)
        except ValueError:
            handle = self._handle(spec, index, replica)
        return self._info(handle)

    def _info(self, handle: Any) -> ShardLocation:
        try:
            info = ray.get(handle.info.remote(), timeout=self._settings.shard_restart_wait_s)
        except (GetTimeoutError, RayActorError) as exc:
            raise Unavailable(f"shard actor did not come up within {self._settings.shard_restart_wait_s}s: "
                              f"{exc}") from None
        return ShardLocation(**info)

    def drop(self, spec: CollectionSpec) -> None:
        """Stop every shard actor of a collection and delete its data."""
        for i, r in ((i, r) for i in range(spec.shards) for r in replicas_of(spec)):
            try:
                handle = ray.get_actor(actor_name(spec, i, r), namespace=self._namespace)
            except ValueError:
                continue
            # A shard that cannot clean up is killed anyway; its directory is then left behind.
            with contextlib.suppress(GetTimeoutError, RayActorError):
                ray.get(handle.destroy.remote(), timeout=self._settings.shard_restart_wait_s)
            ray.kill(handle, no_restart=True)
        # The shards removed their own directories; on one machine the collection's folder is here too.
        shutil.rmtree(self._root / f"{spec.name}-{spec.uid}", ignore_errors=True)

    def shard_actors(self) -> list[str]:
        """Names of every shard actor in this deployment's namespace."""
        return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                      if a["namespace"] == self._namespace and a["name"].startswith(_ACTOR_PREFIX))

    def reap_orphans(self, specs: list[CollectionSpec]) -> list[str]:
        """Stop shard actors of collections the catalogue no longer has (a crash between the two); keep their data."""
        wanted = {actor_name(s, i, r) for s in specs for i in range(s.shards) for r in replicas_of(s)}
        orphans = [name for name in self.shard_actors() if name not in wanted]
        for name in orphans:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=self._namespace), no_restart=True)
            log.warning("stopped shard actor %s: its collection is not in the catalogue (data left in %s)",
                        name, self._root)
        return orphans

    def kill(self, spec: CollectionSpec, index: int, how: str = "ray", replica: int = 0) -> ShardLocation:
        """Kill a shard actor the hard way (for fault tests and chaos): `ray` = ray.kill, `sigkill`."""
        handle = ray.get_actor(actor_name(spec, index, replica), namespace=self._namespace)
        where = self._info(handle)
        if how == "sigkill":
            os.kill(where.pid, signal.SIGKILL)
        else:
            ray.kill(handle, no_restart=False)
        return where


def main(argv: list[str] | None = None) -> None:
    """Operator tool: `python -m coordinator.shards list`, or `kill|locate --collection C --shard I [--how H]`."""
    import argparse
    import dataclasses
    import json

    from coordinator.catalog import Catalog
    from protos.serving import load_settings

    parser = argparse.ArgumentParser(prog="coordinator.shards", add_help=False)
    parser.add_argument("action", choices=["kill", "locate", "list"])
    parser.add_argument("--collection", default="")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--how", choices=["ray", "sigkill"], default="ray")
    parser.add_argument("--replica", type=int, default=0)
    known, rest = parser.parse_known_args(argv)
    settings = load_settings(CoordinatorSettings, rest, prog="coordinator.shards")
    connect(settings.ray_address, settings.ray_namespace)
    placer = ShardPlacer(settings)
    if known.action == "list":
        print(json.dumps(placer.shard_actors()), flush=True)
        return
    spec = Catalog(Path(settings.data_dir)).get(known.collection)
    act = {"kill": lambda: placer.kill(spec, known.shard, known.how, known.replica),
           "locate": lambda: placer.locate(spec, known.shard, known.replica)}
    where = act[known.action]()
    print(json.dumps(dataclasses.asdict(where)), flush=True)


if __name__ == "__main__":
    main()
