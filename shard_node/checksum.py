"""Content checksum of a partition: equal content gives an equal checksum whatever order it was written in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

_MASK = (1 << 64) - 1


def document_hash(doc_id: str, vector: np.ndarray, payload: dict[str, Any]) -> int:
    """64-bit hash of one live document: its id, vector bytes and payload (keys sorted)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(doc_id.encode("utf-8"))
    h.update(b"\x00")
    h.update(np.ascontiguousarray(vector, dtype=np.float32).tobytes())
    h.update(b"\x00")
    h.update(json.dumps(payload, sort_keys=True, default=str).encode("utf-8"))
    return int.from_bytes(h.digest(), "little")


def content_checksum(ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> int:
    """Sum (mod 2**64) of every live document's hash: order-independent, and any changed document changes it."""
    total = 0
    for doc_id, vector, payload in zip(ids, vectors, payloads, strict=True):
        total = (total + document_hash(doc_id, vector, payload)) & _MASK
    return total
