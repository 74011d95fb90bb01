"""Test data: seeded synthetic vector sets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from shoal.demo import CORPUS
from shoal.lexical import hashed_bow

QUERIES = Path(CORPUS).with_name("queries_dev.jsonl.gz")


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
