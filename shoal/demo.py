"""The demo collection `make run` creates: the bundled Debian package corpus, searchable at once.

Until the embedder service exists, its vectors are a lexical stand-in: signed feature hashing of
the words of each description (sublinear term frequency, L2-normalised). That finds packages
that share words with a query, which is enough to show the cluster working end to end.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from shoal.client import Client

DEMO_COLLECTION = "debian"
DEMO_DIM = 256
DEMO_SHARDS = 3
BATCH = 2000
CORPUS = Path(__file__).resolve().parent.parent / "data" / "debian" / "corpus.jsonl.gz"
PAYLOAD_FIELDS = ("section", "priority", "architecture", "installed_size_kb", "tags", "text_en")
DEMO_FIELDS = {"section": "keyword", "priority": "keyword", "architecture": "keyword", "installed_size_kb": "int",
               "tags": "tags", "text_en": "text"}
SUMMARY_CHARS = 160
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def hashed_bow(texts: Sequence[str], dim: int = DEMO_DIM) -> np.ndarray:
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


def read_corpus(path: Path = CORPUS) -> Iterator[dict[str, Any]]:
    """The corpus's documents, one dict per package."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _payload(doc: dict[str, Any]) -> dict[str, Any]:
    payload = {k: doc[k] for k in PAYLOAD_FIELDS if doc.get(k) not in (None, [])}
    payload["summary"] = doc["text_en"][:SUMMARY_CHARS]
    return payload


def load_demo(client: Client, path: Path = CORPUS, progress: bool = True) -> int:
    """Create and fill the demo collection unless it already holds documents; returns its size."""
    if any(c.name == DEMO_COLLECTION for c in client.list_collections()):
        count = client.count(DEMO_COLLECTION)
        if count > 0:
            return count
    else:
        client.create_collection(DEMO_COLLECTION, dim=DEMO_DIM, metric="cosine", shards=DEMO_SHARDS,
                                 fields=DEMO_FIELDS)
    docs = list(read_corpus(path))
    bar = tqdm(total=len(docs), unit="doc", desc=f"loading demo collection {DEMO_COLLECTION!r}",
               disable=not progress)
    for start in range(0, len(docs), BATCH):
        batch = docs[start:start + BATCH]
        client.upsert(DEMO_COLLECTION, [d["id"] for d in batch], hashed_bow([d["text_en"] for d in batch]),
                      [_payload(d) for d in batch])
        bar.update(len(batch))
    bar.close()
    return client.count(DEMO_COLLECTION)
