"""Reciprocal rank fusion of ranked id lists."""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60  # the usual damping constant: a document's share is weight / (RRF_K + rank)


def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float], k: int) -> list[tuple[str, float]]:
    """Top-k ids by weighted reciprocal rank fusion (ranks from 1), best first; ties by id."""
    fused: dict[str, float] = {}
    for ids, weight in zip(rankings, weights, strict=True):
        for rank, doc_id in enumerate(ids, 1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
