"""Memory of a whole local cluster: RSS of every Shoal process while many small collections are created."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psutil
from tqdm import tqdm

import shoal

MIB = 2**20
MIN_AVAILABLE_BYTES = 2 * 2**30   # stop creating collections too when the machine itself runs this low


@dataclass
class MemoryUse:
    """Summed memory of a set of processes."""

    processes: int
    rss_bytes: int
    pss_bytes: int
    names: dict[str, int] = field(default_factory=dict)   # process name -> how many


@dataclass
class MemoryStep:
    """The cluster after one more collection was created and filled."""

    collections: int
    seconds: float          # create + upsert
    create_seconds: float   # CreateCollection alone
    rss_bytes: int
    pss_bytes: int
    processes: int


@dataclass
class MemoryRun:
    """Collections created one after another until all were made or a cap was reached."""

    wanted: int
    shards: int
    vectors: int
    dim: int
    cap_bytes: int
    baseline: MemoryUse
    steps: list[MemoryStep] = field(default_factory=list)
    stopped: str = ""
    index_bytes_per_replica: float = 0.0
    final_names: dict[str, int] = field(default_factory=dict)

    @property
    def created(self) -> int:
        """Collections that exist (and were filled) at the end."""
        return self.steps[-1].collections if self.steps else 0

    @property
    def creation_seconds(self) -> float:
        """Time spent creating and filling every collection."""
        return sum(s.seconds for s in self.steps)

    @property
    def create_only_seconds(self) -> float:
        """Time spent in CreateCollection alone."""
        return sum(s.create_seconds for s in self.steps)

    def per_replica_bytes(self) -> float | None:
        """RSS added per shard replica after the first collection (so one-time start-up costs drop out)."""
        if len(self.steps) >= 2:
            first, last = self.steps[0], self.steps[-1]
            return (last.rss_bytes - first.rss_bytes) / ((last.collections - first.collections) * self.shards)
        if self.steps:
            return (self.steps[0].rss_bytes - self.baseline.rss_bytes) / self.shards
        return None

    def per_replica_beyond_data(self) -> float | None:
        """RSS per replica minus the index memory the replica itself reports (its data)."""
        per = self.per_replica_bytes()
        return None if per is None else per - self.index_bytes_per_replica

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for results.json."""
        return {**asdict(self), "created": self.created, "creation_seconds": self.creation_seconds,
                "create_only_seconds": self.create_only_seconds,
                "per_replica_bytes": self.per_replica_bytes(),
                "per_replica_beyond_data_bytes": self.per_replica_beyond_data()}


def process_tree(roots: list[int]) -> list[psutil.Process]:
    """The root processes, their descendants, and any other process in a session a root leads (a daemonised child
    leaves the tree but keeps the session); each once. A root that does not lead its session adds no session, so
    the caller's own session is never swept in."""
    found: dict[int, psutil.Process] = {}
    sessions = set()
    for pid in roots:
        try:
            root = psutil.Process(pid)
            if _sid(pid) == pid:
                sessions.add(pid)
            for p in [root, *root.children(recursive=True)]:
                found[p.pid] = p
        except psutil.NoSuchProcess:
            continue
    for p in psutil.process_iter():
        if p.pid not in found and _sid(p.pid) in sessions:
            found[p.pid] = p
    return list(found.values())


def _sid(pid: int) -> int:
    """The process's session id (-1 once it is gone)."""
    try:
        return os.getsid(pid)
    except OSError:
        return -1


def memory_of(procs: list[psutil.Process]) -> MemoryUse:
    """Summed RSS and PSS (shared pages split among their users) of the processes still alive."""
    rss = pss = alive = 0
    names: Counter[str] = Counter()
    for p in procs:
        try:
            info = p.memory_full_info()
            names[p.name()] += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        alive += 1
    return MemoryUse(alive, rss, pss, dict(names))


def fill_collections(client: shoal.Client, roots: list[int], wanted: int, shards: int, vectors: np.ndarray,
                     cap_bytes: int, prefix: str = "mem") -> MemoryRun:
    """Create `wanted` collections of `shards` shards, each upserted with `vectors`, one after another; stop
    before the next one once the Shoal processes' RSS (plus the last step's growth) would pass `cap_bytes`,
    or the machine has less than MIN_AVAILABLE_BYTES free."""
    ids = [str(i) for i in range(len(vectors))]
    run = MemoryRun(wanted, shards, len(vectors), vectors.shape[1], cap_bytes, memory_of(process_tree(roots)))
    last_rss, growth = run.baseline.rss_bytes, 0
    with tqdm(total=wanted, desc="collections", unit="coll") as bar:
        for i in range(wanted):
            if last_rss + growth > cap_bytes:
                run.stopped = (f"stopped before collection {i + 1}: Shoal RSS {last_rss / MIB:,.0f} MiB + the last "
                               f"collection's {growth / MIB:,.0f} MiB would pass the cap of {cap_bytes / MIB:,.0f} MiB")
                break
            available = psutil.virtual_memory().available
            if available < MIN_AVAILABLE_BYTES:
                run.stopped = f"stopped before collection {i + 1}: only {available / MIB:,.0f} MiB of RAM left"
                break
            start = time.perf_counter()
            name = f"{prefix}{i:03d}"
            client.create_collection(name, vectors.shape[1], "cosine", shards=shards)
            created = time.perf_counter() - start
            client.upsert(name, ids, vectors)
            seconds = time.perf_counter() - start
            use = memory_of(process_tree(roots))
            run.final_names = use.names
            run.steps.append(MemoryStep(i + 1, seconds, created, use.rss_bytes, use.pss_bytes, use.processes))
            growth, last_rss = use.rss_bytes - last_rss, use.rss_bytes
            bar.set_postfix(rss_mib=f"{use.rss_bytes / MIB:,.0f}")
            bar.update()
    if run.steps:
        info = client.describe_collection(f"{prefix}000").shard_info
        run.index_bytes_per_replica = float(np.mean([s["memory_bytes"] for s in info])) if info else 0.0
    return run
