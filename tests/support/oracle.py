"""Exact brute-force answers (numpy) to score approximate search against."""

from __future__ import annotations

import numpy as np

TIE_EPS = 1e-5


def exact_distances(metric: str, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Distances with hnswlib's conventions (lower is better), in float64: 1-cos, 1-ip, squared l2.

    A zero vector has cosine distance 1 to everything, as in hnswlib (which normalises it to zero)."""
    q = np.asarray(queries, dtype=np.float64)
    v = np.asarray(vectors, dtype=np.float64)
    if metric == "l2":
        return np.maximum((q * q).sum(1)[:, None] + (v * v).sum(1)[None, :] - 2 * q @ v.T, 0.0)
    if metric == "cosine":
        qn = np.linalg.norm(q, axis=1, keepdims=True)
        vn = np.linalg.norm(v, axis=1, keepdims=True)
        q = np.divide(q, qn, out=np.zeros_like(q), where=qn > 0)
        v = np.divide(v, vn, out=np.zeros_like(v), where=vn > 0)
    elif metric != "ip":
        raise ValueError(f"unknown metric {metric!r}")
    return 1.0 - q @ v.T


def exact_top_k(metric: str, queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices and distances of each query's exact top-k, best first (ties by index)."""
    d = exact_distances(metric, queries, vectors)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, axis=1)


def recall_at_k(found_dists: list[np.ndarray], true_dists: np.ndarray) -> float:
    """Mean share of the true top-k matched, counting a hit as right when it is no farther than the k-th
    true neighbour (so exact ties at the boundary do not count as misses)."""
    k = true_dists.shape[1]
    hits = [min(int((np.asarray(f) <= t[-1] + TIE_EPS).sum()), k) for f, t in zip(found_dists, true_dists, strict=True)]
    return float(np.mean(hits) / k)


def same_set_up_to_ties(a_ids: list[str], a_d: np.ndarray, b_ids: list[str], b_d: np.ndarray) -> bool:
    """Two top-k lists name the same documents, except where they differ only among equally distant ones."""
    if len(a_ids) != len(b_ids):
        return False
    differ = set(a_ids) ^ set(b_ids)
    if not differ:
        return True
    boundary = max(float(np.max(a_d)), float(np.max(b_d)))
    dist = {**dict(zip(a_ids, a_d, strict=True)), **dict(zip(b_ids, b_d, strict=True))}
    return all(abs(float(dist[i]) - boundary) <= TIE_EPS for i in differ)


def id_recall(found: list[list[str]], truth: list[list[str]]) -> float:
    """Mean fraction of each true top-k id list that was found."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))
