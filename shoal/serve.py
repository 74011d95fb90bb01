"""Run a whole Shoal cluster on this machine as child processes: Ray head, coordinator (and what joins them).

`shoal serve` uses it in the foreground; tests and the benchmark use it as a context manager. The
processes are started by command line, so the SDK stays free of server imports.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2

from protos.healthcheck import health_status
from protos.tls import ClientTLS

RAY_START_TIMEOUT_S = 120.0
COORDINATOR_START_TIMEOUT_S = 180.0
EMBEDDER_START_TIMEOUT_S = 600.0   # it loads its preloaded models first; a first ConSE load embeds 2,000 prompts
STOP_GRACE_S = 20.0
_READY_RE = re.compile(r"coordinator serving on (\S+) \(pid (\d+)\)")
_EMBEDDER_READY_RE = re.compile(r"embedder serving on (\S+) \(pid (\d+)\)")
_GATEWAY_READY_RE = re.compile(r"gateway serving on (\S+) \(pid (\d+)\)")
GATEWAY_START_TIMEOUT_S = 60.0
# Ray rewrites a loopback cluster address to the host's own IP unless this is 0; a one-machine
# cluster here must stay on loopback, so every process of it (and any driver joining it) sets it.
LOOPBACK_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Block until host:port accepts TCP connections (or fail if the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {host}:{port} opened")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{host}:{port} did not open within {timeout:.0f}s")


def wait_serving(address: str, timeout: float, tls: ClientTLS | None = None) -> None:
    """Block until the gRPC health service at address answers SERVING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if health_status(address, tls, timeout=2) == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{address} was not SERVING within {timeout:.0f}s")


@dataclass(frozen=True)
class LocalSecurity:
    """TLS and API keys for a local cluster (PEM paths); every certificate is signed by `ca`.

    The coordinator serves `cert`; the embedder and the shards serve `internal_cert` (default: `cert`),
    checked under `internal_server_name` (default: their address). With `client_cert`, the coordinator
    presents it and the embedder and shards accept no client without one (mutual TLS)."""

    ca: str
    cert: str
    key: str
    internal_cert: str = ""
    internal_key: str = ""
    internal_server_name: str = ""
    client_cert: str = ""
    client_key: str = ""
    api_keys_file: str = ""

    def _internal_pair(self) -> tuple[str, str]:
        return (self.internal_cert, self.internal_key) if self.internal_cert else (self.cert, self.key)

    def _client_ca(self) -> str:
        return self.ca if self.client_cert else ""

    def public_client(self) -> ClientTLS:
        """How a client dials the coordinator."""
        return ClientTLS(self.ca)

    def internal_client(self) -> ClientTLS:
        """How the coordinator dials the embedder and the shards."""
        return ClientTLS(self.ca, self.client_cert, self.client_key, self.internal_server_name)

    def embedder_args(self) -> list[str]:
        """Flags of the embedder process."""
        cert, key = self._internal_pair()
        return [f"--tls-cert={cert}", f"--tls-key={key}", f"--tls-client-ca={self._client_ca()}"]

    def coordinator_args(self) -> list[str]:
        """Flags of the coordinator process: its own server, how it dials, what its shards serve."""
        cert, key = self._internal_pair()
        internal = self.internal_client()
        return [f"--tls-cert={self.cert}", f"--tls-key={self.key}", f"--api-keys-file={self.api_keys_file}",
                f"--internal-tls-ca={internal.ca}", f"--internal-tls-cert={internal.cert}",
                f"--internal-tls-key={internal.key}", f"--internal-tls-server-name={internal.server_name}",
                f"--shard-tls-cert={cert}", f"--shard-tls-key={key}", f"--shard-tls-client-ca={self._client_ca()}"]


def _stop_process(proc: subprocess.Popen | None, grace: float = STOP_GRACE_S) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tee(stream: IO[str], sink: IO[str], echo: bool, on_line: list) -> None:
    with sink:
        for line in stream:
            sink.write(line)
            sink.flush()
            if echo:
                sys.stderr.write(line)
            for callback in on_line:
                callback(line)


class LocalCluster:
    """A Ray head, an embedder and a coordinator on loopback; stop() ends every process it started."""

    def __init__(self, data_dir: str | Path, port: int = 0, ray_address: str = "", num_cpus: int | None = None,
                 coordinator_args: list[str] | None = None, echo: bool = False, embedder: bool = True,
                 embedder_args: list[str] | None = None, metrics_port: int = -1,
                 security: LocalSecurity | None = None, gateway: bool = False, gateway_port: int = 0,
                 gateway_args: list[str] | None = None, ray_env: dict[str, str] | None = None) -> None:
        """metrics_port: the coordinator's metrics port (0 = any free one, -1 = no metrics); the embedder's is
        the next free one, and the coordinator writes the shards' file-SD list to `sd_file`. security: TLS on
        every server and API keys (see LocalSecurity). gateway: also run the HTTP gateway (REST API and
        console) on 127.0.0.1:gateway_port (0 = any free one); its URL is `gateway_url`. ray_env: environment
        the members of the Ray cluster at ray_address share (joining it)."""
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ray_address = ray_address
        self._own_ray = not ray_address
        self._num_cpus = num_cpus or os.cpu_count() or 2
        self._coordinator_args = coordinator_args or []
        self._echo = echo
        # A Ray head of our own stays on loopback and gets a token of its own that every member shares;
        # joining someone else's cluster takes its address and token from the caller's environment.
        self.ray_env = ({**LOOPBACK_RAY_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
                        if self._own_ray else {"RAY_USAGE_STATS_ENABLED": "0", **(ray_env or {})})
        self._ray: subprocess.Popen | None = None
        self._coordinator: subprocess.Popen | None = None
        self.coordinator_pid = 0
        self._with_embedder = embedder
        self._embedder_args = embedder_args or []
        self.security = security
        self._embedder: subprocess.Popen | None = None
        self.embedder_address = ""
        self.embedder_pid = 0
        self.metrics_port = (metrics_port or free_port()) if metrics_port >= 0 else -1
        self.embedder_metrics_port = -1 if metrics_port < 0 else (metrics_port + 1 if metrics_port else free_port())
        self.sd_file = self.data_dir / "prometheus" / "shards.json" if metrics_port >= 0 else None
        self._with_gateway = gateway
        self.gateway_port = gateway_port
        self._gateway_args = gateway_args or []
        self._gateway: subprocess.Popen | None = None
        self.gateway_url = ""
        self.gateway_pid = 0
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)

    def _spawn(self, args: list[str], log_name: str, ready: re.Pattern[str] | None = None
               ) -> tuple[subprocess.Popen, threading.Event, list[str]]:
        env = {**os.environ, **self.ray_env, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True, stdin=subprocess.DEVNULL)
        seen = threading.Event()
        found: list[str] = []

        def watch(line: str) -> None:
            if ready is not None and not seen.is_set():
                m = ready.search(line)
                if m:
                    found.extend(m.groups())
                    seen.set()

        log = open(self.data_dir / "logs" / log_name, "a", encoding="utf-8")  # noqa: SIM115 - _tee closes it
        threading.Thread(target=_tee, args=(proc.stdout, log, self._echo, [watch]), daemon=True).start()
        return proc, seen, found

    def start_ray(self) -> None:
        """Start a Ray head on loopback (unless joining an existing cluster)."""
        if not self._own_ray:
            return
        gcs = free_port()
        args = [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            f"--port={gcs}", "--node-ip-address=127.0.0.1", f"--num-cpus={self._num_cpus}",
            "--include-dashboard=false", "--disable-usage-stats",
            f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            "--object-store-memory=200000000",
        ]
        self._ray, _, _ = self._spawn(args, "ray.log")
        wait_for_port("127.0.0.1", gcs, RAY_START_TIMEOUT_S, self._ray)
        self.ray_address = f"127.0.0.1:{gcs}"

    def _start_server(self, args: list[str], name: str, ready: re.Pattern[str],
                      timeout: float = COORDINATOR_START_TIMEOUT_S,
                      tls: ClientTLS | None = None) -> tuple[subprocess.Popen, str, int]:
        """Start a server process, wait for its "serving on" line and its health check; (process, address, pid)."""
        proc, seen, found = self._spawn(args, f"{name}.log", ready)
        deadline = time.monotonic() + timeout
        while not seen.wait(0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop_process(proc)
                self.stop()
                raise RuntimeError(f"{name} did not start; see {self.data_dir / 'logs' / f'{name}.log'}")
        wait_serving(found[0], COORDINATOR_START_TIMEOUT_S, tls)
        return proc, found[0], int(found[1])

    def start_embedder(self) -> None:
        """Start the embedder process (unless this cluster runs without one) and wait until it serves."""
        if not self._with_embedder:
            return
        args = [sys.executable, "-m", "embedder.server", f"--port={free_port()}", "--host=127.0.0.1",
                f"--state-dir={self.data_dir / 'embedder'}", f"--metrics-port={self.embedder_metrics_port}",
                *(self.security.embedder_args() if self.security else []), *self._embedder_args]
        self._embedder, self.embedder_address, self.embedder_pid = self._start_server(
            args, "embedder", _EMBEDDER_READY_RE, EMBEDDER_START_TIMEOUT_S,
            self.security.internal_client() if self.security else None)

    def start_coordinator(self) -> None:
        """Start the coordinator process and wait until it serves."""
        args = [
            sys.executable, "-m", "coordinator.server", f"--port={self.port}", "--host=127.0.0.1",
            f"--data-dir={self.data_dir}", f"--ray-address={self.ray_address}",
            *([f"--embedder-address={self.embedder_address}"] if self.embedder_address else []),
            f"--metrics-port={self.metrics_port}",
            *([f"--metrics-sd-file={self.sd_file}"] if self.sd_file else []),
            *(self.security.coordinator_args() if self.security else []), *self._coordinator_args,
        ]
        self._coordinator, _, self.coordinator_pid = self._start_server(
            args, "coordinator", _READY_RE, tls=self.security.public_client() if self.security else None)

    def start_gateway(self) -> None:
        """Start the HTTP gateway (unless this cluster runs without one) and wait until it answers."""
        if not self._with_gateway:
            return
        tls = self.security.public_client() if self.security else None
        args = [sys.executable, "-m", "gateway.server", "--host=127.0.0.1", f"--port={self.gateway_port}",
                f"--coordinator={self.address}", *([f"--tls-ca={tls.ca}"] if tls else []), *self._gateway_args]
        self._gateway, seen, found = self._spawn(args, "gateway.log", _GATEWAY_READY_RE)
        deadline = time.monotonic() + GATEWAY_START_TIMEOUT_S
        while not seen.wait(0.5):
            if self._gateway.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gateway did not start; see {self.data_dir / 'logs' / 'gateway.log'}")
        self.gateway_url, self.gateway_pid = found[0], int(found[1])
        host, port = self.gateway_url.rsplit("/", 1)[1].rsplit(":", 1)
        self.gateway_port = int(port)
        wait_for_port(host, self.gateway_port, GATEWAY_START_TIMEOUT_S, self._gateway)

    def stop_gateway(self) -> None:
        """Stop the gateway process."""
        _stop_process(self._gateway)
        self._gateway = None

    def start(self) -> LocalCluster:
        """Start Ray, the embedder, the coordinator and (when asked) the gateway."""
        try:
            self.start_ray()
            self.start_embedder()
            self.start_coordinator()
            self.start_gateway()
        except BaseException:
            self.stop()
            raise
        return self

    def stop_coordinator(self, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM) or kill (SIGKILL) the coordinator process."""
        if self._coordinator is None:
            return
        if sig == signal.SIGKILL and self._coordinator.poll() is None:
            os.killpg(self._coordinator.pid, signal.SIGKILL)
            self._coordinator.wait()
        _stop_process(self._coordinator)
        self._coordinator = None

    def restart_coordinator(self, sig: int = signal.SIGTERM) -> None:
        """Stop the coordinator and start a new one on the same port and data."""
        self.stop_coordinator(sig)
        self.start_coordinator()

    def stop(self) -> None:
        """Stop the gateway, the coordinator and the embedder, then Ray (which takes the shard actors with it)."""
        self.stop_gateway()
        self.stop_coordinator()
        _stop_process(self._embedder)
        self._embedder = None
        if self._own_ray:
            _stop_process(self._ray)
            self._ray = None

    def shard_tool(self, action: str, collection: str = "", shard: int = 0, how: str = "ray",
                   replica: int = 0) -> Any:
        """Run `coordinator.shards` against this cluster (list, locate or kill shard actors); returns its answer."""
        args = [sys.executable, "-m", "coordinator.shards", action, f"--collection={collection}",
                f"--shard={shard}", f"--how={how}", f"--replica={replica}", f"--data-dir={self.data_dir}",
                f"--ray-address={self.ray_address}"]
        out = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **self.ray_env},
                             timeout=COORDINATOR_START_TIMEOUT_S, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"coordinator.shards {action} failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def process_ids(self) -> list[int]:
        """Pids of the processes this cluster started and that still run (Ray head, embedder, coordinator); each
        leads its own session, and what they start (Ray's GCS, raylet, workers, shard actors) descends from them."""
        return [p.pid for p in (self._ray, self._embedder, self._coordinator) if p is not None and p.poll() is None]

    def wait_nonblocking(self) -> int | None:
        """The coordinator's exit code if it has exited, else None."""
        return self._coordinator.poll() if self._coordinator else 0

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
