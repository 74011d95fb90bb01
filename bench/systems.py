"""Systems under test: Shoal through its SDK, in-process hnswlib, numpy brute force, and empty-RPC floors."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import grpc
import hnswlib
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tqdm import tqdm

import shoal
from bench.measure import batch_slices, pad_labels

RANDOM_SEED = 100  # hnswlib's level-generator seed, the same one Shoal's partitions use


def top_k_by_dot(queries: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the k largest dot products of each query, best first (exact)."""
    scores = queries @ vectors.T
    part = np.argpartition(scores, -k, axis=1)[:, -k:]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


class BruteForce:
    """Exact cosine search by numpy on unit vectors: one matrix product per batch (BLAS uses every core)."""

    name = "brute force (numpy)"

    def __init__(self) -> None:
        self._vectors = np.empty((0, 0), dtype=np.float32)

    def ingest(self, vectors: np.ndarray, batch: int) -> float:
        """Keep a reference to the (already unit-length) vectors."""
        start = time.perf_counter()
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return time.perf_counter() - start

    def search(self, queries: np.ndarray, k: int, ef: int) -> np.ndarray:
        """Exact top-k of each row; ef is ignored."""
        return top_k_by_dot(queries, self._vectors, k)

    def labels(self, raw: np.ndarray, k: int) -> np.ndarray:
        """Already row numbers."""
        return raw

    def search_one(self, query: np.ndarray, k: int, ef: int) -> np.ndarray:
        """Exact top-k of one query."""
        return top_k_by_dot(query[None, :], self._vectors, k)

    def labels_one(self, raw: np.ndarray, k: int) -> np.ndarray:
        """The one row."""
        return raw[0]


class Hnswlib:
    """One in-process hnswlib index over every vector, using every core for batched calls."""

    def __init__(self, dim: int, m: int, ef_construction: int, threads: int, name: str = "hnswlib (in-process)"
                 ) -> None:
        self.name = name
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.threads = threads
        self._index = hnswlib.Index(space="cosine", dim=dim)

    def ingest(self, vectors: np.ndarray, batch: int) -> float:
        """add_items batch by batch (the same batches Shoal gets), timing the index calls."""
        spent = 0.0
        start = time.perf_counter()
        self._index.init_index(max_elements=len(vectors), M=self.m, ef_construction=self.ef_construction,
                               random_seed=RANDOM_SEED)
        spent += time.perf_counter() - start
        with tqdm(total=len(vectors), desc=f"{self.name} ingest", unit="vec") as bar:
            for sl in batch_slices(len(vectors), batch):
                labels = np.arange(sl.start, sl.stop, dtype=np.int64)
                start = time.perf_counter()
                self._index.add_items(vectors[sl], labels, num_threads=self.threads)
                spent += time.perf_counter() - start
                bar.update(sl.stop - sl.start)
        return spent

    def save(self, path: Path) -> None:
        """Write the built index to `path` (hnswlib's own format)."""
        self._index.save_index(str(path))

    def load(self, path: Path, elements: int) -> None:
        """Read an index written by save() in place of building one."""
        self._index.load_index(str(path), max_elements=elements)

    def search(self, queries: np.ndarray, k: int, ef: int) -> np.ndarray:
        """knn_query over the batch on every core."""
        self._index.set_ef(ef)
        labels, _ = self._index.knn_query(queries, k=k, num_threads=self.threads)
        return labels

    def labels(self, raw: np.ndarray, k: int) -> np.ndarray:
        """hnswlib's uint64 labels as int64."""
        return raw.astype(np.int64)

    def search_one(self, query: np.ndarray, k: int, ef: int) -> np.ndarray:
        """knn_query of one row on one thread (a second thread has nothing to do)."""
        self._index.set_ef(ef)
        return self._index.knn_query(query[None, :], k=k, num_threads=1)[0]

    def labels_one(self, raw: np.ndarray, k: int) -> np.ndarray:
        """The one row, as int64."""
        return raw[0].astype(np.int64)

    def with_threads(self, threads: int, name: str) -> Hnswlib:
        """The same index searched with another thread count (for single-thread throughput)."""
        view = copy.copy(self)
        view.threads, view.name = threads, name
        return view


class Shoal:
    """A Shoal collection reached through shoal.Client, exactly as an application would use it."""

    def __init__(self, client: shoal.Client, collection: str, shards: int) -> None:
        self.client = client
        self.collection = collection
        self.name = f"Shoal ({shards} shards)"

    @classmethod
    def connect(cls, address: str, collection: str, shards: int, timeout: float) -> Shoal:
        """A new shoal.Client (its own channel) on the collection."""
        return cls(shoal.Client(address, timeout=timeout), collection, shards)

    def ingest(self, vectors: np.ndarray, batch: int) -> float:
        """Upsert batch by batch with ids "0".."n-1", timing the RPCs; then check every vector arrived."""
        ids = np.arange(len(vectors)).astype(str).tolist()
        spent = 0.0
        with tqdm(total=len(vectors), desc=f"{self.name} ingest", unit="vec") as bar:
            for sl in batch_slices(len(vectors), batch):
                start = time.perf_counter()
                self.client.upsert(self.collection, ids[sl], vectors[sl])
                spent += time.perf_counter() - start
                bar.update(sl.stop - sl.start)
        stored = self.client.count(self.collection)
        if stored != len(vectors):
            raise RuntimeError(f"Shoal holds {stored} documents after ingesting {len(vectors)}")
        return spent

    def search(self, queries: np.ndarray, k: int, ef: int) -> list[list[shoal.Hit]]:
        """One search_batch call for the whole batch, without payloads."""
        return self.client.search_batch(self.collection, vectors=queries, k=k, ef=ef, with_payload=False)

    def labels(self, raw: list[list[shoal.Hit]], k: int) -> np.ndarray:
        """Parse the string ids back to row numbers."""
        if all(len(hits) == k for hits in raw):
            flat = np.asarray([h.id for hits in raw for h in hits])
            return flat.astype(np.int64).reshape(len(raw), k)
        return pad_labels([np.asarray([h.id for h in hits]).astype(np.int64) for hits in raw], k)

    def search_one(self, query: np.ndarray, k: int, ef: int) -> list[shoal.Hit]:
        """client.search of one vector, without payloads."""
        return self.client.search(self.collection, query, k=k, ef=ef, with_payload=False)

    def labels_one(self, raw: list[shoal.Hit], k: int) -> np.ndarray:
        """Parse the string ids back to row numbers."""
        return pad_labels([[int(h.id) for h in raw]], k)[0]

    def close(self) -> None:
        """Close the client."""
        self.client.close()


class RpcFloor:
    """One gRPC round trip that does no work (the standard Health.Check) to one server: the floor of a hop."""

    def __init__(self, address: str, name: str) -> None:
        self.name = name
        self._channel = grpc.insecure_channel(address)
        self._stub = health_pb2_grpc.HealthStub(self._channel)
        self._request = health_pb2.HealthCheckRequest()

    def search_one(self, query: np.ndarray, k: int, ef: int) -> object:
        """Ignore the query; one empty round trip."""
        return self._stub.Check(self._request)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
