"""The shard actor: a plain class that Ray (through coordinator.shards) places, restarts and names.

It holds no Ray import: the coordinator's shards module wraps it with ray.remote, so every Ray
call stays in one module. When Ray restarts a dead actor it calls __init__ again with the same
arguments, and the shard recovers its partition from its snapshot and WAL.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from shard_node.server import ShardServer
from shard_node.settings import PartitionSpec, ShardSettings


class ShardActor:
    """One shard of one collection, serving the Shard gRPC service on its own port."""

    def __init__(self, collection: str, shard_index: int, spec: dict[str, Any], data_dir: str,
                 settings: dict[str, Any]) -> None:
        self._server = ShardServer(collection, shard_index, PartitionSpec(**spec), Path(data_dir),
                                   ShardSettings(**settings))

    def info(self) -> dict[str, Any]:
        """Where this shard serves, and which process it is."""
        return {"address": self._server.address, "pid": os.getpid(), "host": socket.gethostname(),
                "metrics_port": self._server.metrics_port}

    def destroy(self) -> None:
        """Stop serving and delete the shard's data; the caller then kills the actor."""
        self._server.destroy()
