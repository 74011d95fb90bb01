"""Backups of a collection: each shard's files at a consistent point, streamed from one replica into a
directory on the coordinator's machine, with a manifest (files, sizes, SHA-256, the collection's spec and
each shard's LSN, counts and content checksum); and the checks a restore makes before it uses one.

Layout: `<dir>/manifest.json` (written last: a directory without it is not a finished backup) and
`<dir>/shard-<i>/` holding shard i's `spec.json`, `snapshots/snap-<lsn>/…` and `wal/wal-*.log`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coordinator.catalog import CollectionSpec
from protos import shard_pb2
from protos.errors import FailedPrecondition, InvalidArgument, NotFound
from protos.file_stream import FileSink, file_chunks, file_sha256
from shard_node.client import ShardClient

MANIFEST = "manifest.json"
FORMAT = "shoal-backup/1"
# What a backup keeps of a collection's spec: what it is, not where it ran (uid, placement) or its name.
_PLACEMENT_FIELDS = ("name", "uid", "placement", "created_at")


@dataclass(frozen=True)
class ShardCopy:
    """One shard's part of a backup."""

    index: int
    replica: int
    lsn: int
    entries: int
    documents: int
    checksum: str
    files: list[dict[str, Any]]  # {"path", "size", "sha256"}, paths relative to the backup directory

    @property
    def bytes(self) -> int:
        """Size of its files."""
        return sum(int(f["size"]) for f in self.files)


def shard_dir(index: int) -> str:
    """A shard's folder inside a backup."""
    return f"shard-{index}"


def prepare_directory(directory: str) -> Path:
    """The backup directory (created): absolute, and absent or empty, so no backup is ever overwritten."""
    if not directory or not os.path.isabs(directory):
        raise InvalidArgument(f"the backup directory must be an absolute path on the coordinator's machine, "
                              f"got {directory!r}")
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FailedPrecondition(f"backup directory {root} already exists and is not empty: name a new one")
    root.mkdir(parents=True, exist_ok=True)
    return root


async def copy_shard(client: ShardClient, root: Path, index: int, timeout: float) -> ShardCopy:
    """Stream one replica's backup into root/shard-<index>, hashing every file."""
    target = root / shard_dir(index)
    shutil.rmtree(target, ignore_errors=True)  # a retried copy starts clean
    target.mkdir(parents=True)
    sink = FileSink(target)
    header: shard_pb2.BackupHeader | None = None
    try:
        async for chunk in client.backup(timeout):
            if chunk.HasField("header"):
                header = chunk.header
            else:
                sink.write(chunk)
        if header is None:
            raise FailedPrecondition(f"shard {index} sent no backup header")
        written = sink.close((f.path, f.size) for f in header.files)
    except BaseException:
        sink.abort()
        raise
    replica = int(client.partition.rsplit("/", 1)[1])
    files = [{"path": f"{shard_dir(index)}/{w.path}", "size": w.size, "sha256": w.sha256} for w in written]
    return ShardCopy(index, replica, header.lsn, header.entries, header.documents, header.checksum, files)


def spec_record(spec: CollectionSpec) -> dict[str, Any]:
    """The placement-independent part of a collection's spec."""
    record = dataclasses.asdict(spec)
    for name in _PLACEMENT_FIELDS:
        record.pop(name)
    return record


def write_manifest(root: Path, spec: CollectionSpec, copies: list[ShardCopy], seconds: float) -> Path:
    """Write the manifest last, atomically: from then on the directory is a finished backup."""
    manifest = {
        "format": FORMAT, "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "seconds": seconds,
        "collection": {"name": spec.name, "created_at": spec.created_at, "spec": spec_record(spec)},
        "documents": sum(c.documents for c in copies),
        "shards": [dataclasses.asdict(c) for c in sorted(copies, key=lambda c: c.index)],
    }
    path = root / MANIFEST
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


@dataclass(frozen=True)
class Backup:
    """A checked backup directory: its spec record and shards."""

    root: Path
    name: str
    spec: dict[str, Any]
    shards: list[ShardCopy]

    def chunks(self, index: int, header: shard_pb2.BackupHeader) -> Iterator[shard_pb2.BackupChunk]:
        """A RestorePartition stream for shard `index`: the header, then its files."""
        shard = self.shards[index]
        prefix = shard_dir(index) + "/"
        files = [(f["path"][len(prefix):], int(f["size"])) for f in shard.files]
        first = shard_pb2.BackupChunk(header=header)
        first.header.files.extend(shard_pb2.BackupFile(path=p, size=s) for p, s in files)
        yield first
        yield from file_chunks(self.root / shard_dir(index), files)


def open_backup(directory: str) -> Backup:
    """Read a backup's manifest and check every file it lists (size and SHA-256); refuse it naming the first
    file that is missing or differs."""
    if not directory or not os.path.isabs(directory):
        raise InvalidArgument(f"the backup directory must be an absolute path on the coordinator's machine, "
                              f"got {directory!r}")
    root = Path(directory)
    path = root / MANIFEST
    if not path.is_file():
        raise NotFound(f"{root} holds no finished backup: {MANIFEST} is missing (a backup writes it last)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise FailedPrecondition(f"{path} is format {manifest.get('format')!r}; this coordinator reads {FORMAT}")
        shards = [ShardCopy(**s) for s in manifest["shards"]]
        spec, name = dict(manifest["collection"]["spec"]), str(manifest["collection"]["name"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FailedPrecondition(f"backup manifest {path} is damaged ({type(exc).__name__}: {exc})") from None
    if [s.index for s in shards] != list(range(int(spec["shards"]))):
        raise FailedPrecondition(f"backup manifest {path} lists shards {[s.index for s in shards]}, "
                                 f"not 0..{int(spec['shards']) - 1}")
    for shard in shards:
        for f in shard.files:
            file = root / f["path"]
            if not file.is_file():
                raise FailedPrecondition(f"backup file {file} is missing: the backup is incomplete, refusing it")
            size = file.stat().st_size
            if size != int(f["size"]):
                raise FailedPrecondition(f"backup file {file} has {size} bytes, the manifest says {f['size']}: "
                                         f"the backup is damaged, refusing it")
            if file_sha256(file) != f["sha256"]:
                raise FailedPrecondition(f"backup file {file} does not match its SHA-256 in the manifest: "
                                         f"the backup is damaged, refusing it")
    return Backup(root, name, spec, shards)
