"""The shard node actor: a plain class that Ray (through coordinator.shards) places, restarts and names.

It holds no Ray import: the coordinator's shards module wraps it with ray.remote, so every Ray call
stays in one module. When Ray restarts a dead node it calls __init__ again with the same arguments, and
the node reopens every partition its manifest lists from their snapshots and WALs before it serves.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from protos.serving import pin_blas_threads
from shard_node.server import NodeServer
from shard_node.settings import ShardSettings


class ShardNodeActor:
    """One shard node: many partitions of many collections behind one gRPC server."""

    def __init__(self, node_dir: str, settings: dict[str, Any]) -> None:
        shard_settings = ShardSettings(**settings)
        pin_blas_threads(shard_settings.blas_threads)
        self._server = NodeServer(Path(node_dir), shard_settings)

    def info(self) -> dict[str, Any]:
        """Where this node serves, and which process it is."""
        return {"address": self._server.address, "pid": os.getpid(), "host": socket.gethostname(),
                "metrics_port": self._server.metrics_port}
