"""Evaluating a bound query tree on one shard: a bitmap of the allowed live labels, by set algebra on postings.

A top-level `NOT near:v@tau` (alone or as a clause of the top AND) is not turned into a set: it is split
off as an Exclusion that the planner checks on each candidate against v, since materialising it would
score every row of the partition on every query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pyroaring import BitMap

from protos import query_pb2
from protos.errors import InvalidArgument
from protos.query_tree import render
from protos.wire import value_from_proto
from shard_node.bm25 import TextIndex
from shard_node.fields import FieldIndexes, bitmap_of
from shard_node.schema import NUMERIC_TYPES, TAGS, TEXT, FieldTypeError, scalar


@dataclass
class Figures:
    """One clause's set size on this shard (postings give it exactly: estimated == actual)."""

    clause: str
    estimated: int
    actual: int


@dataclass(frozen=True)
class Exclusion:
    """`NOT near:vector@min_similarity`, checked per candidate by the planner."""

    vector: np.ndarray
    min_similarity: float


@dataclass
class FilterContext:
    """What a shard's filter evaluation reads; built under the partition's gate."""

    fields: FieldIndexes
    text: TextIndex
    live: BitMap                                        # every live label
    labels_of: Callable[[list[str]], np.ndarray]        # ids -> labels of live documents
    near: Callable[[np.ndarray, float], BitMap]         # (vector, tau) -> live labels within tau of it
    record: bool = False                                # keep per-clause figures (explain only)
    figures: list[Figures] = field(default_factory=list)


def _coerced(ftype: str, name: str, value: query_pb2.QueryNode) -> object:
    try:
        return scalar(ftype, value_from_proto(value))
    except FieldTypeError as exc:
        raise InvalidArgument(f"field {name!r} ({ftype}): {exc}") from None


def _text_set(ctx: FilterContext, name: str, words: str) -> BitMap:
    labels, _ = ctx.text.scores(name, words)
    return bitmap_of(labels)


def _predicate(ctx: FilterContext, pred: query_pb2.FieldPredicate) -> BitMap:
    name = pred.field
    if name not in ctx.fields.schema:
        raise InvalidArgument(f"unknown field {name!r}; this collection indexes {sorted(ctx.fields.schema)}")
    ftype = ctx.fields.type_of(name)
    col = ctx.fields.column(name)
    op = pred.WhichOneof("op")
    if op == "exists":
        return col.exists()
    if ftype == TEXT:
        if op not in ("eq", "contains"):
            raise InvalidArgument(f"text field {name!r} takes a full-text match, not {op}")
        return _text_set(ctx, name, str(value_from_proto(getattr(pred, op))))
    if op in ("eq", "contains"):
        if op == "contains" and ftype != TAGS:
            raise InvalidArgument(f"'contains' needs a tags field; {name!r} is {ftype}")
        return col.isin([_coerced(ftype, name, getattr(pred, op))])
    if op == "in":
        return col.isin([_coerced(ftype, name, v) for v in getattr(pred, "in").values])
    if op == "range":
        if ftype not in NUMERIC_TYPES:
            raise InvalidArgument(f"range needs an int, float or datetime field; {name!r} is {ftype}")
        r = pred.range
        lo = hi = None
        lo_incl = hi_incl = True
        if r.HasField("gt") or r.HasField("gte"):
            lo_incl = r.HasField("gte")
            lo = _coerced(ftype, name, r.gte if lo_incl else r.gt)
        if r.HasField("lt") or r.HasField("lte"):
            hi_incl = r.HasField("lte")
            hi = _coerced(ftype, name, r.lte if hi_incl else r.lt)
        return col.range(lo, lo_incl, hi, hi_incl)
    raise InvalidArgument(f"field predicate on {name!r} has no operation")


def _near_set(ctx: FilterContext, near: query_pb2.Near) -> BitMap:
    if not near.HasField("min_similarity"):
        raise InvalidArgument("a near clause inside a filter needs a threshold (@similarity) or top; "
                              "a bare near only ranks, at the top level of a query")
    return ctx.near(np.asarray(near.vector, dtype=np.float32), near.min_similarity)


def evaluate(ctx: FilterContext, node: query_pb2.QueryNode) -> BitMap:
    """A new bitmap of the live labels the node selects; records each clause's figures when ctx.record."""
    kind = node.WhichOneof("node")
    if kind in ("all", "any"):
        children = getattr(node, kind).nodes
        if not children:
            raise InvalidArgument(f"an empty {'AND' if kind == 'all' else 'OR'} has no clauses")
        parts = [evaluate(ctx, child) for child in children]
        if len(parts) == 1:
            out = parts[0]
        elif kind == "all":
            out = BitMap.intersection(*sorted(parts, key=len))  # smallest first: the rest shrink fastest
        else:
            out = BitMap.union(*parts)
    elif kind == "negate":
        out = ctx.live - evaluate(ctx, node.negate)
    elif kind == "field":
        out = _predicate(ctx, node.field)
    elif kind == "match":
        out = _text_set(ctx, node.match.field, node.match.text)
    elif kind == "near":
        out = _near_set(ctx, node.near)
    elif kind == "ids":
        out = bitmap_of(ctx.labels_of(list(node.ids.ids)))
    else:
        raise InvalidArgument("the query tree has an empty node")
    if kind in ("match", "ids"):
        out &= ctx.live  # the text index and id map may still name labels deleted since; postings never do
    if ctx.record:
        ctx.figures.append(Figures(render(node), len(out), len(out)))
    return out


def mentions_near(node: query_pb2.QueryNode) -> bool:
    """Whether a filter tree holds a near clause (its set is particular to one query vector)."""
    kind = node.WhichOneof("node")
    if kind in ("all", "any"):
        return any(mentions_near(child) for child in getattr(node, kind).nodes)
    if kind == "negate":
        return mentions_near(node.negate)
    return kind == "near"


def _exclusion(node: query_pb2.QueryNode) -> Exclusion | None:
    if node.WhichOneof("node") != "negate" or node.negate.WhichOneof("node") != "near":
        return None
    near = node.negate.near
    if not near.HasField("min_similarity") or not near.vector:
        return None
    return Exclusion(np.asarray(near.vector, dtype=np.float32), float(near.min_similarity))


def split_exclusions(node: query_pb2.QueryNode) -> tuple[query_pb2.QueryNode | None, list[Exclusion]]:
    """The filter without its top-level `NOT near@threshold` clauses (None = no set filter left), and those."""
    if node.WhichOneof("node") is None:
        return None, []
    single = _exclusion(node)
    if single is not None:
        return None, [single]
    if node.WhichOneof("node") != "all":
        return node, []
    exclusions, rest = [], []
    for child in node.all.nodes:
        found = _exclusion(child)
        if found is None:
            rest.append(child)
        else:
            exclusions.append(found)
    if not exclusions:
        return node, []
    if not rest:
        return None, exclusions
    if len(rest) == 1:
        return rest[0], exclusions
    out = query_pb2.QueryNode()
    out.all.nodes.extend(rest)
    return out, exclusions
