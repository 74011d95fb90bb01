"""Which shard owns a document: a stable hash of its id, the same in every process and release."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from protos.wire import CHUNK_SEP


def shard_of(ids: Sequence[str], shards: int) -> np.ndarray:
    """Shard index of every id (blake2b of the UTF-8 document id, first 8 bytes little-endian, mod shards).

    A chunk entry (`doc` U+001F `n`) hashes as its document, so all of a document lives on one shard."""
    digests = b"".join(hashlib.blake2b(i.split(CHUNK_SEP, 1)[0].encode("utf-8"), digest_size=8).digest()
                       for i in ids)
    return (np.frombuffer(digests, dtype="<u8") % np.uint64(shards)).astype(np.int64)


def group_by_shard(ids: Sequence[str], shards: int) -> dict[int, np.ndarray]:
    """Positions of the ids each shard owns (only shards that own some)."""
    owner = shard_of(ids, shards)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(shards + 1))
    return {s: order[bounds[s]:bounds[s + 1]] for s in range(shards) if bounds[s + 1] > bounds[s]}
