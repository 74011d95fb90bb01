"""A shard's backup point: its files (snapshot + WAL through the LSN) reopen as the same content, while writes
made during the copy stay out of it and are kept by the shard."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from protos.checksum import content_checksum
from protos.wire import pack_vector, payload_to_proto
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.store import ShardStore

DIM = 6
SPEC = PartitionSpec(dim=DIM, metric="cosine", m=8, ef_construction=50, ef_search=32, fields={"tag": "keyword"})


def upsert(store: ShardStore, start: int, n: int) -> None:
    """n documents numbered from start, with payloads."""
    ids = [f"d{i}" for i in range(start, start + n)]
    vectors = np.random.default_rng(start).standard_normal((n, DIM))
    store.upsert(ids, vectors, [payload_to_proto({"tag": f"t{i % 3}", "i": i}) for i in range(start, start + n)])


def checksum(store: ShardStore) -> str:
    """Content checksum of a store's live entries."""
    ids, vectors, payloads = store.partition.live_documents()
    return content_checksum(ids, [pack_vector(v) for v in vectors], [payload_to_proto(p) for p in payloads])


def test_backup_point_files_reopen_as_the_same_shard(tmp_path: Path) -> None:
    settings = ShardSettings(initial_capacity=64)
    store = ShardStore(tmp_path / "src", SPEC, settings)
    upsert(store, 0, 80)
    store.snapshot()
    upsert(store, 80, 40)
    store.delete(["d3", "d90"])
    expected = checksum(store)
    with store.backup_point() as point:
        upsert(store, 200, 10)  # writes go on while the files are copied ...
        for rel, path in point.files:
            (tmp_path / "copy" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, tmp_path / "copy" / rel)
    assert (point.lsn, point.entries, point.documents, point.checksum) == (3, 118, 118, expected)
    rels = [rel for rel, _ in point.files]
    assert "spec.json" in rels
    assert any(r.startswith("snapshots/") for r in rels) and any(r.startswith("wal/") for r in rels)
    copy = ShardStore(tmp_path / "copy", SPEC, settings)
    assert copy.figures().last_lsn == 3 and checksum(copy) == expected  # ... and are not in the copy
    assert store.figures().live == 128
    copy.close()
    store.close()
