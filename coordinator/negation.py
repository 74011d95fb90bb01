"""Rank-form NOT, the cross-shard set difference: `near(v, top=K')` names the collection's global top-K'
neighbours of v, which no shard can know alone. The coordinator resolves each such clause first (fan out,
merge the global top-K') and hands the shards the resulting id set; the main query then runs with it."""

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
