"""Merging per-shard top-k lists into the global top-k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def merge_top_k(ids_per_shard: Sequence[Sequence[str]], dists_per_shard: Sequence[np.ndarray], k: int
                ) -> tuple[list[int], list[int]]:
    """Global top-k by distance (ties by id, duplicates dropped): (shard, position) of each winner."""
    sizes = [len(ids) for ids in ids_per_shard]
    total = sum(sizes)
    if total == 0:
        return [], []
    flat = [i for ids in ids_per_shard for i in ids]
    # Rank ids in Python: a numpy str array would drop trailing NULs and merge "a" with "a\x00".
    rank = {doc_id: r for r, doc_id in enumerate(sorted(set(flat)))}
    keys = np.fromiter((rank[i] for i in flat), dtype=np.int64, count=total)
    dists = np.concatenate([np.asarray(d, dtype=np.float32) for d in dists_per_shard])
    order = np.lexsort((keys, dists))
    _, first = np.unique(keys[order], return_index=True)
    winners = order[np.sort(first)][:k]
    shard_of = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    shards = shard_of[winners]
    return shards.tolist(), (winners - starts[shards]).tolist()


def column_starts(widths: Sequence[int]) -> np.ndarray:
    """Where each shard's columns begin when the shards' (queries, hits) arrays stand side by side."""
    return np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)


def merge_top_k_rows(ids: np.ndarray, dists: np.ndarray, widths: Sequence[int], k: int) -> list[np.ndarray]:
    """Global top-k of every query at once, best first, from the shards' (queries, hits) arrays side by side.

    `widths` are the shards' column counts. Returns, per query, the winning columns. Sorting by distance is
    vectorised; the rare rows with equal distances or a repeated id take merge_top_k.
    """
    rows, total = dists.shape
    if total == 0:
        return [np.empty(0, dtype=np.int64) for _ in range(rows)]
    order = np.argsort(dists, axis=1, kind="stable")
    head = np.take_along_axis(dists, order[:, :k + 1], axis=1)
    tied = (head[:, 1:] == head[:, :-1]).any(axis=1)
    starts = column_starts(widths)
    out = []
    for q in range(rows):
        row_ids = ids[q]
        if tied[q] or len(set(row_ids.tolist())) < total:
            parts = np.split(np.arange(total), starts[1:])
            shard, pos = merge_top_k([row_ids[p] for p in parts], [dists[q, p] for p in parts], k)
            out.append(starts[shard] + np.asarray(pos, dtype=np.int64))
        else:
            out.append(order[q, :k])
    return out
