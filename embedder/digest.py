"""SHA-256 digests of a model's weight files, so a changed file under the same version is caught."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from protos.file_stream import file_sha256


def weights_digest(files: Iterable[Path]) -> str:
    """`sha256:<hex>` over the files' names and contents, independent of the order they are given in."""
    paths = [Path(f).resolve() for f in files]
    if not paths:
        raise ValueError("a model needs at least one weight file to digest")
    # Names relative to the files' common folder, so moving a model directory keeps its digest.
    base = Path(os.path.commonpath([p.parent for p in paths]))
    entries = sorted((p.relative_to(base).as_posix(), file_sha256(p)) for p in paths)
    h = hashlib.sha256()
    for name, sha in entries:
        h.update(f"{name} {sha}\n".encode())
    return "sha256:" + h.hexdigest()
