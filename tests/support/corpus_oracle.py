"""The whole bundled Debian corpus as a filtered-search oracle: vectors, payload columns, exact answers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from shoal.demo import read_corpus
from shoal.lexical import hashed_bow
from tests.support.oracle import exact_distances

FIELDS = {"section": "keyword", "architecture": "keyword", "tags": "tags", "installed_size_kb": "int",
          "priority": "keyword", "text_en": "text"}


@dataclass
class Corpus:
    """Ids, vectors and payload columns of every corpus document, in corpus order."""

    ids: np.ndarray
    vectors: np.ndarray
    payloads: list[dict]
    section: np.ndarray
    architecture: np.ndarray
    size: np.ndarray
    tags: list[frozenset[str]]

    def has_tag(self, tag: str) -> np.ndarray:
        """Mask of documents tagged `tag`."""
        return np.fromiter((tag in t for t in self.tags), dtype=bool, count=len(self.tags))

    def exact_top_k(self, query: np.ndarray, allowed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine distances of the exact top-k among the allowed documents."""
        rows = np.flatnonzero(allowed)
        d = exact_distances("cosine", query.reshape(1, -1), self.vectors[rows])[0]
        order = np.argsort(d, kind="stable")[:k]
        return rows[order], d[order]

    def similarity(self, query: np.ndarray) -> np.ndarray:
        """Cosine similarity of every document to query."""
        return 1.0 - exact_distances("cosine", query.reshape(1, -1), self.vectors)[0]


@cache
def load_corpus(limit: int = 0) -> Corpus:
    """The corpus (or a seeded random `limit` of its documents), read once per test process."""
    docs = list(read_corpus())
    if 0 < limit < len(docs):
        keep = np.sort(np.random.default_rng(0).choice(len(docs), size=limit, replace=False))
        docs = [docs[i] for i in keep]
    payloads = [{k: d[k] for k in FIELDS if d.get(k) not in (None, [])} for d in docs]
    return Corpus(
        ids=np.asarray([d["id"] for d in docs], dtype=object),
        vectors=hashed_bow([d["text_en"] for d in docs]),
        payloads=payloads,
        section=np.asarray([d["section"] for d in docs], dtype=object),
        architecture=np.asarray([d["architecture"] for d in docs], dtype=object),
        size=np.asarray([d["installed_size_kb"] for d in docs], dtype=np.int64),
        tags=[frozenset(d.get("tags") or ()) for d in docs],
    )
