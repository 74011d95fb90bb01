"""Reply columns: the plain vector path (no per-hit objects), per-hit results converted, NOT masks."""

from __future__ import annotations

import numpy as np

from coordinator.catalog import CollectionSpec
from coordinator.engine import SearchAnswer, _vector_columns
from coordinator.grouping import Hit
from coordinator.hit_columns import HitColumns
from coordinator.read_path import ReadPath, ReadRequest, ReadResult, _without
from coordinator.servicer import answer_to_proto
from protos import query_pb2, shard_pb2
from protos.wire import pack_floats, payload_to_proto
from shoal.client import _hits_of

SPEC = CollectionSpec("c", "u", 2, "cosine", 1, 16, 200, 64, "2026-01-01T00:00:00Z")


def _result(ids: list[list[str]], dists: list[list[float]], payloads: dict | None = None) -> ReadResult:
    return ReadResult(np.asarray(ids, dtype=object), np.asarray(dists, dtype=np.float32), [],
                      np.empty(0, np.float32), payloads or {}, [])


def test_vector_columns_stop_at_padding_and_k_and_score_by_metric() -> None:
    result = _result([["a", "b", ""], ["c", "d", "e"]], [[0.1, 0.4, np.inf], [0.2, 0.3, 0.5]],
                     {"a": payload_to_proto({"t": "x"})})
    cols = _vector_columns(SPEC, result, 2, with_payload=True)
    assert [c.ids for c in cols] == [["a", "b"], ["c", "d"]]
    np.testing.assert_allclose(cols[0].scores, [0.9, 0.6], rtol=1e-6)
    assert cols[0].payloads[0].fields["t"].string_value == "x" and cols[0].payloads[1] is None
    assert _vector_columns(SPEC, result, 3, with_payload=False)[0].payloads is None
    assert len(_vector_columns(SPEC, result, 3, with_payload=False)[0]) == 2


def test_reply_columns_read_back_by_the_sdk_as_the_hits_went_in() -> None:
    hits = [[Hit("a", 0.9, 0.1, payload_to_proto({"n": 1})), Hit("b", 0.5, 0.5, None)], [], [Hit("c", 0.2, 0.8, None)]]
    answer = SearchAnswer([HitColumns.of(h, with_payload=True) for h in hits], [3])
    got = _hits_of(answer_to_proto(answer, columns=True))
    assert [[(h.id, round(h.score, 6), round(h.distance, 6), h.payload) for h in row] for row in got] == [
        [("a", 0.9, 0.1, {"n": 1}), ("b", 0.5, 0.5, {})], [], [("c", 0.2, 0.8, {})]]
    assert got[0].missing_shards == [3]
    plain = answer_to_proto(SearchAnswer([HitColumns.of(h, with_payload=False) for h in hits], []), columns=True)
    assert not plain.columns.payloads and list(plain.columns.offsets) == [0, 2, 2, 3]
    per_hit = answer_to_proto(answer, columns=False)
    assert [[h.id for h in r.hits] for r in per_hit.results] == [["a", "b"], [], ["c"]]
    assert answer.results[0][0] == Hit("a", np.float32(0.9), np.float32(0.1), hits[0][0].payload)


def test_excluded_ids_leave_vector_and_text_columns() -> None:
    excluded = np.asarray(["b", "x"], dtype=object)
    ids, values = _without(["a", "b", "c"], np.asarray([3.0, 2.0, 1.0], np.float32), excluded)
    assert ids == ["a", "c"] and values.tolist() == [3.0, 1.0]
    assert _without([], np.empty(0, np.float32), excluded)[0] == []
    node = shard_pb2.NodeSearchResponse(rows=1, per_row=3, ids=["a", "b", "c"], distances=pack_floats(
        np.asarray([0.1, 0.2, 0.3], np.float32)))
    node.exclusions.add(ids=["b"], scores=pack_floats(np.asarray([-0.9], np.float32)))
    req = ReadRequest(np.zeros((1, 2), np.float32), 3, exclude=[query_pb2.Near(top=1)])
    merged = ReadPath._merge(req, [node])
    assert merged.ids[0].tolist()[:2] == ["a", "c"] and not np.isfinite(merged.distances[0][2])
    assert merged.excluded == [1]
