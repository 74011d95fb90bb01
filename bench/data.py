"""Synthetic embedding-like vectors: a seeded Gaussian mixture in a low-dimensional subspace, normalised."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Shape of the mixture. Real sentence embeddings sit near a low-dimensional, clustered manifold;
# uniform Gaussian noise in 384-d has no such structure and is far harder for HNSW than real data.
LATENT_DIM = 64
CENTRES = 2000
CLUSTER_SIZE_SIGMA = 1.0      # log-normal spread of cluster weights: a few big topics, many small ones
SPREAD_MEDIAN = 0.7           # median within-cluster std, per latent axis, relative to the centres' std of 1
SPREAD_SIGMA = 0.25           # log-normal spread of that std across clusters
AMBIENT_NOISE = 0.08          # std of isotropic noise per ambient (384-d) axis, before normalising
GEN_CHUNK = 20_000            # rows generated at a time, to bound peak memory


@dataclass(frozen=True)
class DataSpec:
    """Every parameter that fixes the synthetic data set."""

    n: int
    queries: int
    dim: int
    seed: int
    latent_dim: int = LATENT_DIM
    centres: int = CENTRES
    cluster_size_sigma: float = CLUSTER_SIZE_SIGMA
    spread_median: float = SPREAD_MEDIAN
    spread_sigma: float = SPREAD_SIGMA
    ambient_noise: float = AMBIENT_NOISE

    def to_dict(self) -> dict[str, object]:
        """Plain dict for results.json."""
        return asdict(self)

    def describe(self) -> str:
        """How the data was made, in prose for BENCHMARKS.md."""
        return (
            f"Synthetic, seeded (`--seed {self.seed}`), numpy `default_rng`. {self.centres} cluster centres drawn "
            f"from N(0, I) in a {self.latent_dim}-d latent space; cluster weights log-normal "
            f"(sigma {self.cluster_size_sigma}), so cluster sizes are uneven; each cluster has its own spread, "
            f"std per latent axis log-normal with median {self.spread_median} (sigma {self.spread_sigma}). "
            f"Each point = its centre + Gaussian offset with that spread, mapped to {self.dim}-d by a fixed random "
            f"projection with orthonormal rows, plus isotropic N(0, {self.ambient_noise}^2) noise on every one of "
            f"the {self.dim} axes, then L2-normalised. {self.n:,} points are indexed; {self.queries:,} further "
            f"points drawn from the same mixture (not in the index) are the queries. Metric: cosine. "
            f"Ground truth: exact top-10 by numpy (float32 dot products on the normalised vectors)."
        )


@dataclass
class Dataset:
    """Indexed vectors and held-out queries, both float32, unit length, C-contiguous."""

    spec: DataSpec
    vectors: np.ndarray
    queries: np.ndarray


def _mixture_params(spec: DataSpec, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centres, cluster weights, per-cluster spread and the latent -> ambient projection."""
    centres = rng.standard_normal((spec.centres, spec.latent_dim)).astype(np.float32)
    weights = rng.lognormal(0.0, spec.cluster_size_sigma, spec.centres)
    weights /= weights.sum()
    spread = (spec.spread_median * rng.lognormal(0.0, spec.spread_sigma, spec.centres)).astype(np.float32)
    # QR of a Gaussian matrix gives orthonormal columns: the latent geometry survives the projection intact.
    q, _ = np.linalg.qr(rng.standard_normal((spec.dim, spec.latent_dim)))
    return centres, weights, spread, np.ascontiguousarray(q.T, dtype=np.float32)


def _draw(rows: int, params: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], spec: DataSpec,
          rng: np.random.Generator) -> np.ndarray:
    """`rows` points of the mixture, unit length."""
    centres, weights, spread, projection = params
    out = np.empty((rows, spec.dim), dtype=np.float32)
    for start in range(0, rows, GEN_CHUNK):
        m = min(GEN_CHUNK, rows - start)
        label = rng.choice(spec.centres, size=m, p=weights)
        latent = centres[label] + spread[label, None] * rng.standard_normal((m, spec.latent_dim), dtype=np.float32)
        x = latent @ projection
        x += spec.ambient_noise * rng.standard_normal((m, spec.dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:start + m] = x
    return out


def make_dataset(spec: DataSpec) -> Dataset:
    """Build the indexed set and the query set from one seed (queries are fresh draws, never indexed)."""
    rng = np.random.default_rng(spec.seed)
    params = _mixture_params(spec, rng)
    vectors = _draw(spec.n, params, spec, rng)
    queries = _draw(spec.queries, params, spec, rng)
    return Dataset(spec, vectors, queries)
