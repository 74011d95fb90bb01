"""Disk faults as domain errors: a full disk is RESOURCE_EXHAUSTED, a read-only one UNAVAILABLE, both naming
the partition and the path, so an operator knows which volume to grow or fix."""

from __future__ import annotations

import errno
from pathlib import Path

from protos.errors import DiskUnavailable, ResourceExhausted, ShoalError

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


WRITE_REFUSED = "nothing of this write was acknowledged or applied"
FAULT_KINDS = ("no_space", "read_only", "other")   # fault_kind's answers, the metric's `kind` label
# What a shard was writing when a disk fault hit: the metric's `operation` label.
WAL, SNAPSHOT, REBUILD, BACKUP = "wal", "snapshot", "rebuild", "backup"
DISK_OPERATIONS = (WAL, SNAPSHOT, REBUILD, BACKUP)


def disk_error(exc: OSError, doing: str, where: str, path: Path, outcome: str = WRITE_REFUSED) -> ShoalError | None:
    """The domain error for an OSError of `doing` (e.g. "append to the WAL") on `where`'s data in `path`,
    saying what it left behind (`outcome`); None when it is not a disk-space or permission fault."""
    if exc.errno in NO_SPACE:
        return ResourceExhausted(f"{where}: no space left to {doing} in its data directory {path} "
                                 f"({errno.errorcode[exc.errno]}); {outcome}: free space or grow the volume, "
                                 f"writes resume by themselves")
    if exc.errno in READ_ONLY:
        return DiskUnavailable(f"{where}: cannot {doing} in its data directory {path}: it is read-only or not "
                               f"writable ({errno.errorcode[exc.errno]}); {outcome}: remount it read-write or fix "
                               f"its permissions, writes resume by themselves")
    return None


def fault_kind(exc: OSError) -> str:
    """The metric label of a disk fault: no_space, read_only or other."""
    if exc.errno in NO_SPACE:
        return "no_space"
    return "read_only" if exc.errno in READ_ONLY else "other"
