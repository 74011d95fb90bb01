"""A real small filesystem for disk-fault tests: a size-limited tmpfs mounted for the test (needs root),
filled to the last byte, freed again, remounted read-only and back."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = ".filler"
_BLOCK = 64 * 1024


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")


@contextlib.contextmanager
def small_tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of size_bytes at path (created) for the block; always unmounted after."""
    if os.geteuid() != 0:
        pytest.fail("disk-fault tests mount a small tmpfs and need root (the test machines run them as root)")
    path.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path))
    try:
        yield path
    finally:
        with contextlib.suppress(RuntimeError):
            _run("mount", "-o", "remount,rw", str(path))
        _run("umount", "-l", str(path))  # lazy: a process of the test still holding a file cannot keep it mounted


def fill(root: Path, leave: int = 0) -> Path:
    """Fill the filesystem of root until it has no space, then give `leave` bytes back; returns the filler."""
    filler = root / FILLER
    with open(filler, "ab", buffering=0) as f:
        block = b"\0" * _BLOCK
        while True:
            try:
                if not f.write(block):
                    break
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        with contextlib.suppress(OSError):
            while f.write(b"\0"):  # the last partial block
                pass
        if leave:
            f.truncate(max(os.fstat(f.fileno()).st_size - leave, 0))
    return filler


def free(root: Path) -> None:
    """Give the filler's space back."""
    (root / FILLER).unlink(missing_ok=True)


def set_read_only(root: Path, read_only: bool) -> None:
    """Remount the tmpfs at root read-only or read-write (read-only fails while a file is open for writing)."""
    _run("mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(root))
