"""A content checksum of documents (ids, vectors, payloads) that every side computes the same way.

Order-independent: the sum of one BLAKE2b digest per entry, so shards, replicas, a backup and a client that
read the same documents in any order agree, and a single changed byte changes it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from protos import common_pb2

_BITS = 128


def content_checksum(ids: Sequence[str], vectors: Sequence[bytes], payloads: Sequence[common_pb2.Payload]) -> str:
    """Hex checksum of entries given as ids, packed float32 vectors and Payload messages."""
    total = 0
    for doc_id, vector, payload in zip(ids, vectors, payloads, strict=True):
        h = hashlib.blake2b(digest_size=_BITS // 8)
        for part in (doc_id.encode("utf-8"), vector, payload.SerializeToString(deterministic=True)):
            h.update(len(part).to_bytes(8, "little"))  # lengths first: no two entries hash the same bytes
            h.update(part)
        total = (total + int.from_bytes(h.digest(), "little")) % (1 << _BITS)
    return f"{total:032x}"


def combine_checksums(checksums: Sequence[str]) -> str:
    """The checksum of the union of disjoint sets of entries (e.g. every shard of a collection)."""
    return f"{sum(int(c, 16) for c in checksums) % (1 << _BITS):032x}"
