"""WriteAheadLog: append/replay, torn tails, CRC mismatches, segment dropping and size accounting."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from protos import shard_pb2
from shard_node.wal import WriteAheadLog, read_segment


def rec(lsn: int, *ids: str) -> shard_pb2.WalRecord:
    """A delete record (small and easy to tell apart) with the given lsn."""
    return shard_pb2.WalRecord(lsn=lsn, delete=shard_pb2.ShardDeleteRequest(ids=list(ids) or [f"id{lsn}"]))


def frame(record: shard_pb2.WalRecord) -> bytes:
    """The on-disk frame of a record, built independently of the WAL: <len u32><crc32 u32><body>."""
    body = record.SerializeToString()
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def segments(d: Path) -> list[str]:
    """Names of the segment files, sorted."""
    return sorted(p.name for p in d.glob("wal-*.log"))


def disk_bytes(d: Path) -> int:
    """Bytes in all segment files."""
    return sum(p.stat().st_size for p in d.glob("wal-*.log"))


@pytest.fixture
def wal(tmp_path: Path) -> Iterator[WriteAheadLog]:
    """A WAL in an empty directory, closed afterwards."""
    w = WriteAheadLog(tmp_path / "wal")
    yield w
    w.close()


def write(w: WriteAheadLog, lsns: range, new_segment: bool = False) -> None:
    """Append records with the given lsns, optionally into a fresh segment first."""
    if new_segment:
        w.open_segment(lsns[0])
    for lsn in lsns:
        w.append(rec(lsn))


def test_append_writes_exact_frames(wal: WriteAheadLog, tmp_path: Path) -> None:
    sizes = [wal.append(rec(lsn)) for lsn in (1, 2, 3)]
    wal.close()
    [name] = segments(tmp_path / "wal")
    assert name == f"wal-{1:020d}.log"
    data = (tmp_path / "wal" / name).read_bytes()
    assert data == frame(rec(1)) + frame(rec(2)) + frame(rec(3))
    assert sizes == [len(frame(rec(i))) for i in (1, 2, 3)]


def test_replay_filters_by_lsn(wal: WriteAheadLog) -> None:
    write(wal, range(1, 6))
    write(wal, range(6, 11), new_segment=True)
    wal.close()
    assert [r.lsn for r in wal.replay(0)] == list(range(1, 11))
    assert [r.lsn for r in wal.replay(4)] == list(range(5, 11))
    assert [r.lsn for r in wal.replay(7)] == [8, 9, 10]
    assert list(wal.replay(10)) == []
    assert [list(r.delete.ids) for r in wal.replay(9)] == [["id10"]]


def test_replay_from_a_new_instance(tmp_path: Path) -> None:
    w = WriteAheadLog(tmp_path)
    write(w, range(1, 4))
    w.close()
    again = WriteAheadLog(tmp_path)
    assert again.size_bytes == disk_bytes(tmp_path)
    assert [r.lsn for r in again.replay(0)] == [1, 2, 3]


@pytest.mark.parametrize("cut", [1, 3, 8, 9])
def test_torn_tail_is_cut(wal: WriteAheadLog, tmp_path: Path, cut: int) -> None:
    write(wal, range(1, 5))
    wal.close()
    path = tmp_path / "wal" / segments(tmp_path / "wal")[0]
    good = len(frame(rec(1))) + len(frame(rec(2))) + len(frame(rec(3)))
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - cut)
    assert [r.lsn for r in wal.replay(0)] == [1, 2, 3]
    assert path.stat().st_size == good, "the torn record must be cut off the file"
    assert wal.size_bytes == good
    # appending after recovery continues cleanly, and replays again
    write(wal, range(4, 6), new_segment=True)
    wal.close()
    assert [r.lsn for r in wal.replay(0)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("garbage", [b"\x01", b"\xff" * 7, b"\x10\x00\x00\x00garbage!", b"\xde\xad\xbe\xef" * 40])
def test_garbage_tail_is_cut(wal: WriteAheadLog, tmp_path: Path, garbage: bytes) -> None:
    write(wal, range(1, 4))
    wal.close()
    path = tmp_path / "wal" / segments(tmp_path / "wal")[0]
    good = path.stat().st_size
    with open(path, "ab") as f:
        f.write(garbage)
    assert [r.lsn for r in wal.replay(0)] == [1, 2, 3]
    assert path.stat().st_size == good
    assert wal.size_bytes == good


def test_zero_padding_tail_yields_no_records(wal: WriteAheadLog, tmp_path: Path) -> None:
    """A zero-filled tail (file extended, data never written) must not produce records."""
    write(wal, range(1, 3))
    wal.close()
    path = tmp_path / "wal" / segments(tmp_path / "wal")[0]
    with open(path, "ab") as f:
        f.write(b"\x00" * 4096)
    valid = path.stat().st_size - 4096
    assert [r.lsn for r in wal.replay(0)] == [1, 2]
    assert path.stat().st_size == valid, "the zero-filled tail is cut off like any torn tail"


def test_crc_mismatch_in_last_record_is_torn(wal: WriteAheadLog, tmp_path: Path) -> None:
    write(wal, range(1, 4))
    wal.close()
    path = tmp_path / "wal" / segments(tmp_path / "wal")[0]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip a byte of the last record's body: same length, wrong CRC
    path.write_bytes(bytes(data))
    records, valid_end = read_segment(path)
    assert [r.lsn for r in records] == [1, 2]
    assert valid_end == len(frame(rec(1))) + len(frame(rec(2)))
    assert [r.lsn for r in wal.replay(0)] == [1, 2]
    assert path.stat().st_size == valid_end


def test_corrupt_header_crc_in_last_record_is_torn(wal: WriteAheadLog, tmp_path: Path) -> None:
    write(wal, range(1, 4))
    wal.close()
    path = tmp_path / "wal" / segments(tmp_path / "wal")[0]
    data = bytearray(path.read_bytes())
    crc_at = len(frame(rec(1))) + len(frame(rec(2))) + 4
    data[crc_at] ^= 0x01
    path.write_bytes(bytes(data))
    assert [r.lsn for r in wal.replay(0)] == [1, 2]


def test_corruption_before_the_last_segment_is_an_error(wal: WriteAheadLog, tmp_path: Path) -> None:
    write(wal, range(1, 4))
    write(wal, range(4, 6), new_segment=True)
    wal.close()
    first = tmp_path / "wal" / segments(tmp_path / "wal")[0]
    size = first.stat().st_size
    with open(first, "r+b") as f:
        f.truncate(size - 2)
    with pytest.raises(RuntimeError, match="corrupt"):
        list(wal.replay(0))
    assert first.stat().st_size == size - 2, "an earlier segment must not be silently truncated"


def test_drop_through_deletes_only_fully_covered_segments(wal: WriteAheadLog, tmp_path: Path) -> None:
    d = tmp_path / "wal"
    write(wal, range(1, 4))  # segment 1: lsn 1..3
    write(wal, range(4, 7), new_segment=True)  # segment 4: lsn 4..6
    write(wal, range(7, 10), new_segment=True)  # segment 7: lsn 7..9 (open)
    names = segments(d)
    assert names == [f"wal-{n:020d}.log" for n in (1, 4, 7)]
    wal.drop_through(2)
    assert segments(d) == names
    wal.drop_through(3)
    assert segments(d) == names[1:]
    wal.drop_through(5)
    assert segments(d) == names[1:]
    assert wal.size_bytes == disk_bytes(d)
    wal.drop_through(100)  # the last (current) segment is never dropped
    assert segments(d) == names[2:]
    assert wal.size_bytes == disk_bytes(d)
    assert [r.lsn for r in wal.replay(0)] == [7, 8, 9]


def test_drop_through_with_empty_current_segment(wal: WriteAheadLog, tmp_path: Path) -> None:
    """The snapshot pattern: open segment lsn+1, then drop everything through lsn."""
    write(wal, range(1, 6))
    wal.open_segment(6)
    wal.drop_through(5)
    assert segments(tmp_path / "wal") == [f"wal-{6:020d}.log"]
    assert wal.size_bytes == 0
    write(wal, range(6, 8))
    assert [r.lsn for r in wal.replay(5)] == [6, 7]


def test_size_bytes_accounting(wal: WriteAheadLog, tmp_path: Path) -> None:
    d = tmp_path / "wal"
    assert wal.size_bytes == 0
    total = 0
    for lsn in range(1, 4):
        total += wal.append(rec(lsn, *[f"x{lsn}-{i}" for i in range(lsn * 3)]))
        assert wal.size_bytes == total == disk_bytes(d)
    write(wal, range(4, 6), new_segment=True)
    tail = len(frame(rec(4))) + len(frame(rec(5)))
    assert wal.size_bytes == total + tail == disk_bytes(d)
    wal.drop_through(3)
    assert wal.size_bytes == tail == disk_bytes(d)
    wal.close()
    assert WriteAheadLog(d).size_bytes == disk_bytes(d)
