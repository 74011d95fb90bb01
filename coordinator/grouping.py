"""Chunk entries and documents: a bound collection stores a document as entries `doc`, `doc` U+001F 1, ...;
searches rank entries and this module groups them back into documents (one place, every kind of search)."""

from __future__ import annotations

from dataclasses import dataclass

from protos import common_pb2
from protos.wire import CHUNK_SEP

CHUNKS_KEY = "_shoal_chunks"   # payload field of a document's first entry: how many chunk entries it has


@dataclass
class Hit:
    """One merged search result."""

    id: str
    score: float
    distance: float
    payload: common_pb2.Payload | None


def chunk_id(doc_id: str, n: int) -> str:
    """Id of a document's n-th entry (the first keeps the document's own id)."""
    return doc_id if n == 0 else f"{doc_id}{CHUNK_SEP}{n}"


def doc_of(entry_id: str) -> str:
    """The document an entry id belongs to."""
    return entry_id.split(CHUNK_SEP, 1)[0]


def strip_internal(payload: common_pb2.Payload | None) -> common_pb2.Payload | None:
    """The payload as the user wrote it (without the chunk bookkeeping)."""
    if payload is not None and CHUNKS_KEY in payload.fields:
        del payload.fields[CHUNKS_KEY]
    return payload


def group_hits(hits: list[Hit], k: int) -> list[Hit]:
    """Best entry per document, best first, at most k."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        doc = doc_of(hit.id)
        if doc in seen:
            continue
        seen.add(doc)
        out.append(Hit(doc, hit.score, hit.distance, strip_internal(hit.payload)))
        if len(out) == k:
            break
    return out
