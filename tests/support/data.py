"""Test data: real Debian package texts (bundled in data/debian) as vectors, and seeded synthetic sets."""

from __future__ import annotations

import gzip
import itertools
import json
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shoal.demo import CORPUS, read_corpus

QUERIES = Path(CORPUS).with_name("queries_dev.jsonl.gz")
LEXICAL_DIM = 256
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def hashed_bow(texts: Sequence[str], dim: int = LEXICAL_DIM) -> np.ndarray:
    """Signed feature-hashing vectors of the words of each text (log term frequency, unit length).

    Cheap, deterministic vectors of real text for tests that need many of them fast; they share
    the corpus's word statistics but capture no meaning (the embedder's models do that)."""
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


def corpus_vectors(n: int) -> tuple[list[str], np.ndarray, list[dict]]:
    """The first n corpus documents: ids, lexical vectors of text_en, payload fields."""
    docs = list(itertools.islice(read_corpus(), n))
    ids = [d["id"] for d in docs]
    payloads = [{"section": d["section"], "installed_size_kb": d["installed_size_kb"]} for d in docs]
    return ids, hashed_bow([d["text_en"] for d in docs]), payloads


def query_vectors(n: int, seed: int = 0) -> np.ndarray:
    """Vectors of n dev queries (package summaries), sampled with a fixed seed."""
    with gzip.open(QUERIES, "rt", encoding="utf-8") as f:
        queries = [json.loads(line)["query"] for line in f]
    pick = np.random.default_rng(seed).choice(len(queries), size=n, replace=False)
    return hashed_bow([queries[i] for i in pick])


def random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Seeded standard-normal float32 vectors."""
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def clustered(n: int, n_queries: int, dim: int = 384, intrinsic: int = 96, clusters: int = 1000,
              spread: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors shaped like text embeddings: Gaussian clusters in a low-dimensional subspace, projected
    up with a little ambient noise; queries come from the same clusters but are not in the set."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, intrinsic))
    projection = rng.standard_normal((intrinsic, dim)) / np.sqrt(intrinsic)

    def draw(m: int) -> np.ndarray:
        which = rng.integers(0, clusters, m)
        x = (centres[which] + spread * rng.standard_normal((m, intrinsic))) @ projection
        x += 0.05 * rng.standard_normal((m, dim))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return draw(n), draw(n_queries)
