"""Evaluating a bound query tree on one shard: a bool mask over labels, plus per-clause set sizes for explain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from protos import query_pb2
from protos.errors import InvalidArgument
from protos.query_tree import render
from protos.wire import value_from_proto
from shard_node.bm25 import TextIndex
from shard_node.fields import FieldIndexes
from shard_node.schema import NUMERIC_TYPES, TAGS, TEXT, FieldTypeError, scalar

SIMILARITY_SAMPLE = 512  # vectors scored to estimate how many pass a similarity threshold


@dataclass
class Figures:
    """One clause's estimated and actual set size on this shard."""

    clause: str
    estimated: int
    actual: int


@dataclass
class FilterContext:
    """What a shard's filter evaluation reads; built under the partition's gate."""

    fields: FieldIndexes
    text: TextIndex
    live: np.ndarray                                  # bool mask over labels [0, size)
    labels_of: Callable[[list[str]], np.ndarray]      # ids -> labels of live documents
    within: Callable[[np.ndarray, np.ndarray | None, float], np.ndarray]  # (vector, labels|None, tau) -> passes
    figures: list[Figures] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.live)

    @property
    def live_count(self) -> int:
        return int(self.live.sum())


def _coerced(ftype: str, name: str, value: query_pb2.QueryNode) -> object:
    try:
        return scalar(ftype, value_from_proto(value))
    except FieldTypeError as exc:
        raise InvalidArgument(f"field {name!r} ({ftype}): {exc}") from None


def _predicate(ctx: FilterContext, pred: query_pb2.FieldPredicate) -> tuple[np.ndarray, int]:
    name = pred.field
    if name not in ctx.fields.schema:
        raise InvalidArgument(f"unknown field {name!r}; this collection indexes {sorted(ctx.fields.schema)}")
    ftype = ctx.fields.type_of(name)
    col = ctx.fields.column(name)
    op = pred.WhichOneof("op")
    if op == "exists":
        return col.exists(ctx.size), col.estimate_exists()
    if ftype == TEXT:
        if op not in ("eq", "contains"):
            raise InvalidArgument(f"text field {name!r} takes a full-text match, not {op}")
        words = str(value_from_proto(getattr(pred, op)))
        mask = ctx.text.matching(name, words, ctx.size)
        return mask, int(mask.sum())
    if op in ("eq", "contains"):
        if op == "contains" and ftype != TAGS:
            raise InvalidArgument(f"'contains' needs a tags field; {name!r} is {ftype}")
        values = [_coerced(ftype, name, getattr(pred, op))]
    elif op == "in":
        values = [_coerced(ftype, name, v) for v in getattr(pred, "in").values]
    elif op == "range":
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
        return (col.range(ctx.size, lo, lo_incl, hi, hi_incl), col.estimate_range(ctx.size, lo, lo_incl, hi, hi_incl))
    else:
        raise InvalidArgument(f"field predicate on {name!r} has no operation")
    return col.isin(values, ctx.size), col.estimate_in(values)


def _near_set(ctx: FilterContext, near: query_pb2.Near) -> tuple[np.ndarray, int]:
    if not near.HasField("min_similarity"):
        raise InvalidArgument("a near clause inside a filter needs a threshold (@similarity) or top; "
                              "a bare near only ranks, at the top level of a query")
    vec = np.asarray(near.vector, dtype=np.float32)
    live_labels = np.flatnonzero(ctx.live)
    sample = live_labels[:: max(1, len(live_labels) // SIMILARITY_SAMPLE)]
    estimated = 0
    if len(sample):
        estimated = int(round(float(ctx.within(vec, sample, near.min_similarity).mean()) * len(live_labels)))
    return ctx.within(vec, None, near.min_similarity), estimated


def evaluate(ctx: FilterContext, node: query_pb2.QueryNode, record: bool = True) -> tuple[np.ndarray, int]:
    """Mask of the live documents the node selects, and its estimated count; records each clause's figures."""
    kind = node.WhichOneof("node")
    live_n = max(ctx.live_count, 1)
    if kind in ("all", "any"):
        parts = [evaluate(ctx, child, record) for child in getattr(node, kind).nodes]
        if not parts:
            raise InvalidArgument(f"an empty {'AND' if kind == 'all' else 'OR'} has no clauses")
        fractions = np.asarray([min(est / live_n, 1.0) for _, est in parts])
        if kind == "all":
            mask = np.logical_and.reduce([m for m, _ in parts])
            estimated = int(round(float(np.prod(fractions)) * live_n))
        else:
            mask = np.logical_or.reduce([m for m, _ in parts])
            estimated = int(round((1.0 - float(np.prod(1.0 - fractions))) * live_n))
    elif kind == "negate":
        inner, inner_est = evaluate(ctx, node.negate, record)
        mask, estimated = ~inner, max(live_n - inner_est, 0)
    elif kind == "field":
        mask, estimated = _predicate(ctx, node.field)
    elif kind == "match":
        mask = ctx.text.matching(node.match.field, node.match.text, ctx.size)
        estimated = int(mask.sum())
    elif kind == "near":
        mask, estimated = _near_set(ctx, node.near)
    elif kind == "ids":
        mask = np.zeros(ctx.size, dtype=bool)
        mask[ctx.labels_of(list(node.ids.ids))] = True
        estimated = len(node.ids.ids)
    else:
        raise InvalidArgument("the query tree has an empty node")
    mask &= ctx.live
    if record:
        ctx.figures.append(Figures(render(node), estimated, int(mask.sum())))
    return mask, estimated
