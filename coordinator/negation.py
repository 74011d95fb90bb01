"""Rank-form NOT, the cross-shard set difference: `near(v, top=K')` names the collection's global top-K'
neighbours of v, which no shard can know alone.

One round where it can: a `NOT near(v, top=K')` that is a conjunct of the query's top level is taken out of
the filter; every partition returns, with its top-(k + K') candidates of the main query, its exact local
top-K' of v, and the coordinator drops the global top-K' (merged from the local ones, exact) from the merge.
Two rounds elsewhere (under OR, nested NOTs, chunked collections whose sets are of documents): the clause
is resolved first (fan out, merge the global top-K') into an id set the main query then runs with."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from protos import query_pb2
from protos import query_tree as q

TopSearch = Callable[[np.ndarray, int], Awaitable[list[str]]]


async def resolve_rank_sets(tree: query_pb2.QueryNode, top_search: TopSearch) -> list[tuple[str, int]]:
    """Replace, in place, every near(v, top=K') in the tree by the id set of v's global top-K'.

    Returns each resolved clause's text and set size, for explain."""
    nodes = q.find(tree, lambda n: n.WhichOneof("node") == "near" and n.near.top > 0)
    if not nodes:
        return []
    texts = [q.render(n) for n in nodes]
    found = await asyncio.gather(*(top_search(np.asarray(n.near.vector, dtype=np.float32), int(n.near.top))
                                   for n in nodes))
    for node, doc_ids in zip(nodes, found, strict=True):
        node.CopyFrom(q.ids(doc_ids))
    return [(text, len(doc_ids)) for text, doc_ids in zip(texts, found, strict=True)]


def split_rank_nots(tree: query_pb2.QueryNode) -> tuple[query_pb2.QueryNode | None, list[query_pb2.Near]]:
    """The tree without its top-level `NOT near(v, top=K')` conjuncts, and those nears (for one round).

    Nothing is split when another rank-form near is left inside (it needs the two-round resolution)."""
    kind = tree.WhichOneof("node")
    conjuncts = list(tree.all.nodes) if kind == "all" else [tree]

    def rank_not(n: query_pb2.QueryNode) -> bool:
        return (n.WhichOneof("node") == "negate" and n.negate.WhichOneof("node") == "near"
                and n.negate.near.top > 0)

    nears = [c.negate.near for c in conjuncts if rank_not(c)]
    rest = [c for c in conjuncts if not rank_not(c)]
    if not nears or any(q.find(c, lambda n: n.WhichOneof("node") == "near" and n.near.top > 0) for c in rest):
        return tree, []
    if not rest:
        return None, nears
    return (rest[0] if len(rest) == 1 else q.and_(*rest)), nears
