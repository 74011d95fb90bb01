"""Binding a query tree to a collection: fields and types checked, values coerced, rankers taken out.

The top level of a query is a conjunction. Its positive `near` clause without a threshold ranks by
vector, its positive full-text clause ranks by BM25; everything else is the filter, a set expression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coordinator.catalog import CollectionSpec
from coordinator.query_parser import DEFAULT_TEXT_FIELD
from protos import common_pb2, query_pb2
from protos import query_tree as q
from protos.errors import InvalidArgument
from protos.wire import check_vectors, value_from_proto, value_to_proto
from shard_node.schema import BOOL, FLOAT, INT, NUMERIC_TYPES, TAGS, FieldTypeError, is_text, scalar

VECTOR, BM25, HYBRID = "vector", "bm25", "hybrid"
RANKING_NAMES = {query_pb2.RANKING_AUTO: "", query_pb2.RANKING_VECTOR: VECTOR, query_pb2.RANKING_BM25: BM25,
                 query_pb2.RANKING_HYBRID: HYBRID}


@dataclass
class BoundQuery:
    """A query checked against its collection: the filter, what ranks, and how."""

    filter: query_pb2.QueryNode | None
    vector: np.ndarray | None
    match: query_pb2.Match | None
    ranking: str


def _text_field(spec: CollectionSpec, name: str) -> str:
    texts = sorted(f for f, t in spec.fields.items() if is_text(t))
    if name == DEFAULT_TEXT_FIELD:
        if len(texts) != 1:
            raise InvalidArgument(f"match: needs the collection's one text field, but it has {texts or 'none'}; "
                                  "name the field instead, e.g. text_en:\"words\"")
        return texts[0]
    if name not in spec.fields:
        raise _unknown(spec, name)
    if not is_text(spec.fields[name]):
        raise InvalidArgument(f"field {name!r} is {spec.fields[name]}, not text: full-text match needs a text field")
    return name


def _unknown(spec: CollectionSpec, name: str) -> InvalidArgument:
    known = ", ".join(f"{f} ({t})" for f, t in sorted(spec.fields.items())) or "none"
    return InvalidArgument(f"unknown field {name!r}; this collection indexes: {known}")


def _coerce(spec: CollectionSpec, name: str, value: common_pb2.Value) -> common_pb2.Value:
    """A literal as the field's type; text from the query string becomes a number, date or boolean here."""
    ftype = spec.fields[name]
    raw = value_from_proto(value)
    try:
        if isinstance(raw, str) and ftype in (INT, FLOAT):
            try:
                raw = int(raw) if ftype == INT else float(raw)
            except ValueError:
                raise FieldTypeError(f"{raw!r} is not {'an integer' if ftype == INT else 'a number'}") from None
        elif isinstance(raw, str) and ftype == BOOL:
            if raw.lower() not in ("true", "false"):
                raise FieldTypeError(f"{raw!r} is not true or false")
            raw = raw.lower() == "true"
        scalar(ftype, raw)
    except FieldTypeError as exc:
        raise InvalidArgument(f"field {name!r} is {ftype}: {exc}") from None
    return value_to_proto(raw, name)


def _bind_near(spec: CollectionSpec, near: query_pb2.Near) -> query_pb2.QueryNode:
    if near.text and not len(near.vector):
        raise InvalidArgument(f"near:\"{near.text}\" needs the collection's embedding model to turn text into a "
                              "vector, and this collection has none: give a vector, near:[x, y, ...]")
    check_vectors(np.asarray([near.vector], dtype=np.float32), spec.dim, "near vector", spec.metric)
    if near.HasField("min_similarity") and near.top:
        raise InvalidArgument("a near clause takes either @similarity or @top:N, not both")
    return query_pb2.QueryNode(near=near)


def _bind_field(spec: CollectionSpec, pred: query_pb2.FieldPredicate) -> query_pb2.QueryNode:
    name = pred.field
    if name not in spec.fields:
        raise _unknown(spec, name)
    ftype = spec.fields[name]
    op = pred.WhichOneof("op")
    if op is None:
        raise InvalidArgument(f"the predicate on {name!r} has no operation (eq, in, range, contains or exists)")
    if op == "exists":
        return q.exists(name)
    if is_text(ftype):
        if op not in ("eq", "contains"):
            raise InvalidArgument(f"field {name!r} is text: it takes a full-text match (field:\"words\"), not {op}")
        return q.match(name, str(value_from_proto(getattr(pred, op))))
    if op == "range":
        if ftype not in NUMERIC_TYPES:
            raise InvalidArgument(f"field {name!r} is {ftype}: a range (<, <=, >, >=) needs an int, float or "
                                  "datetime field")
        rng = query_pb2.Range()
        for bound in ("gt", "gte", "lt", "lte"):
            if pred.range.HasField(bound):
                getattr(rng, bound).CopyFrom(_coerce(spec, name, getattr(pred.range, bound)))
        if not rng.ListFields():
            raise InvalidArgument(f"the range on {name!r} has no bound")
        return query_pb2.QueryNode(field=query_pb2.FieldPredicate(field=name, range=rng))
    if op == "contains" and ftype != TAGS:
        raise InvalidArgument(f"field {name!r} is {ftype}: 'contains' needs a tags field")
    if op == "in":
        values = list(getattr(pred, "in").values)
        if not values:
            raise InvalidArgument(f"the list of values for {name!r} is empty")
        out = query_pb2.FieldPredicate(field=name)
        getattr(out, "in").values.extend(_coerce(spec, name, v) for v in values)
        return query_pb2.QueryNode(field=out)
    value = _coerce(spec, name, getattr(pred, op))
    return query_pb2.QueryNode(field=query_pb2.FieldPredicate(field=name, eq=value))


def bind_filter(spec: CollectionSpec, node: query_pb2.QueryNode) -> query_pb2.QueryNode:
    """A filter tree checked and normalised for the shards (eq on tags stays eq; on text becomes match)."""
    kind = node.WhichOneof("node")
    if kind is None:
        raise InvalidArgument("the query tree is empty (or has an empty node); give at least one clause")
    if kind in ("all", "any"):
        children = getattr(node, kind).nodes
        if not children:
            raise InvalidArgument(f"an {'AND' if kind == 'all' else 'OR'} node has no clauses")
        bound = [bind_filter(spec, c) for c in children]
        return q.and_(*bound) if kind == "all" else q.or_(*bound)
    if kind == "negate":
        return q.not_(bind_filter(spec, node.negate))
    if kind == "near":
        if not node.near.HasField("min_similarity") and not node.near.top:
            raise InvalidArgument("a near clause without @similarity or @top:N only ranks, so it must stand "
                                  "at the top level of the query, not under NOT or OR")
        return _bind_near(spec, node.near)
    if kind == "match":
        return q.match(_text_field(spec, node.match.field), node.match.text)
    if kind == "ids":
        return node
    return _bind_field(spec, node.field)


def _ranker(spec: CollectionSpec, node: query_pb2.QueryNode) -> query_pb2.QueryNode | None:
    """The node as a ranking clause (bare near, or full-text), or None when it is a filter."""
    kind = node.WhichOneof("node")
    if kind == "near" and not node.near.HasField("min_similarity") and not node.near.top:
        return _bind_near(spec, node.near)
    if kind == "match":
        return q.match(_text_field(spec, node.match.field), node.match.text)
    if kind == "field" and node.field.field in spec.fields and is_text(spec.fields[node.field.field]):
        op = node.field.WhichOneof("op")
        if op in ("eq", "contains"):
            return q.match(node.field.field, str(value_from_proto(getattr(node.field, op))))
    return None


def bind_query(spec: CollectionSpec, where: query_pb2.QueryNode | None, vector: np.ndarray | None = None,
               ranking: str = "") -> BoundQuery:
    """Check a whole query against the collection and split it into filter and rankers."""
    if where is not None and where.WhichOneof("node") is None:
        raise InvalidArgument("the query tree is empty; give at least one clause")
    if where is not None and where.WhichOneof("node") == "all" and not where.all.nodes:
        raise InvalidArgument("the query's AND node has no clauses")
    top = list(where.all.nodes) if where is not None and where.WhichOneof("node") == "all" else \
        ([where] if where is not None else [])
    filters, near_rankers, text_rankers = [], [], []
    for node in top:
        r = _ranker(spec, node)
        if r is None:
            filters.append(bind_filter(spec, node))
        elif r.WhichOneof("node") == "near":
            near_rankers.append(r)
        else:
            text_rankers.append(r)
    if vector is not None:
        check_vectors(vector.reshape(1, -1), spec.dim, "query vector", spec.metric)
        if near_rankers:
            raise InvalidArgument("the query already ranks by a vector; give either `vector` or a bare near clause")
    elif near_rankers:
        vector = np.asarray(near_rankers[0].near.vector, dtype=np.float32)
    if len(near_rankers) > 1:
        raise InvalidArgument("only one near clause can rank; give the others @similarity or @top:N")
    if len(text_rankers) > 1:
        raise InvalidArgument("only one full-text clause can rank at the top level; put the words in one clause")
    match = text_rankers[0].match if text_rankers else None
    auto = HYBRID if vector is not None and match is not None else (VECTOR if vector is not None else BM25)
    if vector is None and match is None:
        raise InvalidArgument("the query has nothing to rank by: add a near clause (or a query vector) or a "
                              "full-text clause on a text field")
    ranking = ranking or auto
    if ranking == VECTOR and match is not None:
        filters.append(q.Node(match=match))  # not ranking by it: it still narrows the set
    if ranking in (VECTOR, HYBRID) and vector is None:
        raise InvalidArgument(f"{ranking} ranking needs a query vector or a bare near clause")
    if ranking in (BM25, HYBRID) and match is None:
        raise InvalidArgument(f"{ranking} ranking needs a full-text clause on a text field")
    flt = None if not filters else (filters[0] if len(filters) == 1 else q.and_(*filters))
    return BoundQuery(flt, vector if ranking != BM25 else None, match if ranking != VECTOR else None, ranking)
