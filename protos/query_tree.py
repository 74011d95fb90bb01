"""Building query trees (shoal.v1.QueryNode) from plain values, and writing one back as query-string text."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from protos import query_pb2
from protos.wire import value_to_proto

Node = query_pb2.QueryNode


def and_(*nodes: Node) -> Node:
    """Every clause holds."""
    return Node(all=query_pb2.NodeList(nodes=list(nodes)))


def or_(*nodes: Node) -> Node:
    """At least one clause holds."""
    return Node(any=query_pb2.NodeList(nodes=list(nodes)))


def not_(node: Node) -> Node:
    """The clause does not hold."""
    return Node(negate=node)


def near(vector: Sequence[float] | None = None, *, text: str = "", min_similarity: float | None = None,
         top: int = 0) -> Node:
    """Vector similarity: ranks when bare; a set with min_similarity (sim >= it) or top (global top-`top`)."""
    msg = query_pb2.Near(vector=[float(x) for x in (vector if vector is not None else [])], text=text, top=top)
    if min_similarity is not None:
        msg.min_similarity = float(min_similarity)
    return Node(near=msg)


def match(field: str, text: str) -> Node:
    """BM25 full-text clause on a text field."""
    return Node(match=query_pb2.Match(field=field, text=text))


def eq(field: str, value: Any) -> Node:
    """field == value (for tags: the list holds value; for text: a full-text match)."""
    return Node(field=query_pb2.FieldPredicate(field=field, eq=value_to_proto(value, field)))


def in_(field: str, values: Iterable[Any]) -> Node:
    """field is one of values."""
    lst = value_to_proto(list(values), field).list_value
    return Node(field=query_pb2.FieldPredicate(field=field, **{"in": lst}))


def range_(field: str, *, gt: Any = None, gte: Any = None, lt: Any = None, lte: Any = None) -> Node:
    """field within bounds (numbers, or date-times as ISO 8601 text)."""
    rng = query_pb2.Range()
    for name, bound in (("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte)):
        if bound is not None:
            getattr(rng, name).CopyFrom(value_to_proto(bound, field))
    return Node(field=query_pb2.FieldPredicate(field=field, range=rng))


def contains(field: str, tag: str) -> Node:
    """A tags field holds `tag`."""
    return Node(field=query_pb2.FieldPredicate(field=field, contains=value_to_proto(tag, field)))


def exists(field: str) -> Node:
    """The document has a value for field."""
    return Node(field=query_pb2.FieldPredicate(field=field, exists=True))


def ids(doc_ids: Iterable[str]) -> Node:
    """A fixed set of documents."""
    return Node(ids=query_pb2.IdSet(ids=list(doc_ids)))


def depth(node: Node, limit: int) -> int:
    """How many AND/OR/NOT levels nest in a tree (a lone clause is 0), found without recursion so a hostile
    tree cannot exhaust the stack; counting stops at the first level past `limit`."""
    deepest, stack = 0, [(node, 0)]
    while stack:
        current, above = stack.pop()  # `above`: operators between the root and this node
        kind = current.WhichOneof("node")
        children = (list(getattr(current, kind).nodes) if kind in ("all", "any")
                    else [current.negate] if kind == "negate" else None)
        if children is None:
            continue
        deepest = max(deepest, above + 1)
        if deepest > limit:
            return deepest
        stack.extend((child, above + 1) for child in children)
    return deepest


def find(node: Node, wanted: Callable[[Node], bool]) -> list[Node]:
    """Every node under `node` (through AND, OR and NOT) for which `wanted` holds, in tree order."""
    kind = node.WhichOneof("node")
    if kind in ("all", "any"):
        return [found for child in getattr(node, kind).nodes for found in find(child, wanted)]
    if kind == "negate":
        return find(node.negate, wanted)
    return [node] if wanted(node) else []


# ---- text form -------------------------------------------------------------------------------
def _value_text(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_value_text(x) for x in v) + "]"
    return repr(v)


def _vector_text(vector: Sequence[float]) -> str:
    if len(vector) <= 4:
        return "[" + ", ".join(f"{x:.4g}" for x in vector) + "]"
    return f"[{vector[0]:.4g}, {vector[1]:.4g}, ... {len(vector)} dims]"


def render(node: Node) -> str:
    """A query tree in the query-string syntax (long vectors abbreviated), for explain and error messages."""
    from protos.wire import value_from_proto

    kind = node.WhichOneof("node")
    if kind in ("all", "any"):
        parts = [render(n) for n in getattr(node, kind).nodes]
        return "(" + (" AND " if kind == "all" else " OR ").join(parts) + ")"
    if kind == "negate":
        return "NOT " + render(node.negate)
    if kind == "near":
        n = node.near
        text = "near:" + (_vector_text(n.vector) if len(n.vector) else json.dumps(n.text, ensure_ascii=False))
        if n.HasField("min_similarity"):
            text += f"@{n.min_similarity:.4g}"
        if n.top:
            text += f"@top:{n.top}"
        return text
    if kind == "match":
        return f"{node.match.field}:{json.dumps(node.match.text, ensure_ascii=False)}"
    if kind == "ids":
        return f"ids:[{len(node.ids.ids)} ids]"
    if kind == "field":
        p = node.field
        op = p.WhichOneof("op")
        if op == "exists":
            return f"{p.field}:*"
        if op == "in":
            return f"{p.field}:{_value_text([value_from_proto(v) for v in getattr(p, 'in').values])}"
        if op == "range":
            bounds = [f"{p.field}{sym}{_value_text(value_from_proto(getattr(p.range, name)))}"
                      for name, sym in (("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<="))
                      if p.range.HasField(name)]
            return " AND ".join(bounds) if len(bounds) == 1 else "(" + " AND ".join(bounds) + ")"
        if op is not None:
            return f"{p.field}:{_value_text(value_from_proto(getattr(p, op)))}"
    return "<empty>"
