"""JSON bodies to SDK arguments and SDK results to JSON."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError

from gateway import conversions as cv
from gateway.errors import GatewayError
from shoal.client import Collection, Document, Hit


def test_vectors_become_a_float32_matrix() -> None:
    m = cv.matrix([[1, 2], [3, 4.5]])
    assert m.dtype == np.float32 and m.shape == (2, 2) and m[1, 1] == 4.5
    assert cv.matrix([]).shape == (0, 0)


def test_rows_of_unequal_length_are_refused() -> None:
    with pytest.raises(GatewayError, match=r"different lengths \(\[1, 2\]\)") as exc:
        cv.matrix([[1.0, 2.0], [1.0]])
    assert exc.value.status == 400 and exc.value.code == "INVALID_ARGUMENT"


def test_images_are_base64_with_or_without_a_data_url() -> None:
    raw = b"\x89PNG\r\n\x1a\n..."
    text = base64.b64encode(raw).decode()
    assert cv.decode_image(text, "image") == raw
    assert cv.decode_image("data:image/png;base64," + text, "image") == raw
    with pytest.raises(GatewayError, match=r"images\[3\] is not valid base64"):
        cv.decode_image("%%%", "images[3]")


def test_upsert_arguments() -> None:
    body = cv.UpsertBody(ids=["a"], vectors=[[0.5, 0.5]], payloads=[{"x": 1}],
                         images=[base64.b64encode(b"img").decode()], vectors_model="m@1")
    args = cv.upsert_args(body)
    assert args["ids"] == ["a"] and args["vectors"].shape == (1, 2) and args["images"] == [b"img"]
    assert args["payloads"] == [{"x": 1}] and args["vectors_model"] == "m@1" and args["texts"] is None


def test_search_arguments() -> None:
    args = cv.search_args(cv.SearchBody(vector=[1, 0], k=3, filter="a:b", vector_weight=2.0))
    assert args["vector"].dtype == np.float32 and args["k"] == 3 and args["filter"] == "a:b"
    assert args["weights"] == (2.0, 0.0) and args["ef"] is None and args["query"] is None
    assert "weights" not in cv.search_args(cv.SearchBody(text="hi"))
    assert cv.search_args(cv.SearchBody(text="hi", ef=64))["ef"] == 64


def test_bodies_are_parsed_and_refused_like_fastapi() -> None:
    assert cv.parse_body(cv.SearchBody, b'{"vector": [1, 2], "k": 3}').k == 3
    with pytest.raises(RequestValidationError) as bad_json:
        cv.parse_body(cv.SearchBody, b'{"k": ')
    assert bad_json.value.errors()[0]["type"] == "json_invalid" and bad_json.value.errors()[0]["loc"] == ("body", 6)
    with pytest.raises(RequestValidationError) as bad_type:
        cv.parse_body(cv.SearchBody, b'{"k": "ten"}')
    assert bad_type.value.errors()[0]["loc"] == ("body", "k")


def test_results_as_json() -> None:
    out = json.loads(cv.search_json([Hit("a", np.float32(0.5), {"k": "v"}, 0.25)], [1], None, 2.5))
    assert out == {"hits": [{"id": "a", "score": 0.5, "distance": 0.25, "payload": {"k": "v"}}],
                   "missing_shards": [1], "plan": None, "took_ms": 2.5}
    assert cv.SearchOut.model_validate(out).hits[0].id == "a"   # the declared shape
    doc = cv.document_out(Document("a", np.array([1.0, 2.0], dtype=np.float32), {}))
    assert doc == {"id": "a", "vector": [1.0, 2.0], "payload": {}}
    assert cv.document_out(Document("a", None, {}))["vector"] is None
    out = cv.collection_out(Collection("c", 4, "cosine", 2, 16, 200, 128, "2026-01-01T00:00:00Z", fields={"f": "int"}))
    assert cv.CollectionsOut(collections=[out]).collections[0].fields == {"f": "int"}
