"""Write-ahead log: length+CRC framed protobuf records in numbered segment files, fsynced per append."""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from protos import shard_pb2

_HEADER = struct.Struct("<II")  # payload length, CRC32 of payload
_SEGMENT_GLOB = "wal-*.log"
FsyncObserver = Callable[[float, int], None]  # (seconds the fsync took, bytes the record added)


def _segment_name(first_lsn: int) -> str:
    return f"wal-{first_lsn:020d}.log"


def _segment_start(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_segment(path: Path) -> tuple[list[shard_pb2.WalRecord], int]:
    """Records of one segment and the byte offset where the valid ones end (a torn tail stops it)."""
    data = path.read_bytes()
    records = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        body = data[pos + _HEADER.size: pos + _HEADER.size + length]
        # A record is never empty, so a zero length is zero-filled (torn) space, not a record.
        if length == 0 or len(body) != length or zlib.crc32(body) != crc:
            break
        record = shard_pb2.WalRecord()
        record.ParseFromString(body)
        records.append(record)
        pos += _HEADER.size + length
    return records, pos


class WriteAheadLog:
    """Append-only log of a shard's writes; a record is durable once append() returns."""

    def __init__(self, directory: Path, on_fsync: FsyncObserver | None = None) -> None:
        self._dir = directory
        self._on_fsync = on_fsync
        self._dir.mkdir(parents=True, exist_ok=True)
        self._file = None
        # A failed append whose bytes could not be cut off yet: (segment, its valid size). Nothing is appended
        # until they are, so a torn frame never sits in front of later records.
        self._torn: tuple[Path, int] | None = None
        self._bytes = sum(p.stat().st_size for p in self._segments())

    def _segments(self) -> list[Path]:
        return sorted(self._dir.glob(_SEGMENT_GLOB), key=_segment_start)

    @property
    def size_bytes(self) -> int:
        """Bytes held in all segments."""
        return self._bytes

    def replay(self, after_lsn: int) -> Iterator[shard_pb2.WalRecord]:
        """Records with lsn > after_lsn, in order; cuts a torn tail off the last segment."""
        segments = self._segments()
        for n, path in enumerate(segments):
            records, valid_end = read_segment(path)
            if valid_end < path.stat().st_size:
                if n != len(segments) - 1:
                    raise RuntimeError(f"WAL segment {path} is corrupt before its end")
                with open(path, "r+b") as f:
                    f.truncate(valid_end)
                    os.fsync(f.fileno())
            for record in records:
                if record.lsn > after_lsn:
                    yield record
        self._bytes = sum(p.stat().st_size for p in self._segments())

    def open_segment(self, first_lsn: int) -> None:
        """Start writing into a new segment whose first record will have `first_lsn`."""
        self._cut_torn()
        self.close()
        path = self._dir / _segment_name(first_lsn)
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - held open for the shard's life
        fsync_dir(self._dir)

    def append(self, record: shard_pb2.WalRecord, sync: bool = True) -> int:
        """Write one record and (unless sync is False: the caller calls sync()) fsync; returns its size in bytes.

        On any failure (a full or read-only disk) the segment is cut back to where the record started and
        closed, so nothing of the record stays to be replayed, and the OSError is raised."""
        self._cut_torn()
        if self._file is None:
            self.open_segment(record.lsn)
        body = record.SerializeToString()
        frame = _HEADER.pack(len(body), zlib.crc32(body)) + body
        f = self._file
        start_size = os.fstat(f.fileno()).st_size
        start = time.perf_counter()
        try:
            view = memoryview(frame)
            while view:  # unbuffered: a short write on a nearly full disk leaves no bytes queued to retry
                view = view[f.write(view):]
            if sync:
                start = time.perf_counter()
                os.fsync(f.fileno())
        except OSError:
            self._torn = (Path(f.name), start_size)
            self.close()
            self._cut_torn(raising=False)
            raise
        self._bytes += len(frame)
        if sync and self._on_fsync is not None:
            self._on_fsync(time.perf_counter() - start, len(frame))
        return len(frame)

    def sync(self, added: int = 0) -> None:
        """fsync the current segment (records appended without sync are durable once this returns)."""
        start = time.perf_counter()
        os.fsync(self._file.fileno())
        if self._on_fsync is not None:
            self._on_fsync(time.perf_counter() - start, added)

    def read_after(self, after_lsn: int, through_lsn: int, max_bytes: int) -> list[shard_pb2.WalRecord] | None:
        """Records after_lsn < lsn <= through_lsn, in order, about max_bytes of them, read while writers go on;
        None when the WAL no longer holds lsn after_lsn + 1 (a snapshot dropped it)."""
        segments = self._segments()
        starts = [_segment_start(p) for p in segments]
        first = next((n for n in range(len(segments)) if n + 1 == len(segments) or starts[n + 1] > after_lsn + 1),
                     None)
        out: list[shard_pb2.WalRecord] = []
        size = 0
        for path in segments[first:] if first is not None else []:
            try:
                records, _ = read_segment(path)  # a frame being appended reads as a torn tail: it stops there
            except FileNotFoundError:  # dropped under us by a snapshot
                return out or None
            for record in records:
                if record.lsn <= after_lsn:
                    continue
                if record.lsn > through_lsn or size >= max_bytes:
                    return out
                if record.lsn != after_lsn + 1 + len(out):
                    return out or None
                out.append(record)
                size += record.ByteSize()
        if not out and through_lsn > after_lsn:
            return None
        return out

    def reset(self, first_lsn: int) -> None:
        """Delete every segment (a copied state replaces what they hold) and start a new one at first_lsn."""
        self.close()
        for path in self._segments():
            path.unlink()
        self._bytes = 0
        fsync_dir(self._dir)
        self.open_segment(first_lsn)

    def _cut_torn(self, raising: bool = True) -> None:
        """Truncate the segment a failed append left torn back to its valid size (truncating needs no space)."""
        if self._torn is None:
            return
        path, size = self._torn
        try:
            with open(path, "r+b") as f:
                f.truncate(size)
                os.fsync(f.fileno())
        except OSError:
            if raising:
                raise
            return
        self._torn = None

    def segments_through(self, lsn: int) -> list[Path]:
        """Segments whose first record is at or below `lsn` (with the current one closed: records <= lsn)."""
        return [p for p in self._segments() if _segment_start(p) <= lsn and p.stat().st_size]

    def drop_through(self, lsn: int) -> None:
        """Delete segments every record of which is at or below `lsn` (a snapshot covers them)."""
        segments = self._segments()
        for path, nxt in zip(segments, segments[1:], strict=False):
            if _segment_start(nxt) <= lsn + 1:
                self._bytes -= path.stat().st_size
                path.unlink()
        fsync_dir(self._dir)

    def close(self) -> None:
        """Close the current segment."""
        if self._file is not None:
            self._file.close()
            self._file = None
