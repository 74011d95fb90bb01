"""Grouping chunk hits back to documents, and the internal payload key kept from users."""

from __future__ import annotations

from coordinator.grouping import CHUNKS_KEY, Hit, chunk_id, doc_of, group_hits, strip_internal
from protos import common_pb2
from protos.wire import CHUNK_SEP


def payload(**fields: object) -> common_pb2.Payload:
    """A payload with string or int fields."""
    p = common_pb2.Payload()
    for key, value in fields.items():
        if isinstance(value, int):
            p.fields[key].int_value = value
        else:
            p.fields[key].string_value = str(value)
    return p


def hit(entry_id: str, score: float, p: common_pb2.Payload | None = None) -> Hit:
    """A hit as the engine returns it (cosine: distance = 1 - score)."""
    return Hit(entry_id, score, 1.0 - score, p)


def test_chunk_ids_round_trip() -> None:
    assert chunk_id("doc", 0) == "doc"
    assert chunk_id("doc", 3) == f"doc{CHUNK_SEP}3"
    assert doc_of(chunk_id("doc", 3)) == "doc" and doc_of("doc") == "doc"


def test_best_entry_per_document_best_first() -> None:
    hits = [hit(chunk_id("a", 2), 0.9), hit("b", 0.8), hit("a", 0.7), hit(chunk_id("b", 1), 0.6),
            hit(chunk_id("c", 5), 0.5)]
    grouped = group_hits(hits, 10)
    assert [(h.id, h.score) for h in grouped] == [("a", 0.9), ("b", 0.8), ("c", 0.5)]
    assert grouped[0].distance == hits[0].distance


def test_k_counts_documents_not_entries() -> None:
    hits = [hit(chunk_id("a", n), 1.0 - n / 100) for n in range(5)] + [hit("b", 0.5), hit("c", 0.4)]
    assert [h.id for h in group_hits(hits, 2)] == ["a", "b"]
    assert group_hits([], 3) == []


def test_internal_key_is_stripped_and_user_fields_kept() -> None:
    p = payload(title="vim", year=1991)
    p.fields[CHUNKS_KEY].int_value = 4
    [grouped] = group_hits([hit("doc", 0.9, p)], 1)
    assert CHUNKS_KEY not in grouped.payload.fields
    assert grouped.payload.fields["title"].string_value == "vim"
    assert grouped.payload.fields["year"].int_value == 1991


def test_hits_without_payload_stay_without() -> None:
    [grouped] = group_hits([hit(chunk_id("doc", 1), 0.3, None)], 5)
    assert grouped.id == "doc" and grouped.payload is None
    assert strip_internal(None) is None
    untouched = payload(a="x")
    assert strip_internal(untouched) == payload(a="x")
