"""near:"text" clauses: embedded by the collection's model before the query is bound."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

from protos import query_pb2

TextEmbedder = Callable[[list[str]], Awaitable[np.ndarray | None]]


def _text_nears(node: query_pb2.QueryNode, out: list[query_pb2.Near]) -> list[query_pb2.Near]:
    kind = node.WhichOneof("node")
    if kind in ("all", "any"):
        for child in getattr(node, kind).nodes:
            _text_nears(child, out)
    elif kind == "negate":
        _text_nears(node.negate, out)
    elif kind == "near" and node.near.text and not len(node.near.vector):
        out.append(node.near)
    return out


async def embed_near_texts(tree: query_pb2.QueryNode, embed: TextEmbedder) -> query_pb2.QueryNode:
    """A copy of the tree whose near:"text" clauses carry their query vectors (unchanged when the
    collection has no model: binding then says so)."""
    tree = query_pb2.QueryNode.FromString(tree.SerializeToString())
    nears = _text_nears(tree, [])
    if not nears:
        return tree
    vectors = await embed([n.text for n in nears])
    if vectors is not None:
        for near, vector in zip(nears, vectors, strict=True):
            near.vector.extend(vector.tolist())
    return tree
