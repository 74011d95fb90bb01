"""Merging ranked columns into a top-k, the same way on shard nodes and on the coordinator.

Hits arrive as (queries, entries) arrays side by side from several sources, padded with id "" and distance
+inf. Sorting is vectorised over the whole batch; only rows with exactly equal distances near the cut take a
Python sort so ties go to the smaller id (the same answer whichever source was first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

PAD_ID = ""
# One row of at most this many entries (a single query's merge) is merged by a Python sort of (distance, id):
# numpy's per-call costs (partition, sort, fancy indexing, tie checks) are most of such a merge's time.
SMALL_ROW = 256


def merge_columns(ids: np.ndarray, dists: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's k smallest distances (ties by id), as (rows, <=k) id and distance arrays, padding last."""
    rows, total = dists.shape
    width = min(k, total)
    if width == 0:
        return np.empty((rows, 0), dtype=object), np.empty((rows, 0), dtype=np.float32)
    if rows == 1 and total <= SMALL_ROW:
        return merge_pairs(zip(dists[0].tolist(), ids[0].tolist(), strict=True), width)
    # Plain fancy indexing by (row, column): take_along_axis rebuilds index grids per call.
    r = np.arange(rows)[:, None]
    if total <= k:
        order = np.argsort(dists, axis=1, kind="stable")
    else:
        part = np.argpartition(dists, width - 1, axis=1)[:, :width]
        order = part[r, np.argsort(dists[r, part], axis=1, kind="stable")]
    out_d = dists[r, order]
    out_ids = ids[r, order]
    finite = np.isfinite(out_d)
    tied = ((out_d[:, 1:] == out_d[:, :-1]) & finite[:, 1:]).any(axis=1)
    if total > width:  # an equal distance just past the cut may belong to a smaller id
        kth = out_d[:, -1]
        tied |= (np.isfinite(kth) & ((dists == kth[:, None]).sum(axis=1) > (out_d == kth[:, None]).sum(axis=1)))
    for q in np.flatnonzero(tied):
        cand = np.flatnonzero(np.isfinite(dists[q]))
        best = sorted(cand.tolist(), key=lambda c, q=q: (float(dists[q, c]), ids[q, c]))[:width]
        fill = width - len(best)
        out_ids[q] = np.asarray([ids[q, c] for c in best] + [PAD_ID] * fill, dtype=object)
        out_d[q] = np.asarray([dists[q, c] for c in best] + [np.inf] * fill, dtype=np.float32)
    return out_ids, out_d.astype(np.float32, copy=False)


def merge_pairs(pairs: Iterable[tuple[float, str]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """One row's k smallest (distance, id) pairs, ties by id, as (1, <=k) id and distance arrays: a Python sort,
    for rows of at most SMALL_ROW entries."""
    best = sorted(pairs)[:k]
    out_ids = np.empty((1, len(best)), dtype=object)
    out_ids[0, :] = [i for _, i in best]
    return out_ids, np.array([[d for d, _ in best]], dtype=np.float32)


def merge_ranked(lists: Sequence[tuple[Sequence[str], np.ndarray]], k: int, higher_is_better: bool
                 ) -> tuple[list[str], np.ndarray]:
    """One ranked list from several (ids, values) lists: the k best values (ties by id), as merge_columns does
    for one row."""
    ids = np.asarray([i for part, _ in lists for i in part], dtype=object)
    if not len(ids):
        return [], np.empty(0, dtype=np.float32)
    values = np.concatenate([np.asarray(v, dtype=np.float32) for _, v in lists])
    keys = -values if higher_is_better else values
    top_ids, top_keys = merge_columns(ids[None, :], keys[None, :], k)
    return top_ids[0].tolist(), (-top_keys[0] if higher_is_better else top_keys[0])


def pad_rows(rows: Sequence[tuple[Sequence[str], np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-query (ids, distances) as padded (queries, width) arrays."""
    width = max((len(r[0]) for r in rows), default=0)
    ids = np.full((len(rows), width), PAD_ID, dtype=object)
    dists = np.full((len(rows), width), np.inf, dtype=np.float32)
    for q, (row_ids, row_d) in enumerate(rows):
        ids[q, :len(row_ids)] = list(row_ids)
        dists[q, :len(row_ids)] = row_d
    return ids, dists
