"""A lexical stand-in embedding: signed feature hashing of a text's words.

Tests and benchmarks use it where any deterministic text vectors do (the real models live in embedder/):
it finds texts that share words with a query, at no cost and with no model weights.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

LEXICAL_DIM = 256
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def hashed_bow(texts: Sequence[str], dim: int = LEXICAL_DIM) -> np.ndarray:
    """Signed feature-hashing vectors of the words of each text (log term frequency, unit length)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        if not words:
            continue
        hashes = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in words), dtype=np.uint64, count=len(words))
        buckets, counts = np.unique(hashes, return_counts=True)
        signs = np.where((buckets >> np.uint64(31)) & np.uint64(1), -1.0, 1.0)
        np.add.at(out[row], (buckets % np.uint64(dim)).astype(np.int64), signs * (1.0 + np.log(counts)))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)
