"""Prometheus service discovery of the shard nodes' metrics endpoints, which move whenever Ray restarts a node.

The coordinator learns where each shard replica serves (its gRPC address and metrics port) every time it
locates one; this module keeps that list and publishes it two ways: a file-SD JSON file written atomically
(`metrics_sd_file`) and the same JSON for HTTP-SD at `/sd/shards` on the coordinator's metrics port.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

SD_PATH = "/sd/shards"


def target_host(address: str) -> str:
    """The host part of a host:port address (IPv6 brackets kept)."""
    return address.rsplit(":", 1)[0]


class ShardTargets:
    """The current metrics endpoint of every shard node, as Prometheus file-SD / HTTP-SD target groups.

    A node exports the series of every partition it hosts, labelled by collection and shard; the target
    group adds only the node's index."""

    def __init__(self, sd_file: str = "", on_change: Callable[[int], None] | None = None) -> None:
        self._sd_file = Path(sd_file) if sd_file else None
        self._on_change = on_change
        self._groups: dict[int, dict[str, object]] = {}
        self._lock = threading.Lock()  # the metrics HTTP server reads from its own thread
        self._body = b"[]"
        if self._sd_file is not None:
            self._publish()  # an empty list at once: Prometheus then watches a file that exists

    def located(self, node: int, address: str, metrics_port: int) -> None:
        """Record where a shard node serves now; publishes when its metrics endpoint changed."""
        if metrics_port < 0:
            changed = self._groups.pop(node, None) is not None
        else:
            group = {"targets": [f"{target_host(address)}:{metrics_port}"], "labels": {"node": str(node)}}
            changed = self._groups.get(node) != group
            self._groups[node] = group
        if changed:
            self._publish()

    def groups(self) -> list[dict[str, object]]:
        """The target groups, ordered by node."""
        return [self._groups[k] for k in sorted(self._groups)]

    def http_body(self) -> bytes:
        """The JSON an HTTP-SD request gets."""
        with self._lock:
            return self._body

    def _publish(self) -> None:
        body = json.dumps(self.groups(), indent=1).encode()
        with self._lock:
            self._body = body
        if self._on_change is not None:
            self._on_change(len(self._groups))
        if self._sd_file is not None:
            write_atomically(self._sd_file, body)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace a file in one step (a reader sees the old or the new content, never half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a Prometheus running as another user reads it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
