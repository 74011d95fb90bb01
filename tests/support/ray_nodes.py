"""A Ray cluster of several nodes on this machine: a head and worker nodes started with `ray start` on loopback.

Each node has its own temp dir (its session, sockets and logs), its own ports and a custom resource naming it
(`shoal_host_<name>`); every worker also offers the shard resource, as a KubeRay shard worker pod does. The
head runs no shards (no CPUs, no shard resource), like the head pod. A node can be killed the hard way (its
`ray start`, raylet and every worker process at once, SIGKILL), started again, and the head restarted on the
same port. The data directory is shared: every node is on this machine (on Kubernetes, a ReadWriteMany volume).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shoal.serve import LocalCluster, free_port, wait_for_port
from tests.support.processes import kill_all, process_tree

SHARD_RESOURCE = "shoal_shard"
NODE_START_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0
_STARTED_LINE = "Ray runtime started"
# Ray keeps a one-machine cluster on loopback only while this is 0, and then refuses worker nodes; the nodes
# still bind 127.0.0.1 (--node-ip-address). The health checks are tightened so that a killed node is declared
# dead in about 2 s instead of about 30 s (Ray's defaults suit real networks).
TOPOLOGY_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    "RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3",
}


def host_resource(name: str) -> str:
    """The custom resource that only Ray node `name` offers."""
    return f"shoal_host_{name}"


class RayNode:
    """One `ray start --block` process (head or worker) and everything below it."""

    def __init__(self, name: str, args: list[str], temp_dir: Path, log_dir: Path) -> None:
        self.name, self._args, self.temp_dir, self._log = name, args, temp_dir, log_dir / f"ray-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the node and wait until it has joined the cluster (a second try when the first timed out: Ray
        gives a raylet 30 s to register, which a machine busy with other work sometimes exceeds)."""
        try:
            self._start_once()
        except RuntimeError:
            self._start_once()

    def _start_once(self) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        ports = [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                 f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                 f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]
        args = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--node-ip-address=127.0.0.1",
                "--disable-usage-stats", f"--temp-dir={self.temp_dir}", "--object-store-memory=80000000",
                *ports, *self._args]
        started = threading.Event()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **TOPOLOGY_RAY_ENV}, start_new_session=True,
                                     stdin=subprocess.DEVNULL)
        threading.Thread(target=self._tee, args=(self.proc, started), daemon=True).start()
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while not started.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Ray node {self.name} did not start; see {self._log}")

    def _tee(self, proc: subprocess.Popen, started: threading.Event) -> None:
        with open(self._log, "a", encoding="utf-8") as log:
            for line in proc.stdout:  # type: ignore[union-attr]
                log.write(line)
                log.flush()
                if _STARTED_LINE in line:
                    started.set()

    @property
    def running(self) -> bool:
        """Whether its `ray start` process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The node's processes: `ray start`, GCS (head), raylet, agents and every worker, shard nodes included."""
        return [p.pid for p in process_tree(self.proc.pid)] if self.proc else []

    def kill(self) -> list[int]:
        """SIGKILL the node's every process at once (a machine lost); returns their pids."""
        if self.proc is None:
            return []
        killed = kill_all(process_tree(self.proc.pid))
        self.proc.wait()
        self.proc = None
        return killed

    def stop(self) -> None:
        """Stop the node (SIGTERM to its process group, SIGKILL whatever is left after a grace period)."""
        if self.proc is None:
            return
        tree = process_tree(self.proc.pid)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_GRACE_S)
        kill_all(tree)
        self.proc.wait()
        self.proc = None


class RayTopology:
    """A Ray head plus worker nodes on loopback; stop() ends every process of every node."""

    def __init__(self, root: Path, workers: tuple[str, ...] = ("b", "c")) -> None:
        # Ray's socket paths must stay under 108 bytes: the nodes' temp dirs live in a short directory of their own.
        self._short = Path(tempfile.mkdtemp(prefix="shoal-ray-"))
        logs = Path(root) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        client_port = free_port()
        self.client_address = f"ray://127.0.0.1:{client_port}"  # the Ray Client server, as the coordinator dials it
        self.env = dict(TOPOLOGY_RAY_ENV)
        self.head = RayNode("a", ["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false",
                                  f"--ray-client-server-port={client_port}",
                                  f"--resources={json.dumps({host_resource('a'): 1})}"],
                            self._short / "a", logs)
        self.workers = {w: RayNode(w, [f"--address={self.address}", "--num-cpus=1",
                                       f"--resources={json.dumps({SHARD_RESOURCE: 1, host_resource(w): 1})}"],
                                   self._short / w, logs) for w in workers}

    def start(self) -> RayTopology:
        """Start the head, then every worker."""
        try:
            self.head.start()
            wait_for_port("127.0.0.1", self.port, NODE_START_TIMEOUT_S, self.head.proc)
            for node in self.workers.values():
                node.start()
        except BaseException:
            self.stop()
            raise
        return self

    def kill_worker(self, name: str) -> list[int]:
        """Lose a worker machine: SIGKILL its raylet and all its workers (shard nodes too) at once."""
        return self.workers[name].kill()

    def start_worker(self, name: str) -> None:
        """Bring a worker back (a fresh raylet on fresh ports, joining the running head)."""
        self.workers[name].start()

    def restart_head(self) -> None:
        """Stop the head and start it again on the same port. Without GCS fault tolerance the workers' raylets
        cannot rejoin a new GCS, so they are restarted too, as KubeRay restarts worker pods that lost their head."""
        self.head.kill()
        for node in self.workers.values():
            node.kill()
        self.head.start()
        for node in self.workers.values():
            node.start()

    def stop(self) -> None:
        """Stop every node, workers first, and remove the nodes' temp dirs."""
        for node in [*self.workers.values(), self.head]:
            node.stop()
        shutil.rmtree(self._short, ignore_errors=True)

    def __enter__(self) -> RayTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def cluster_on_nodes(root: Path, workers: tuple[str, ...], coordinator_args: list[str]
                     ) -> Iterator[tuple[RayTopology, LocalCluster]]:
    """A RayTopology and a coordinator (no embedder) joined to it, shard nodes on the shard resource; both
    always stopped."""
    topology = RayTopology(root, workers).start()
    cluster = LocalCluster(root / "coordinator", ray_address=topology.address, embedder=False,
                           coordinator_args=[f"--shard-ray-resource={SHARD_RESOURCE}", *coordinator_args],
                           ray_env=topology.env)
    try:
        cluster.start()
        yield topology, cluster
    finally:
        cluster.stop()
        topology.stop()
