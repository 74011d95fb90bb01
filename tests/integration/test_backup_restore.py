"""Backup and restore: a backup taken while a writer upserts restores into a fresh cluster with the same
documents (count and content checksum at the backup's point, everything acknowledged before it present), and
damaged or mismatched backups are refused by name."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import shoal
from protos.checksum import combine_checksums, content_checksum
from protos.wire import pack_vector, payload_to_proto
from shoal.serve import LocalCluster
from tests.support.threads import CheckedThread

DIM = 16
SHARDS = 3
BATCH = 50


def docs_checksum(client: shoal.Client, name: str, ids: list[str]) -> tuple[set[str], str]:
    """The ids among `ids` the collection holds and the content checksum of those documents."""
    found = []
    for start in range(0, len(ids), 500):
        found.extend(client.get(name, ids[start:start + 500], with_vectors=True))
    return ({d.id for d in found},
            content_checksum([d.id for d in found], [pack_vector(d.vector) for d in found],
                             [payload_to_proto(d.payload) for d in found]))


def batch_of(start: int, n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray, list[dict]]:
    """n new documents numbered from start: ids, vectors and payloads."""
    ids = [f"doc-{i}" for i in range(start, start + n)]
    payloads = [{"tag": f"t{i % 7}", "n": i, "text": f"document number {i}"} for i in range(start, start + n)]
    return ids, rng.standard_normal((n, DIM)).astype(np.float32), payloads


class Writer(CheckedThread):
    """Upserts new documents in batches until stopped; remembers which were acknowledged, in order."""

    def __init__(self, address: str, name: str, first: int) -> None:
        super().__init__(name="backup-writer")
        self.address, self.collection, self.next = address, name, first
        self.acked: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.batches = 0

    def body(self) -> None:
        rng = np.random.default_rng(1)
        with shoal.Client(self.address) as client:
            while not self.stop.is_set():
                ids, vectors, payloads = batch_of(self.next, BATCH, rng)
                client.upsert(self.collection, ids, vectors, payloads)
                with self.lock:
                    self.acked.extend(ids)
                    self.batches += 1
                self.next += BATCH

    def acknowledged(self) -> list[str]:
        """Ids acknowledged so far."""
        with self.lock:
            return list(self.acked)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A second, fresh cluster to restore into (no embedder: the collections hold bare vectors)."""
    with LocalCluster(tmp_path_factory.mktemp("restore-target"), embedder=False) as lc:
        yield lc


def test_backup_under_writes_restores_into_a_fresh_cluster(client: shoal.Client, cluster: LocalCluster,
                                                             target: LocalCluster, collection_name: str,
                                                             tmp_path: Path) -> None:
    client.create_collection(collection_name, dim=DIM, shards=SHARDS, fields={"tag": "keyword", "text": "text"})
    rng = np.random.default_rng(0)
    ids, vectors, payloads = batch_of(0, 600, rng)
    client.upsert(collection_name, ids, vectors, payloads)
    client.delete(collection_name, ids[:40])  # tombstones and delete records travel too
    client.compact(collection_name, wait=True)  # each shard now has a snapshot; what follows is its WAL tail
    client.upsert(collection_name, ids[40:60], vectors[40:60] * 2, payloads[40:60])
    writer = Writer(cluster.address, collection_name, first=600)
    writer.start()
    while writer.batches < 3:
        writer.stop.wait(0.05)
        assert writer.is_alive(), writer.error
    acked_before = set(ids[40:]) | set(writer.acknowledged())
    backup_dir = tmp_path / "backup"
    report = client.snapshot(collection_name, str(backup_dir))
    files = [p.relative_to(backup_dir).as_posix() for p in backup_dir.rglob("*") if p.is_file()]
    assert any("/snapshots/" in f for f in files) and any("/wal/" in f for f in files), files
    batches_at_end = writer.batches
    while writer.batches < batches_at_end + 2:  # writes kept flowing during and after the backup
        writer.stop.wait(0.05)
        assert writer.is_alive(), writer.error
    writer.stop.set()
    writer.join(60)

    sent = ids + [f"doc-{i}" for i in range(600, writer.next)]
    assert Path(report["manifest"]).is_file()
    assert len(report["shards"]) == SHARDS
    in_backup = report["documents"]
    assert in_backup == sum(s["documents"] for s in report["shards"])
    assert len(acked_before) <= in_backup < len(sent) - 40  # later writes are not in it

    with shoal.Client(target.address) as other:
        restored = other.restore(str(backup_dir), name="copy")
        assert (restored.shards, restored.dim, restored.metric, restored.fields) == (
            SHARDS, DIM, "cosine", {"tag": "keyword", "text": "text"})
        assert other.count("copy") == in_backup
        present, restored_sum = docs_checksum(other, "copy", sent)
        assert len(present) == in_backup
        assert acked_before <= present, f"{len(acked_before - present)} acknowledged documents are missing"
        assert not present & set(ids[:40])  # deleted before the backup: stay deleted
        # The source still holds these documents unchanged (the writer only adds new ids).
        _, source_sum = docs_checksum(client, collection_name, sorted(present))
        assert restored_sum == source_sum == combine_checksums([s["checksum"] for s in report["shards"]])
        # The restored collection serves: filters, full text and vectors, and it takes new writes.
        probe = other.get("copy", [sorted(present)[0]], with_vectors=True)[0]
        assert other.search("copy", vector=probe.vector, k=1)[0].id == probe.id
        assert {h.id for h in other.search("copy", query=f'text:"number {probe.payload["n"]}"', k=5)} >= {probe.id}
        other.upsert("copy", ["fresh"], rng.standard_normal((1, DIM)))
        assert other.count("copy") == in_backup + 1


def test_damaged_or_mismatched_backups_are_refused(client: shoal.Client, collection_name: str,
                                                   tmp_path: Path) -> None:
    client.create_collection(collection_name, dim=DIM, shards=2)
    ids, vectors, payloads = batch_of(0, 200, np.random.default_rng(2))
    client.upsert(collection_name, ids, vectors, payloads)
    client.describe_collection(collection_name)
    good = tmp_path / "good"
    client.snapshot(collection_name, str(good))

    with pytest.raises(shoal.FailedPrecondition, match="not empty"):
        client.snapshot(collection_name, str(good))
    with pytest.raises(shoal.InvalidArgument, match="absolute"):
        client.snapshot(collection_name, "relative/dir")
    with pytest.raises(shoal.FailedPrecondition, match="2 shards; restoring into 3"):
        client.restore(str(good), name=f"{collection_name}-3", shards=3)
    with pytest.raises(shoal.NotFound, match="manifest.json is missing"):
        client.restore(str(tmp_path / "nothing-here"), name=f"{collection_name}-x")

    damaged = tmp_path / "damaged"
    shutil.copytree(good, damaged)
    victim = sorted((damaged / "shard-1").rglob("*.log"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    name = f"r-{uuid.uuid4().hex[:8]}"
    with pytest.raises(shoal.FailedPrecondition, match=f"{victim}.*SHA-256"):
        client.restore(str(damaged), name=name)
    assert name not in {c.name for c in client.list_collections()}

    # The good copy restores into the same cluster under another name, with the same content.
    restored = client.restore(str(good), name=name)
    try:
        assert client.count(name) == 200
        assert docs_checksum(client, name, ids)[1] == docs_checksum(client, collection_name, ids)[1]
        assert restored.shards == 2
    finally:
        client.drop_collection(name)


def test_cli_snapshot_and_restore(client: shoal.Client, cluster: LocalCluster, collection_name: str,
                                  tmp_path: Path) -> None:
    from tests.integration.test_cli import shoal_cmd

    client.create_collection(collection_name, dim=DIM, shards=2, replication_factor=2)
    ids, vectors, payloads = batch_of(0, 120, np.random.default_rng(3))
    client.upsert(collection_name, ids, vectors, payloads)
    done = shoal_cmd(cluster.address, "snapshot", collection_name, str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    assert f"backed up {collection_name}: 120 documents, 2 shards" in done.stdout
    name = f"r-{uuid.uuid4().hex[:8]}"
    done = shoal_cmd(cluster.address, "restore", str(tmp_path / "b"), "--name", name)
    try:
        assert done.returncode == 0, done.stderr
        assert f"restored {name}: 120 documents" in done.stdout
        shards = client.describe_collection(name).shard_info  # every replica was restored from the one copy
        assert sorted((s["index"], s["replica"]) for s in shards) == [(0, 0), (0, 1), (1, 0), (1, 1)]
        by_shard = {i: {s["live"] for s in shards if s["index"] == i} for i in (0, 1)}
        assert all(len(v) == 1 for v in by_shard.values()) and sum(v.pop() for v in by_shard.values()) == 120
    finally:
        if name in {c.name for c in client.list_collections()}:
            client.drop_collection(name)
    refused = shoal_cmd(cluster.address, "restore", str(tmp_path / "b"), "--name", name, "--shards", "5")
    assert refused.returncode == 2 and "FailedPrecondition" in refused.stderr and "5" in refused.stderr
