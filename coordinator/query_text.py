"""near:"text" clauses: embedded by the collection's model before the query is bound."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

from protos import query_pb2
from protos import query_tree as q

TextEmbedder = Callable[[list[str]], Awaitable[np.ndarray | None]]


async def embed_near_texts(tree: query_pb2.QueryNode, embed: TextEmbedder) -> query_pb2.QueryNode:
    """A copy of the tree whose near:"text" clauses carry their query vectors (unchanged when the
    collection has no model: binding then says so)."""
    tree = query_pb2.QueryNode.FromString(tree.SerializeToString())
    nears = [n.near for n in q.find(tree, lambda n: n.WhichOneof("node") == "near" and bool(n.near.text)
                                    and not len(n.near.vector))]
    if not nears:
        return tree
    vectors = await embed([n.text for n in nears])
    if vectors is not None:
        for near, vector in zip(nears, vectors, strict=True):
            near.vector.extend(vector.tolist())
    return tree
