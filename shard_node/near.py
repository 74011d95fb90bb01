"""Exact similarity of stored vectors to one vector `v`, from the stored norms (no row is re-normalised).

Scores are "higher is better" in every metric: cosine similarity, inner product, and for l2 the negated
squared distance. A threshold `tau` means similarity >= tau (cosine, ip) or squared distance <= tau (l2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyroaring import BitMap

from protos.wire import check_vectors
from shard_node.fields import bitmap_of
from shard_node.filters import Exclusion
from shard_node.partition import Partition, scores
from shard_node.settings import SKETCH_MAX_SHARE, SKETCH_MIN_ROWS
from shard_node.sketch import ScoreMap


def within(metric: str, similarity: np.ndarray, tau: float) -> np.ndarray:
    """Which similarities pass the threshold `tau`."""
    return -similarity <= tau if metric == "l2" else similarity >= tau


def checked(part: Partition, vector: np.ndarray, what: str) -> np.ndarray:
    """`vector` as float32, refused with a clear status if it does not fit the partition."""
    vector = np.asarray(vector, dtype=np.float32)
    # The coordinator binds near vectors first, but a shard answers whoever calls it with a clear status.
    check_vectors(vector.reshape(1, -1), part.spec.dim, what, part.spec.metric)
    return vector


def near_set(part: Partition, vector: np.ndarray, tau: float) -> BitMap:
    """Live labels within `tau` of `vector`; call it while `searching`."""
    vector = checked(part, vector, "near vector")
    labels = part.everything().labels
    sims = scores(part.spec.metric, part.rows(labels), part.norms[labels], vector)
    return bitmap_of(labels[within(part.spec.metric, sims, tau)])


def excluded(part: Partition, labels: np.ndarray, exclusions: Sequence[Exclusion]) -> np.ndarray:
    """Which of `labels` some exclusion removes (each checked exactly against its vector); call while `searching`."""
    out = np.zeros(len(labels), dtype=bool)
    if len(labels) == 0:
        return out
    rows, norms = part.rows(labels), part.norms[labels]
    for ex in exclusions:
        vector = checked(part, ex.vector, "NOT near vector")
        out |= within(part.spec.metric, scores(part.spec.metric, rows, norms, vector), ex.min_similarity)
    return out


def top_similar(part: Partition, vector: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
    """This partition's exact top-k live documents by similarity to `vector`: ids and similarities, best first.

    The rank form `NOT near:v@top:K` needs the global top-K of v: every partition's local top-K with these
    similarities is enough for the coordinator to find it (and the K-th similarity, the cut-off) in one round.
    Ties break by label, so the answer is deterministic."""
    vector = checked(part, vector, "near vector")
    metric = part.spec.metric
    with part.searching(part.spec.ef_search):
        labels = part.everything().labels
        pool = labels
        if len(labels) >= SKETCH_MIN_ROWS and k < len(labels):
            live = part.live_mask()
            narrowed = part.sketch().candidates(vector, live, k, ScoreMap(metric, part.norms[: len(live)], vector))
            if len(narrowed) * SKETCH_MAX_SHARE <= len(labels):
                pool = narrowed
        if pool is labels:
            sims = scores(metric, part.prefix(), part.norms[: part.size], vector)[labels]
        else:
            sims = scores(metric, part.rows(pool), part.norms[pool], vector)
        if k < len(pool):
            top = np.argpartition(-sims, k - 1)[:k]
            cut = sims[top].min()
            top = np.flatnonzero(sims >= cut)  # every tie at the cut, so the label order decides among them
        else:
            top = np.arange(len(pool))
        order = np.lexsort((pool[top], -sims[top]))[:k]
        chosen = top[order]
        return part.ids_of(pool[chosen]), sims[chosen].astype(np.float32)
