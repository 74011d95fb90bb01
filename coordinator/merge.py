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
