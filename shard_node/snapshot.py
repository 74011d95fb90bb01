"""Snapshots of a partition: written to a temp directory, fsynced, then renamed into place."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from shard_node.graph import saved_vector_bytes
from shard_node.partition import GRAPH_FILE, MemoryFigures, Partition
from shard_node.settings import DEFAULT_ALLOWED_CACHE_MB, PartitionSpec
from shard_node.wal import fsync_dir

_PREFIX = "snap-"
_TMP_SUFFIX = ".tmp"
_META = "meta.json"  # written last: a snapshot without it is not one


def _lsn_of(path: Path) -> int:
    return int(path.name[len(_PREFIX):])


def complete_snapshots(root: Path) -> list[Path]:
    """Finished snapshots under root, oldest first (temp or torn ones are never listed)."""
    if not root.exists():
        return []
    found = [p for p in root.glob(_PREFIX + "*")
             if p.is_dir() and not p.name.endswith(_TMP_SUFFIX) and (p / _META).exists()]
    return sorted(found, key=_lsn_of)


def write_snapshot(root: Path, partition: Partition, lsn: int, extra: dict[str, Any] | None = None) -> Path:
    """Persist the partition as of `lsn` (with `extra` facts in its meta file); returns the snapshot directory.

    One writer at a time per root: the caller serialises snapshot writes."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{_PREFIX}{lsn:020d}{_TMP_SUFFIX}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        partition.save(tmp)
        (tmp / _META).write_text(json.dumps({**(extra or {}), "lsn": lsn, "spec": partition.spec.to_dict()}))
        for child in tmp.iterdir():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(tmp)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk gets its space back; the old snapshot stays
        raise
    final = root / f"{_PREFIX}{lsn:020d}"
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_dir(root)
    for old in complete_snapshots(root):
        if old != final:
            shutil.rmtree(old)
    for stale in root.glob(_PREFIX + "*" + _TMP_SUFFIX):
        shutil.rmtree(stale)
    return final


def load_latest(root: Path, search_threads: int, allowed_cache_mb: int = DEFAULT_ALLOWED_CACHE_MB
                ) -> tuple[Partition, dict[str, Any]] | None:
    """The newest complete snapshot as (partition, meta), or None when there is none.

    The partition takes the spec the snapshot was built with: a rebuild may have changed M or ef_construction."""
    snaps = complete_snapshots(root)
    if not snaps:
        return None
    latest = snaps[-1]
    meta = json.loads((latest / _META).read_text())
    spec = PartitionSpec(**meta["spec"])
    return Partition.load(latest, spec, search_threads=search_threads, allowed_cache_mb=allowed_cache_mb), meta


_PAYLOAD_FILES = ("ids.json", "payloads.jsonl", "deleted.npy", _META)


def disk_figures(root: Path) -> MemoryFigures:
    """Bytes the complete snapshots under root take, by what the files hold (the full-text index is not
    written: it is rebuilt from the payloads at load)."""
    sizes = {"vectors": 0, "graph": 0, "payloads": 0}
    for snap in complete_snapshots(root):
        for f in snap.iterdir():
            if not f.is_file():
                continue
            if f.name == GRAPH_FILE:  # the graph's blocks hold the vectors: count them as vectors
                spec = json.loads((snap / _META).read_text())["spec"]
                vectors = saved_vector_bytes(f, spec.get("storage", "float32"), spec["metric"], int(spec["dim"]))
                sizes["vectors"] += vectors
                sizes["graph"] += f.stat().st_size - vectors
            else:
                sizes["payloads" if f.name in _PAYLOAD_FILES else "vectors"] += f.stat().st_size
    return MemoryFigures(**sizes)
