"""The committed generated code in protos/ must be exactly what protos.generate produces now."""

from __future__ import annotations

import difflib
from pathlib import Path

from protos.generate import PROTO_DIR, generate, proto_files

SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = {p.name: p for p in (tmp_path / "protos").iterdir() if p.is_file()}
    expected = {proto.stem + suffix for proto in proto_files() for suffix in SUFFIXES}
    assert len(proto_files()) >= 3
    assert set(fresh) == expected
    committed = {p.name for p in PROTO_DIR.iterdir() if p.name.endswith(SUFFIXES)}
    assert committed == expected, "a generated file is missing from, or left over in, protos/"
    stale = []
    for name in sorted(expected):
        new, old = fresh[name].read_bytes(), (PROTO_DIR / name).read_bytes()
        if new != old:
            diff = difflib.unified_diff(old.decode().splitlines(), new.decode().splitlines(),
                                        f"committed/{name}", f"generated/{name}", lineterm="", n=1)
            stale.append("\n".join(list(diff)[:20]))
    assert not stale, "generated code is stale; run `python -m protos.generate`:\n" + "\n\n".join(stale)
