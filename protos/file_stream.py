"""Files as a stream of BackupChunk messages and back, with their sizes and SHA-256 checked on the way.

Used both ways by backup and restore: a shard node streams a partition's files to the coordinator, which
writes them into a backup directory, and a restore streams them back to a node."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from protos import shard_pb2
from protos.errors import InvalidArgument

CHUNK_BYTES = 1 << 20  # also the block file_sha256 reads


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of one file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def safe_relative(path: str) -> PurePosixPath:
    """A relative path that stays inside its root, or InvalidArgument."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts:
        raise InvalidArgument(f"file path {path!r} must be relative and stay inside its directory")
    return p


def file_chunks(root: Path, files: Iterable[tuple[str, int]], chunk_bytes: int = CHUNK_BYTES
                ) -> Iterator[shard_pb2.BackupChunk]:
    """The first `size` bytes of every (relative path, size) under root, in chunks (an empty file: one chunk)."""
    for rel, size in files:
        with open(root / safe_relative(rel), "rb") as f:
            left = size
            while True:  # an empty file still sends one chunk, so the receiver creates it
                want = min(left, chunk_bytes)
                data = f.read(want)
                if len(data) < want:
                    raise InvalidArgument(f"{root / rel} is shorter than its recorded size {size}")
                left -= want
                yield shard_pb2.BackupChunk(path=rel, data=data)
                if not left:
                    break


@dataclass
class WrittenFile:
    """A file a FileSink wrote: where, how big, its SHA-256."""

    path: str
    size: int
    sha256: str


class FileSink:
    """Writes streamed chunks into files under root (each file once, in order), fsyncs them, hashes them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[WrittenFile] = []
        self._file = None
        self._hash = hashlib.sha256()
        self._current = ""
        self._size = 0

    def write(self, chunk: shard_pb2.BackupChunk) -> None:
        """Append a chunk to its file (a new path closes the previous file)."""
        if chunk.path != self._current or self._file is None:
            self._finish()
            target = self.root / safe_relative(chunk.path)
            if target.exists():
                raise InvalidArgument(f"file {chunk.path!r} arrived twice")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(target, "wb")  # noqa: SIM115 - closed by _finish
            self._current, self._hash, self._size = chunk.path, hashlib.sha256(), 0
        self._file.write(chunk.data)
        self._hash.update(chunk.data)
        self._size += len(chunk.data)

    def _finish(self) -> None:
        if self._file is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self.written.append(WrittenFile(self._current, self._size, self._hash.hexdigest()))

    def close(self, expected: Iterable[tuple[str, int]] = ()) -> list[WrittenFile]:
        """Finish the last file, make the directories durable and check the files against (path, size) pairs."""
        self._finish()
        for d in {self.root, *((self.root / w.path).parent for w in self.written)}:
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        got = [(w.path, w.size) for w in self.written]
        want = list(expected)
        if want and got != want:
            raise InvalidArgument(f"the stream carried files {got}, not the announced {want}")
        return self.written

    def abort(self) -> None:
        """Close an unfinished file (the caller removes the directory)."""
        if self._file is not None:
            self._file.close()
            self._file = None
