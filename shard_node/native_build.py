"""Compile shard_node/native/hnsw_graph.cpp against hnswlib's headers into the library shard_node/graph.py loads.

hnswlib's headers are not installed by its wheel or sdist build, so they are taken from the same release's
source archive on the package index (pip download, digest checked) and the library is compiled with g++, as
hnswlib's own build does (-O3, -march=native: build where it runs). `make install` runs this; it is a no-op when
the library is newer than its source.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HNSWLIB_VERSION = "0.8.0"
HNSWLIB_SDIST_SHA256 = "cb6d037eedebb34a7134e7dc78966441dfd04c9cf5ee93911be911ced951c44c"
NATIVE_DIR = Path(__file__).resolve().parent / "native"
SOURCE = NATIVE_DIR / "hnsw_graph.cpp"
LIBRARY = NATIVE_DIR / "_hnsw_graph.so"
HEADERS = NATIVE_DIR / "include"
FLAGS = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-pthread", "-fno-math-errno", "-fopenmp-simd"]


def fetch_headers(into: Path) -> None:
    """Unpack hnswlib's headers (hnswlib/*.h) from its source archive, downloaded and digest-checked."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", f"hnswlib=={HNSWLIB_VERSION}",
                        "--no-binary", "hnswlib", "--no-deps", "-d", tmp], check=True)
        archive = Path(tmp) / f"hnswlib-{HNSWLIB_VERSION}.tar.gz"
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != HNSWLIB_SDIST_SHA256:
            raise SystemExit(f"hnswlib {HNSWLIB_VERSION} source archive has sha256 {digest}, expected "
                             f"{HNSWLIB_SDIST_SHA256}; refusing to build from it")
        prefix = f"hnswlib-{HNSWLIB_VERSION}/hnswlib/"
        target = into / "hnswlib"
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith(prefix) and member.name.endswith(".h"):
                    source = tar.extractfile(member)
                    assert source is not None
                    (target / Path(member.name).name).write_bytes(source.read())


def build(force: bool = False) -> Path:
    """Compile the library unless it is newer than its source; returns its path."""
    if not force and LIBRARY.exists() and LIBRARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return LIBRARY
    if not (HEADERS / "hnswlib" / "hnswalg.h").exists():
        print(f"fetching hnswlib {HNSWLIB_VERSION} headers", file=sys.stderr)
        fetch_headers(HEADERS)
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise SystemExit("no C++ compiler (g++) found: install build-essential, then run make install")
    tmp = LIBRARY.with_suffix(".tmp.so")
    print(f"compiling {SOURCE.name}", file=sys.stderr)
    subprocess.run([compiler, *FLAGS, "-I", str(HEADERS), str(SOURCE), "-o", str(tmp)], check=True)
    tmp.rename(LIBRARY)
    return LIBRARY


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even when the library is up to date")
    args = ap.parse_args(argv)
    print(build(args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
