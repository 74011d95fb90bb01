"""Streaming ingest for `shoal ingest`: items are read lazily, upserted in batches with several in flight so the
embedder never waits on the client, and texts and images already stored with the same content are skipped, so a
run that was interrupted picks up where it stopped without embedding anything twice. (Documents that arrive with
their vectors cost little to write again, so they are written as given, with their payload untouched.)"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from shoal.client import Client

DIGEST_KEY = "content_sha256"   # payload field of embedded documents: what it was made from, so a re-run skips it
VECTOR_BATCH = 1000             # documents per upsert when they carry vectors (cheap to write)
EMBED_BATCH = 64                # documents per upsert when the coordinator embeds them (the embedder's batch)
IN_FLIGHT = 3                   # upserts at once: one embedding, one being written, one being read
TEXT_SUFFIXES = (".txt", ".md", ".rst")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class IngestError(ValueError):
    """An input file that cannot be ingested as it is (the message names the file and line)."""


@dataclass
class Item:
    """One document to ingest: a vector, or a text and/or an image for a model-bound collection."""

    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    vector: list[float] | None = None
    text: str = ""
    image: bytes = b""

    def digest(self) -> str:
        """SHA-256 of what an embedded document is made from (text, image, payload); documents that arrive with
        vectors are rewritten as given and need none."""
        h = hashlib.sha256()
        payload = json.dumps(self.payload, sort_keys=True, ensure_ascii=False).encode()
        for part in (self.text.encode(), self.image, payload):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        return h.hexdigest()


@dataclass
class IngestReport:
    """What a run did."""

    written: int = 0
    skipped: int = 0        # already stored with the same content
    seconds: float = 0.0


def folder_files(root: Path) -> list[tuple[str, str, Path]]:
    """(id, kind, path) of every text or image file under root, in a stable order."""
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        kind = "image" if suffix in IMAGE_SUFFIXES else "text" if suffix in TEXT_SUFFIXES else ""
        if kind:
            items.append((path.relative_to(root).as_posix(), kind, path))
    return items


def iter_folder(files: list[tuple[str, str, Path]]) -> Iterator[Item]:
    """Items of a folder's files, read one at a time."""
    for doc_id, kind, path in files:
        payload = {"path": doc_id, "kind": kind, "name": path.stem}
        if kind == "text":
            yield Item(doc_id, payload, text=path.read_text(encoding="utf-8", errors="replace"))
        else:
            yield Item(doc_id, payload, image=path.read_bytes())


def count_lines(path: Path) -> int:
    """Non-empty lines of a file (the progress bar's total)."""
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def iter_jsonl(path: Path) -> Iterator[Item]:
    """Items of a JSON-lines file: each line has "id" and one of "vector", "text" or "image" (base64), and a
    "payload" object (or, without one, its other keys are the payload)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                doc = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise IngestError(f"{path}:{lineno}: not valid JSON: {exc}") from None
            if not isinstance(doc, dict) or "id" not in doc or not {"vector", "text", "image"} & doc.keys():
                raise IngestError(f"{path}:{lineno}: each line needs \"id\" and one of \"vector\", \"text\" or "
                                  "\"image\" (base64)")
            payload = doc.get("payload") or {k: v for k, v in doc.items() if k not in ("id", "vector", "text",
                                                                                      "image")}
            try:
                image = base64.b64decode(doc["image"], validate=True) if doc.get("image") else b""
            except ValueError:
                raise IngestError(f"{path}:{lineno}: \"image\" is not base64") from None
            yield Item(str(doc["id"]), payload, vector=doc.get("vector"), text=doc.get("text") or "", image=image)


def _batches(items: Iterable[Item], vector_batch: int, embed_batch: int) -> Iterator[list[Item]]:
    """Runs of items of one kind (vectors, or things to embed), each at most that kind's batch size."""
    batch: list[Item] = []
    for item in items:
        if batch and (item.vector is None) != (batch[0].vector is None):
            yield batch
            batch = []
        batch.append(item)
        if len(batch) >= (vector_batch if item.vector is not None else embed_batch):
            yield batch
            batch = []
    if batch:
        yield batch


class Ingestor:
    """Upserts items into one collection, several batches in flight, skipping what is stored unchanged."""

    def __init__(self, client: Client, collection: str, resume: bool = True, in_flight: int = IN_FLIGHT,
                 vector_batch: int = VECTOR_BATCH, embed_batch: int = EMBED_BATCH) -> None:
        self._client = client
        self._collection = collection
        self._resume = resume
        self._in_flight = max(1, in_flight)
        self._vector_batch = vector_batch
        self._embed_batch = embed_batch

    def run(self, items: Iterable[Item], total: int | None, desc: str, progress: bool = True) -> IngestReport:
        """Ingest every item; the bar shows documents done, their rate and the time left."""
        report = IngestReport()
        pending: deque[Future[tuple[int, int]]] = deque()
        with ThreadPoolExecutor(self._in_flight, thread_name_prefix="ingest") as pool, \
                tqdm(total=total, unit="doc", desc=desc, disable=not progress, smoothing=0.1) as bar:
            def harvest() -> None:
                written, skipped = pending.popleft().result()
                report.written += written
                report.skipped += skipped
                bar.update(written + skipped)
                bar.set_postfix(written=report.written, skipped=report.skipped, refresh=False)

            try:
                for batch in _batches(items, self._vector_batch, self._embed_batch):
                    pending.append(pool.submit(self._write, batch))
                    while len(pending) >= self._in_flight:
                        harvest()
                while pending:
                    harvest()
            finally:
                for f in pending:
                    f.cancel()
            report.seconds = bar.format_dict["elapsed"]
        return report

    def _write(self, batch: list[Item]) -> tuple[int, int]:
        """Upsert the items of a batch that are not stored with the same content; (written, skipped)."""
        if batch[0].vector is not None:
            self._client.upsert(self._collection, [item.id for item in batch],
                                np.asarray([item.vector for item in batch], np.float32),
                                [item.payload for item in batch])
            return len(batch), 0
        digests = [item.digest() for item in batch]
        todo = list(range(len(batch)))
        if self._resume:
            stored = {d.id: d.payload.get(DIGEST_KEY) for d in
                      self._client.get(self._collection, [item.id for item in batch], with_vectors=False)}
            todo = [i for i in todo if stored.get(batch[i].id) != digests[i]]
        if not todo:
            return 0, len(batch)
        items = [batch[i] for i in todo]
        ids = [item.id for item in items]
        payloads = [{**item.payload, DIGEST_KEY: digests[i]} for i, item in zip(todo, items, strict=True)]
        texts = [item.text for item in items]
        images = [item.image for item in items]
        self._client.upsert(self._collection, ids, payloads=payloads, texts=texts if any(texts) else None,
                            images=images if any(images) else None)
        return len(items), len(batch) - len(items)
