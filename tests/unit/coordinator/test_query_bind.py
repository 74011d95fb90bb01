"""Binding queries to a collection's schema: rankers, normalisation and the errors bad queries get."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.catalog import CollectionSpec
from coordinator.query_bind import BM25, HYBRID, VECTOR, bind_query
from coordinator.query_parser import parse_query
from protos import query_pb2
from protos import query_tree as q
from protos.errors import InvalidArgument
from protos.query_tree import render

SPEC = CollectionSpec.new("c", 2, "cosine", 1, 16, 100, 64, fields={
    "section": "keyword", "tags": "tags", "size": "int", "price": "float", "when": "datetime", "ok": "bool",
    "body": "text"})


def bind(text: str, vector: list[float] | None = None, ranking: str = ""):
    return bind_query(SPEC, parse_query(text), None if vector is None else np.asarray(vector, np.float32), ranking)


def test_filter_with_a_vector_ranks_by_vector() -> None:
    b = bind("section:games AND size<5000", [1, 0])
    assert b.ranking == VECTOR and b.match is None
    assert render(b.filter) == '(section:"games" AND size<5000)'


def test_bare_near_ranks_and_thresholded_near_filters() -> None:
    b = bind("near:[1, 0] AND NOT near:[0, 1]@0.5 AND ok:true")
    assert b.ranking == VECTOR and b.vector.tolist() == [1.0, 0.0]
    assert render(b.filter) == "(NOT near:[0, 1]@0.5 AND ok:true)"


def test_text_field_clause_ranks_by_bm25_and_with_a_vector_fuses() -> None:
    assert bind('body:"http client"').ranking == BM25
    b = bind('near:[1, 0] AND body:"http client" AND tags:role::program')
    assert b.ranking == HYBRID and b.match.field == "body" and b.match.text == "http client"
    assert render(b.filter) == 'tags:"role::program"'


def test_text_clause_under_not_is_a_set() -> None:
    b = bind('near:[1, 0] AND NOT match:"java"')
    assert render(b.filter) == 'NOT body:"java"' and b.ranking == VECTOR


def test_values_take_the_field_type() -> None:
    b = bind("size:[1, 2] AND price>=2.5 AND ok:false AND when<2024-01-01", [1, 0])
    assert render(b.filter) == "(size:[1, 2] AND price>=2.5 AND ok:false AND when<\"2024-01-01\")"


def test_vector_ranking_keeps_the_text_clause_as_a_filter() -> None:
    b = bind('near:[1, 0] AND body:"java"', ranking=VECTOR)
    assert b.ranking == VECTOR and render(b.filter) == 'body:"java"'


@pytest.mark.parametrize(("text", "message"), [
    ("sectoin:games", "unknown field 'sectoin'"),
    ("size:abc", "field 'size' is int: 'abc' is not an integer"),
    ("size<big", "field 'size' is int"),
    ("price:1x", "field 'price' is float"),
    ("ok:maybe", "field 'ok' is bool"),
    ("when>yesterday", "field 'when' is datetime"),
    ("section<3", "field 'section' is keyword: a range"),
    ("body<3", "field 'body' is text"),
    ("NOT near:[1, 0]", "only ranks"),
    ("section:x OR near:[1, 0]", "only ranks"),
    ("near:[1, 0, 0]", "dimension"),
    ("near:[0, 0]", "all zeros"),
    ('near:"a dog"', "embedding model"),
    ("near:[1, 0] AND near:[0, 1]", "only one near"),
])
def test_bad_queries_name_the_field(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace("[", r"\[")):
        bind(text, None if "near" in text else [1, 0])


def test_nothing_to_rank_by_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="nothing to rank"):
        bind("section:games")


def test_empty_trees_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        bind_query(SPEC, q.and_(q.eq("section", "x"), query_pb2.QueryNode()), np.asarray([1, 0], np.float32))
    with pytest.raises(InvalidArgument, match="no clauses"):
        bind_query(SPEC, q.and_(q.or_()), np.asarray([1, 0], np.float32))


def test_match_without_a_field_needs_exactly_one_text_field() -> None:
    spec = CollectionSpec.new("c", 2, "cosine", 1, 16, 100, 64, fields={"a": "text", "b": "text"})
    with pytest.raises(InvalidArgument, match="name the field"):
        bind_query(spec, parse_query('match:"x"'))


def test_tree_built_with_helpers_binds_like_the_string() -> None:
    tree = q.and_(q.eq("section", "games"), q.range_("size", lt=5000), q.not_(q.contains("tags", "a::b")))
    b = bind_query(SPEC, tree, np.asarray([1, 0], np.float32))
    assert render(b.filter) == '(section:"games" AND size<5000 AND NOT tags:"a::b")'
    with pytest.raises(InvalidArgument, match="is keyword"):
        bind_query(SPEC, q.eq("section", 5), np.asarray([1, 0], np.float32))


def test_a_korean_text_field_takes_full_text_matches() -> None:
    spec = CollectionSpec.new("k", 2, "cosine", 1, 16, 100, 64, fields={"ko": "text:korean", "section": "keyword"})
    b = bind_query(spec, parse_query('ko:"파이썬"'), None, "")
    assert b.ranking == BM25 and b.match.field == "ko" and b.match.text == "파이썬"
    assert bind_query(spec, parse_query('match:"파이썬"'), None, "").match.field == "ko"
