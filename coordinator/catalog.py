"""The collection catalogue: what collections exist and how they are built, persisted as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from protos.errors import AlreadyExists, NotFound

_NAME_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")  # \Z: "$" would accept a trailing newline
_CATALOG_FILE = "catalog.json"
DEFAULT_TOMBSTONE_THRESHOLD = 0.2  # rebuild a shard once a fifth of its graph is deleted documents


def default_write_consistency(replication_factor: int) -> int:
    """Replicas a write needs by default: 1 up to 2 replicas (a hung one never blocks writes), a majority above."""
    return 1 if replication_factor <= 2 else replication_factor // 2 + 1


@dataclass(frozen=True)
class CollectionSpec:
    """Everything fixed when a collection is created."""

    name: str
    uid: str
    dim: int
    metric: str
    shards: int
    m: int
    ef_construction: int
    ef_search: int
    created_at: str
    fields: dict[str, str] = field(default_factory=dict)  # indexed payload fields: name -> type
    model: str = ""          # bound embedding model, name@version ("" = bare vectors)
    modality: str = ""       # what the bound model embeds: text, image or text+image
    chunk_words: int = 0     # text chunking of a bound collection
    chunk_overlap: int = 0
    embed_fields: list[str] = field(default_factory=list)  # string payload fields embedded as further entries
    # Defaults keep catalogues written before these existed readable.
    tombstone_threshold: float = DEFAULT_TOMBSTONE_THRESHOLD
    replication_factor: int = 1
    storage: str = "float32"  # how partitions keep vectors (shard_node/storage.py)
    # placement[shard][replica] = index of the shard node hosting that partition (see coordinator/placement.py);
    # empty in catalogues written before shard nodes: the coordinator places those at start-up.
    placement: list[list[int]] = field(default_factory=list)
    write_consistency: int = 0  # replicas that must have a write before it is acknowledged; 0 = the default rule

    @property
    def write_quorum(self) -> int:
        """Replicas a write must reach before it is acknowledged."""
        return self.write_consistency or default_write_consistency(max(self.replication_factor, 1))

    def node_of(self, index: int, replica: int) -> int:
        """The shard node hosting a shard replica."""
        return self.placement[index][replica]

    def partition_key(self, index: int, replica: int) -> str:
        """The key a shard node knows a shard replica of this collection by."""
        return f"{self.name}-{self.uid}/{index}/{replica}"

    @staticmethod
    def new(name: str, dim: int, metric: str, shards: int, m: int, ef_construction: int,
            ef_search: int, **extra: str | int | float) -> CollectionSpec:
        """A spec with a fresh uid and creation time (extra: the optional fields, e.g. model binding)."""
        return CollectionSpec(name=name, uid=uuid.uuid4().hex[:12], dim=dim, metric=metric, shards=shards,
                              m=m, ef_construction=ef_construction, ef_search=ef_search,
                              created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **extra)


def valid_name(name: str) -> bool:
    """Collection names: letters, digits, _ . - (not first), at most 128 characters."""
    return bool(_NAME_RE.match(name))


class Catalog:
    """Collections by name; every change is written to disk (temp file, fsync, rename) before it counts."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / _CATALOG_FILE
        self._lock = threading.Lock()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._specs: dict[str, CollectionSpec] = {}
        if self._path.exists():
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            self._specs = {c["name"]: CollectionSpec(**c) for c in raw["collections"]}

    def _persist(self, specs: dict[str, CollectionSpec]) -> None:
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"collections": [dataclasses.asdict(s) for s in specs.values()]}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)

    def add(self, spec: CollectionSpec) -> None:
        """Record a new collection."""
        with self._lock:
            if spec.name in self._specs:
                raise AlreadyExists(f"collection {spec.name!r} already exists")
            specs = {**self._specs, spec.name: spec}
            self._persist(specs)
            self._specs = specs

    def remove(self, name: str) -> CollectionSpec:
        """Forget a collection; returns its spec."""
        with self._lock:
            spec = self.get(name)
            specs = {k: v for k, v in self._specs.items() if k != name}
            self._persist(specs)
            self._specs = specs
            return spec

    def update(self, name: str, **changes: object) -> CollectionSpec:
        """Change some fields of a collection's spec (not its identity); returns the new spec."""
        with self._lock:
            spec = replace(self.get(name), **changes)
            specs = {**self._specs, name: spec}
            self._persist(specs)
            self._specs = specs
            return spec

    def get(self, name: str) -> CollectionSpec:
        """The spec of a collection, or NotFound."""
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self._specs)) or "none"
            raise NotFound(f"collection {name!r} does not exist (collections: {known})")
        return spec

    def all(self) -> list[CollectionSpec]:
        """Every collection, by name."""
        return [self._specs[k] for k in sorted(self._specs)]
