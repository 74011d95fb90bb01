"""Files as BackupChunk streams: round trip with SHA-256, short files and escaping paths refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from protos.errors import InvalidArgument
from protos.file_stream import FileSink, file_chunks


def test_round_trip_in_small_chunks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    files = {"x.bin": bytes(range(256)) * 41, "a/b/empty": b"", "a/y": b"hello"}
    for rel, data in files.items():
        (src / rel).write_bytes(data + b"tail not announced")
    announced = [(rel, len(data)) for rel, data in files.items()]
    chunks = list(file_chunks(src, announced, chunk_bytes=1000))
    assert len(chunks) == 11 + 1 + 1  # 10,496 bytes in 1,000-byte chunks; an empty file still sends one
    sink = FileSink(tmp_path / "dst")
    (tmp_path / "dst").mkdir()
    for c in chunks:
        sink.write(c)
    written = sink.close(announced)
    assert [(w.path, w.size, w.sha256) for w in written] == [
        (rel, len(data), hashlib.sha256(data).hexdigest()) for rel, data in files.items()]
    assert all((tmp_path / "dst" / rel).read_bytes() == data for rel, data in files.items())


def test_refusals(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    with pytest.raises(InvalidArgument, match="shorter"):
        list(file_chunks(tmp_path, [("f", 10)]))
    with pytest.raises(InvalidArgument, match="inside"):
        list(file_chunks(tmp_path, [("../f", 1)]))
    sink = FileSink(tmp_path / "out")
    with pytest.raises(InvalidArgument, match="inside"):
        sink.write(next(file_chunks(tmp_path, [("f", 3)])).__class__(path="/etc/passwd", data=b"x"))
    (tmp_path / "out").mkdir()
    sink.write(next(file_chunks(tmp_path, [("f", 3)])))
    with pytest.raises(InvalidArgument, match="announced"):
        sink.close([("f", 4)])
