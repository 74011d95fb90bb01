"""An int8 sketch of a partition's vectors that narrows an exact top-K scan to a few candidates, rigorously.

The rank form `NOT near:v@top:K` needs each partition's exact top-K of v. A float32 scan reads 4 bytes per
dimension of every row (3.7 ms for 21k x 384 here, one core); the sketch reads one, through onnxruntime's
integer matrix kernels (0.8 ms; numpy has no fast int8 product). Each row z (the unit vector for cosine, the
vector itself otherwise, as decoded from the partition's copy) is stored as int8 codes c with a scale s and two
norms: of y = s c and of the residual e = z - y. The query w is split into two int8 terms t1 d1 + t2 d2 and a
residual g. Then for every row

    |<z, w> - s (t1 <c, d1> + t2 <c, d2>)| <= |y| |g| + |e| |w|

(Cauchy-Schwarz on <y, g> and <e, w>), plus a margin for float32 rounding in the exact scan. The K-th largest
lower bound is at most the true K-th similarity, so every row whose upper bound reaches it is a candidate, and
the exact top-K (and every tie at its cut-off) is among them: the caller rescores only those.

The sketch is built the first time a partition needs it and kept up to date by writes after that, so
partitions that never see a rank-form NOT pay nothing for it.
"""

from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort

from shard_node.sketch_model import MODEL_FILE
from shard_node.storage import grown, quantised_int8

ROUNDING = 2.0 ** -20  # per dimension, relative to |z| |w|: float32 error of the exact scan's dot products


@functools.cache
def _session() -> ort.InferenceSession:
    """One graph per process (sessions are thread-safe); one thread, since the node searches partitions side
    by side already."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODEL_FILE), opts, providers=["CPUExecutionProvider"])


class ScanSketch:
    """int8 codes (stored + 128, as uint8), scales and bound norms by label. Not thread-safe: the partition's
    gate is (writes update it under the write gate, scans read it under the read gate)."""

    def __init__(self, dim: int, capacity: int, unit: bool) -> None:
        self._unit = unit
        self._dim = dim
        self._codes = np.zeros((capacity, dim), dtype=np.uint8)
        self._scales = np.zeros(capacity, dtype=np.float32)
        self._y_norms = np.zeros(capacity, dtype=np.float32)
        self._e_norms = np.zeros(capacity, dtype=np.float32)

    def grow(self, capacity: int) -> None:
        """Make room for `capacity` rows."""
        self._codes, self._scales = grown(self._codes, capacity), grown(self._scales, capacity)
        self._y_norms, self._e_norms = grown(self._y_norms, capacity), grown(self._e_norms, capacity)

    def put(self, labels: np.ndarray, rows: np.ndarray, norms: np.ndarray) -> None:
        """Sketch decoded float32 rows at labels (`norms`: the partition's stored norms of them)."""
        z = rows / norms[:, None] if self._unit else rows
        codes, scales = quantised_int8(z)
        y = codes.astype(np.float32) * scales[:, None]
        self._codes[labels] = codes.view(np.uint8) ^ np.uint8(0x80)  # two's complement + 128
        self._scales[labels] = scales
        self._y_norms[labels] = np.linalg.norm(y, axis=1)
        self._e_norms[labels] = np.linalg.norm(z - y, axis=1)

    def nbytes(self) -> int:
        """Bytes held in memory."""
        return self._codes.nbytes + self._scales.nbytes + self._y_norms.nbytes + self._e_norms.nbytes

    def dot_bounds(self, vector: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of <z, w> for rows [0, size) (w: the query, unit for cosine). Whole-prefix
        arrays rather than gathers by label: a gather costs more than the integer product itself."""
        w = vector.astype(np.float32)
        if self._unit:
            w = w / max(float(np.linalg.norm(w)), 1e-30)
        terms = np.zeros((self._dim, 2), dtype=np.int8)
        steps = np.zeros(2, dtype=np.float64)
        residual = w.astype(np.float64)
        for j in range(2):  # the second term quantises what the first left, so |g| is about |w| / 127^2
            codes, scale = quantised_int8(residual.reshape(1, -1).astype(np.float32))
            terms[:, j], steps[j] = codes[0], scale[0]
            residual = residual - codes[0].astype(np.float64) * float(scale[0])
        dots = _session().run(None, {"A": self._codes[:size], "B": terms})[0]
        approx = self._scales[:size] * (dots @ steps).astype(np.float32)
        w_norm, g_norm = float(np.linalg.norm(w)), float(np.linalg.norm(residual))
        y_norms, e_norms = self._y_norms[:size], self._e_norms[:size]
        slack = y_norms * (g_norm + ROUNDING * self._dim * w_norm) + e_norms * (w_norm * (1 + ROUNDING * self._dim))
        return approx - slack, approx + slack

    def candidates(self, vector: np.ndarray, live: np.ndarray, k: int, to_score: ScoreMap) -> np.ndarray:
        """The live labels (`live`: a mask over [0, size) with more than k set) whose exact score may reach
        the k-th best: the exact top-k and all its ties are among them. `to_score` maps dot bounds to score
        bounds (nondecreasing, per row)."""
        low, high = self.dot_bounds(vector, len(live))
        low, high = to_score(low), to_score(high)
        low[~live] = -np.inf
        floor = np.partition(low, len(low) - k)[len(low) - k]
        return np.flatnonzero((high >= floor - to_score.tolerance()) & live)


class ScoreMap:
    """Maps dot products of sketch rows to the partition's scores, nondecreasingly (see `near.scores`)."""

    def __init__(self, metric: str, norms: np.ndarray, vector: np.ndarray) -> None:
        """`norms`: the stored norms of rows [0, size)."""
        self._metric = metric
        self._norms = norms
        self._vv = float(vector @ vector)

    def tolerance(self) -> float:
        """float32 rounding of the exact l2 score beyond its dot product's: n^2 + |v|^2 - 2 dot cancels."""
        if self._metric != "l2":
            return 0.0
        return 16 * ROUNDING * (self._vv + float(self._norms.max()) ** 2)

    def __call__(self, dots: np.ndarray) -> np.ndarray:
        """Scores of rows [0, len(dots)) whose dot products with the query are `dots`."""
        if self._metric == "l2":
            n = self._norms[: len(dots)]
            return -np.maximum(n * n + self._vv - 2.0 * dots, 0.0)
        return dots  # cosine: the sketch holds unit rows and a unit query; ip: the raw dot product
