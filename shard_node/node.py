"""A shard node's partitions: which shard replicas it hosts, opened from disk, remembered across restarts.

The node keeps a manifest (JSON, replaced atomically) of every partition it was asked to host. When Ray
restarts the node's actor, the new process reads the manifest and reopens each partition from its own
snapshot and WAL before it serves, so a restart needs nothing from the coordinator.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from protos.errors import FailedPrecondition, NotFound
from shard_node.metrics import ShardMetrics
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.store import ShardStore

MANIFEST_FILE = "partitions.json"
log = logging.getLogger("shoal.shard_node.node")


@dataclass(frozen=True)
class PartitionPlace:
    """Where a hosted partition's data lives and what it is (one manifest entry)."""

    collection: str
    shard: int
    replica: int
    spec: dict[str, object]
    data_dir: str

    @property
    def labels(self) -> tuple[str, str, str]:
        """Metric labels of the partition's series."""
        return (self.collection, str(self.shard), str(self.replica))

    def describe(self) -> str:
        """How messages name this partition."""
        return f"collection {self.collection!r} shard {self.shard} replica {self.replica}"


@dataclass
class Hosted:
    """An open partition and the place it came from."""

    place: PartitionPlace
    store: ShardStore


class ShardNode:
    """The partitions one node hosts, by key; opening and closing them keeps the manifest in step."""

    def __init__(self, node_dir: Path, settings: ShardSettings, metrics: ShardMetrics) -> None:
        self.node_dir = node_dir
        self._settings = settings
        self._metrics = metrics
        self._lock = threading.Lock()  # guards the dict and the manifest; stores have their own locks
        self._hosted: dict[str, Hosted] = {}
        node_dir.mkdir(parents=True, exist_ok=True)
        for key, raw in self._read_manifest().items():
            place = PartitionPlace(**raw)
            try:
                self._hosted[key] = Hosted(place, self._open_store(place))
            except Exception:  # one broken partition must not keep the node's others from serving
                log.exception("partition %s in %s could not be reopened", key, place.data_dir)

    def _read_manifest(self) -> dict[str, dict[str, object]]:
        path = self.node_dir / MANIFEST_FILE
        if not path.exists():
            return {}
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def _write_manifest(self) -> None:
        path = self.node_dir / MANIFEST_FILE
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({k: asdict(h.place) for k, h in self._hosted.items()}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _open_store(self, place: PartitionPlace) -> ShardStore:
        labels = place.labels
        store = ShardStore(Path(place.data_dir), PartitionSpec(**place.spec), self._settings,
                           self._metrics.observers(labels), where=place.describe())
        self._metrics.refresh_on_scrape(labels, store.figures)
        return store

    def open(self, key: str, place: PartitionPlace) -> ShardStore:
        """Host a partition (a no-op when it is already open here with the same data directory)."""
        with self._lock:
            hosted = self._hosted.get(key)
            if hosted is not None:
                if hosted.place.data_dir != place.data_dir:
                    raise FailedPrecondition(f"partition {key} is open here from {hosted.place.data_dir}, "
                                             f"not {place.data_dir}")
                return hosted.store
            store = self._open_store(place)
            self._hosted[key] = Hosted(place, store)
            self._write_manifest()
            return store

    def close(self, key: str, delete_data: bool) -> bool:
        """Stop hosting a partition (and delete its data); returns whether it was hosted."""
        with self._lock:
            hosted = self._hosted.pop(key, None)
            if hosted is None:
                return False
            self._write_manifest()
        hosted.store.close()
        self._metrics.forget(hosted.place.labels)
        if delete_data:
            shutil.rmtree(hosted.place.data_dir, ignore_errors=True)
        return True

    def hosted(self, key: str) -> Hosted:
        """A hosted partition (its store and what it is), or NotFound naming the node's directory."""
        hosted = self._hosted.get(key)
        if hosted is None:
            raise NotFound(f"partition {key!r} is not hosted by the shard node in {self.node_dir}")
        return hosted

    def keys(self) -> list[str]:
        """Every hosted partition."""
        return sorted(self._hosted)

    def close_all(self) -> None:
        """Close every partition (the node stops); the manifest keeps them for the next start."""
        with self._lock:
            hosted = list(self._hosted.values())
        for h in hosted:
            h.store.close()
