"""One partition in memory: an hnswlib graph holding the one copy of its vectors in the collection's storage type
(or, for binary storage, packed bits for a flat Hamming scan over a float16 copy), string id <-> label map,
payloads."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyroaring import BitMap

from protos.errors import InvalidArgument
from protos.wire import CHUNK_SEP
from shard_node.allowed import Allowed, AllowedCache
from shard_node.bm25 import TextIndex
from shard_node.fields import FieldIndexes, bitmap_of, labels_array
from shard_node.graph import Graph, element_size, layout
from shard_node.rwlock import SearchGate
from shard_node.schema import is_text
from shard_node.settings import DEFAULT_ALLOWED_CACHE_MB, DEFAULT_OVERSAMPLE, MIN_RESCORE, PartitionSpec
from shard_node.sketch import ScanSketch
from shard_node.storage import GRAPH_TYPES, BinaryCopy, VectorCopy, check_storage, vector_copy

METRICS = ("cosine", "l2", "ip")
_RANDOM_SEED = 100
WRITE_CHUNK = 64  # documents inserted per hold of the gate: searches wait for one chunk, not a whole batch
GRAPH_FILE = "index.hnsw"
_PAYLOAD_SAMPLE = 256  # payloads whose deep size is measured to estimate all of them
_DICT_ENTRY_BYTES = 100  # one entry of the id -> label dict (key slot, hash, boxed int), about


@dataclass(frozen=True)
class MemoryFigures:
    """Bytes a partition holds (or writes), by what holds them."""

    vectors: int = 0   # the one copy in the collection's storage type (inside the graph's blocks), and the norms
    graph: int = 0     # hnswlib's links and labels (not the vectors in its blocks)
    payloads: int = 0  # payload dicts, document ids and field indexes
    text: int = 0      # full-text (BM25) index

    @property
    def total(self) -> int:
        """All of it."""
        return self.vectors + self.graph + self.payloads + self.text


def deep_size(value: object) -> int:
    """Bytes a JSON-like value (dicts, lists, scalars) takes in memory, about."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k) + deep_size(v) for k, v in value.items())
    elif isinstance(value, list):
        size += sum(deep_size(v) for v in value)
    return size


def exact_distances(metric: str, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """hnswlib-compatible distances (lower is better) of every query to every vector, by numpy."""
    if metric == "l2":
        q2 = np.einsum("ij,ij->i", queries, queries)[:, None]
        v2 = np.einsum("ij,ij->i", vectors, vectors)[None, :]
        return np.maximum(q2 + v2 - 2.0 * queries @ vectors.T, 0.0)
    if metric == "cosine":
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    return 1.0 - queries @ vectors.T


def scores(metric: str, rows: np.ndarray, row_norms: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Similarity of each row to `vector` (higher is better), using the rows' stored L2 norms."""
    dots = rows @ vector
    if metric == "cosine":
        return dots / (row_norms * max(float(np.linalg.norm(vector)), 1e-30))
    if metric == "l2":
        return -np.maximum(row_norms * row_norms + float(vector @ vector) - 2.0 * dots, 0.0)
    return dots


def top_k_rows(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k smallest entries of each row, sorted ascending."""
    k = min(k, distances.shape[1])
    if k == 0:
        empty = np.empty((distances.shape[0], 0))
        return empty.astype(np.int64), empty.astype(np.float32)
    part = np.argpartition(distances, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(distances, part, axis=1)
    order = np.argsort(vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def _last_occurrences(ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]] | None
                      ) -> tuple[list[str], np.ndarray, list[dict[str, Any]] | None]:
    """Drop all but the last occurrence of each id, so the graph, vectors and payloads agree on the winner."""
    last = {doc_id: i for i, doc_id in enumerate(ids)}
    if len(last) == len(ids):
        return list(ids), vectors, list(payloads) if payloads is not None else None
    keep = sorted(last.values())
    return ([ids[i] for i in keep], vectors[keep],
            [payloads[i] for i in keep] if payloads is not None else None)


class Partition:
    """The in-memory state of one shard; thread-safe. Durability is the ShardStore's job."""

    def __init__(self, spec: PartitionSpec, capacity: int = 1024, search_threads: int = 1,
                 index_file: Path | None = None, allowed_cache_mb: int = DEFAULT_ALLOWED_CACHE_MB) -> None:
        if spec.metric not in METRICS:
            raise InvalidArgument(f"unknown metric {spec.metric!r}; use one of {sorted(METRICS)}")
        problem = check_storage(spec.storage)
        if problem:
            raise InvalidArgument(problem)
        self.spec = spec
        self._search_threads = search_threads
        self._gate = SearchGate()
        self._graph: Graph | None = None
        self._copy: VectorCopy | None = None  # binary storage's bits and float16 rows; graphs hold their own
        if spec.storage in GRAPH_TYPES:
            self._graph = Graph(spec.storage, spec.metric, spec.dim, capacity, spec.m, spec.ef_construction,
                                _RANDOM_SEED, path=index_file)
        else:
            self._copy = vector_copy(spec.storage, spec.dim, capacity, spec.metric)
        self._sketch: ScanSketch | None = None  # built by the first exact top-K scan that needs it
        self._sketch_lock = threading.Lock()
        self._norms = np.ones(capacity, dtype=np.float32)  # L2 norms of the vectors, for exact cosine scans
        self._deleted = np.zeros(capacity, dtype=bool)
        self._live = BitMap()  # the labels not deleted, for NOT's complement and the allowed sets
        self._ids = np.empty(capacity, dtype=object)
        self._labels: dict[str, int] = {}
        self._payloads: dict[int, dict[str, Any]] = {}
        self._size = 0  # labels handed out
        self._tombstones = 0
        self.migrated = False  # loaded from an older snapshot layout and converted: the store re-snapshots it
        # Bumped by every write, so the document count (an O(n) pass over the ids) is redone only after changes:
        # the compaction scheduler reads shard figures every few seconds.
        self._writes = 0
        self._documents: tuple[int, int] = (-1, 0)  # (writes when counted, count)
        self._payload_figure: tuple[int, int] = (-1, 0)  # (writes when counted, bytes)
        self.fields = FieldIndexes(spec.fields, capacity)
        self.text = TextIndex({name: ftype for name, ftype in spec.fields.items() if is_text(ftype)})
        self.allowed_cache = AllowedCache(allowed_cache_mb << 20)

    # ---- figures -------------------------------------------------------------------------
    @property
    def live(self) -> int:
        """Documents that exist now."""
        return self._size - self._tombstones

    @property
    def tombstones(self) -> int:
        """Deleted documents still in the graph."""
        return self._tombstones

    @property
    def documents(self) -> int:
        """Live entries that are whole documents rather than extra chunks of one (recounted after writes only)."""
        with self._gate.read(-1):
            writes = self._writes
            if self._documents[0] != writes:
                live_ids = self._ids[: self._size][~self._deleted[: self._size]]
                self._documents = (writes, int(sum(CHUNK_SEP not in doc_id for doc_id in live_ids)))
            return self._documents[1]

    @property
    def capacity(self) -> int:
        """Elements the index holds before it must grow."""
        return len(self._deleted)

    @property
    def slots_used(self) -> int:
        """Labels handed out, live or tombstoned: the part of the capacity that is taken."""
        return self._size

    def memory(self) -> MemoryFigures:
        """Estimated bytes in memory, by what holds them."""
        with self._gate.read(-1):
            sketch = self._sketch.nbytes() if self._sketch is not None else 0
            if self._graph is not None:
                vectors, graph = self._graph.vector_bytes(), self._graph.graph_bytes()
            else:
                assert self._copy is not None
                vectors, graph = self._copy.nbytes(), 0
            return MemoryFigures(vectors=vectors + self._norms.nbytes + sketch, graph=graph,
                                 payloads=self._payload_bytes(), text=self.text.nbytes())

    def memory_bytes(self) -> int:
        """Estimated bytes the partition holds in all."""
        return self.memory().total

    def _payload_bytes(self) -> int:
        """The payload dicts (deep size of a sample, scaled), the id map and the field indexes; recounted after
        writes only (the scheduler reads figures every few seconds)."""
        if self._payload_figure[0] != self._writes:
            self._payload_figure = (self._writes, self._count_payload_bytes())
        return self._payload_figure[1]

    def _count_payload_bytes(self) -> int:
        labels = list(self._payloads)
        sample = labels[:: max(len(labels) // _PAYLOAD_SAMPLE, 1)][:_PAYLOAD_SAMPLE]
        per_doc = sum(deep_size(self._payloads[label]) for label in sample) / max(len(sample), 1)
        ids = sum(deep_size(doc_id) for doc_id in self._ids[: min(self._size, _PAYLOAD_SAMPLE)])
        per_id = ids / max(min(self._size, _PAYLOAD_SAMPLE), 1) + _DICT_ENTRY_BYTES
        return int(per_doc * len(labels) + per_id * self._size + self._ids.nbytes + self.fields.nbytes())

    def live_documents(self) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
        """A consistent copy of every live document (ids, vectors decoded from the one stored copy, payloads),
        taken while writers wait; a rebuild of a float16 or int8 partition builds its graph from the rounded
        vectors."""
        with self._gate.freeze():
            live = np.flatnonzero(~self._deleted[: self._size])
            ids = self._ids[live].tolist()
            vectors = self.rows(live)
            payloads = [self._payloads.get(label, {}) for label in live.tolist()]
        return ids, vectors, payloads

    # ---- writes --------------------------------------------------------------------------
    def _grow(self, needed: int) -> None:
        new_cap = self.capacity
        while new_cap < needed:
            new_cap *= 2
        if new_cap == self.capacity:
            return
        if self._graph is not None:
            self._graph.resize(new_cap)
        else:
            assert self._copy is not None
            self._copy.grow(new_cap)
        extra = new_cap - self.capacity
        if self._sketch is not None:
            self._sketch.grow(new_cap)
        self._norms = np.concatenate([self._norms, np.ones(extra, np.float32)])
        self._deleted = np.concatenate([self._deleted, np.zeros(extra, bool)])
        self._ids = np.concatenate([self._ids, np.empty(extra, dtype=object)])
        self.fields.grow(new_cap)

    def upsert(self, ids: Sequence[str], vectors: np.ndarray,
               payloads: Sequence[dict[str, Any]] | None = None, num_threads: int = 0) -> int:
        """Insert or replace whole documents (no payload = empty payload); a later duplicate id in the batch wins.

        Large batches go in chunks, each under the gate on its own, so searches run between them;
        every document is whole whenever a search sees it. num_threads 0 = the partition's search threads."""
        if len(ids) == 0:
            return 0
        ids, vectors, payloads = _last_occurrences(ids, vectors, payloads)
        for start in range(0, len(ids), WRITE_CHUNK):
            end = start + WRITE_CHUNK
            with self._gate.write():
                self._upsert_locked(ids[start:end], vectors[start:end],
                                    payloads[start:end] if payloads is not None else None,
                                    num_threads or self._search_threads)
        return len(ids)

    def _upsert_locked(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]] | None,
                       num_threads: int) -> None:
        labels = np.empty(len(ids), dtype=np.int64)
        fresh = 0
        for i, doc_id in enumerate(ids):
            label = self._labels.get(doc_id)
            if label is None:
                label = self._size + fresh
                fresh += 1
            labels[i] = label
        self._grow(self._size + fresh)
        # hnswlib un-marks a deleted label when it is added again; it validates before we commit the maps.
        if self._graph is not None:
            self._graph.add(vectors, labels, num_threads=num_threads)
        for doc_id, label in zip(ids, labels.tolist(), strict=True):
            self._labels[doc_id] = label
        self._ids[labels] = np.asarray(ids, dtype=object)
        self._size += fresh
        self._writes += 1
        self._tombstones -= int(self._deleted[labels].sum())
        if self._copy is not None:
            self._copy.put(labels, vectors)
        self._norms[labels] = np.maximum(np.linalg.norm(vectors, axis=1), 1e-30)
        if self._sketch is not None:
            self._sketch.put(labels, self.rows(labels), self._norms[labels])
        self._deleted[labels] = False
        self._live.update(labels.astype(np.uint32))
        for i, label in enumerate(labels.tolist()):
            self._payloads[label] = payloads[i] if payloads is not None else {}
        self._index_payloads(labels.tolist())

    def _index_payloads(self, labels: list[int]) -> None:
        if self.spec.fields:
            docs = [self._payloads[label] for label in labels]
            self.fields.set(labels, docs)
            self.text.set(labels, docs)

    def delete(self, ids: Sequence[str]) -> int:
        """Tombstone documents; unknown or already-deleted ids are ignored. Returns how many existed."""
        with self._gate.write():
            removed = 0
            gone = []
            for doc_id in ids:
                label = self._labels.get(doc_id)
                if label is None or self._deleted[label]:
                    continue
                if self._graph is not None:
                    self._graph.mark_deleted(label)
                self._deleted[label] = True
                self._live.discard(label)
                # The payload stays until the label is reused or compacted away: a search that found this
                # document just before the delete still reads the payload it was found with.
                gone.append(label)
                removed += 1
            if self.spec.fields and gone:
                self.fields.clear(gone)
                self.text.clear(gone)
            self._tombstones += removed
            self._writes += 1
            return removed

    # ---- reads ---------------------------------------------------------------------------
    def get(self, ids: Sequence[str], with_vectors: bool = False
            ) -> list[tuple[str, np.ndarray | None, dict[str, Any]]]:
        """Stored documents for the ids that exist, in the order asked."""
        out = []
        with self._gate.read(-1):
            for doc_id in ids:
                label = self._labels.get(doc_id)
                if label is None or self._deleted[label]:
                    continue
                vec = self.rows(np.asarray([label]))[0] if with_vectors else None
                out.append((doc_id, vec, dict(self._payloads.get(label, {}))))
        return out

    def payloads_of(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Payloads of search hits: also of a hit deleted since the search found it (kept until compaction; an id
        a compaction has since dropped gets an empty payload)."""
        labels = self._labels
        return [self._payloads.get(labels.get(i, -1), {}) for i in ids]

    @contextmanager
    def searching(self, ef: int) -> Iterator[None]:
        """Hold the gate for reading, with the graph's ef set to `ef`."""
        with self._gate.read(ef) as must_set:
            if must_set and self._graph is not None:
                self._graph.set_ef(ef)
            yield

    @property
    def size(self) -> int:
        """Labels handed out (live and deleted)."""
        return self._size

    @property
    def has_graph(self) -> bool:
        """Whether the partition is searched through an HNSW graph (else by a flat Hamming pass)."""
        return self._graph is not None

    def rows(self, labels: np.ndarray) -> np.ndarray:
        """The stored vectors of labels, decoded to float32 in their own scale (a fresh array); call it while
        `searching`."""
        if self._graph is None:
            assert self._copy is not None
            return self._copy.rows(labels)
        return self._graph.rows(labels)

    def prefix(self) -> np.ndarray:
        """Every stored row [0, size), decoded to float32 (a fresh array); call it while `searching`."""
        if self._graph is None:
            assert self._copy is not None
            return self._copy.prefix(self._size)
        return self._graph.prefix(self._size)

    def sketch(self) -> ScanSketch:
        """The int8 scan sketch of every row, built on first use (writes keep it current); call while
        `searching`."""
        if self._sketch is None:
            with self._sketch_lock:  # readers share the gate: one of them builds it
                if self._sketch is None:
                    sketch = ScanSketch(self.spec.dim, self.capacity, unit=self.spec.metric == "cosine")
                    labels = np.arange(self._size)
                    sketch.put(labels, self.prefix(), self._norms[: self._size])
                    self._sketch = sketch
        return self._sketch

    def knn(self, query: np.ndarray, want: int, oversample: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """About the `want` nearest labels to one query and their distances, best first, by the graph (ef as set by
        `searching`) or by Hamming pass and rescoring; call it while `searching`. RuntimeError when the graph walk
        finds fewer than `want` live nodes, as hnswlib does."""
        if self._graph is not None:
            labels, dists = self._graph.search(query.reshape(1, -1), want, num_threads=1)
            return labels[0], dists[0]
        labels, dists = self._hamming_knn(query.reshape(1, -1), want, oversample)
        return labels[0], dists[0]

    def filtered_knn(self, query: np.ndarray, want: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """hnswlib's filtered walk for one query (`allowed`: a bool mask over labels, checked in C per visited
        node); call it while `searching` a partition that has a graph."""
        assert self._graph is not None
        labels, dists = self._graph.search(query.reshape(1, -1), want, num_threads=1, mask=allowed)
        return labels[0], dists[0]

    def _rescored(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Distances of one query to decoded rows, from the rows themselves: the stored norms are of the vectors
        before rounding, and l2's expanded form would cancel away the precision float16 keeps."""
        if self.spec.metric == "l2":
            diff = rows - query
            return np.einsum("ij,ij->i", diff, diff)
        row_norms = np.maximum(np.sqrt(np.einsum("ij,ij->i", rows, rows)), 1e-30)
        return 1.0 - scores(self.spec.metric, rows, row_norms, query)  # a gemv (faster than a 1-row gemm)

    def _hamming_knn(self, queries: np.ndarray, k: int, oversample: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query: the Hamming pass over every live code keeps max(k * oversample, MIN_RESCORE) candidates,
        which are rescored exactly from the float16 copy; the best k of them, by exact distance."""
        copy = self._copy
        assert isinstance(copy, BinaryCopy)
        live = ~self._deleted[: self._size]
        depth = min(max(k * (oversample or DEFAULT_OVERSAMPLE), MIN_RESCORE), int(live.sum()))
        k = min(k, depth)
        out_l = np.empty((len(queries), k), np.int64)
        out_d = np.empty((len(queries), k), np.float32)
        far = np.int32(self.spec.dim + 1)
        for i, query in enumerate(queries):
            ham = copy.hamming(query, self._size)
            ham[~live] = far
            cand = np.argpartition(ham, depth - 1)[:depth] if depth < len(ham) else np.arange(len(ham))
            cand = cand[live[cand]]
            d = self._rescored(copy.rows(cand), query)
            top = np.argsort(d, kind="stable")[:k]
            out_l[i], out_d[i] = cand[top], d[top]
        return out_l, out_d

    @property
    def norms(self) -> np.ndarray:
        """L2 norms of the raw vectors by label."""
        return self._norms

    def live_mask(self) -> np.ndarray:
        """Bool mask of live labels over [0, size)."""
        return ~self._deleted[: self._size]

    @property
    def version(self) -> int:
        """Bumped by every write: what a cached allowed set or scan is valid for."""
        return self._writes

    def live_bitmap(self) -> BitMap:
        """The live labels; read it only while `searching` (writers change it in place)."""
        return self._live

    def everything(self) -> Allowed:
        """Every live label as an Allowed set, cached per version; call it while `searching`."""
        key = (None, self._writes)
        entry = self.allowed_cache.get(key)
        if entry is None:
            entry = Allowed(labels_array(self._live), self._writes)
            self.allowed_cache.put(key, entry)
        return entry

    def labels_of(self, ids: Sequence[str]) -> np.ndarray:
        """Labels of the live documents among ids."""
        found = [self._labels.get(i) for i in ids]
        labels = np.asarray([x for x in found if x is not None], dtype=np.int64)
        return labels[~self._deleted[labels]] if len(labels) else labels

    def ids_of(self, labels: np.ndarray) -> list[str]:
        """Document ids of labels."""
        return self._ids[labels].tolist()

    def search_matrix(self, queries: np.ndarray, k: int, ef: int | None = None, oversample: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Ids (object array) and distances of every query's local top-k, one row per query, best first.

        Every row has min(k, live) entries. `oversample` is the binary first pass's candidates per hit."""
        ef = max(ef or self.spec.ef_search, k)
        with self._gate.read(ef) as must_set:
            return self._search_held(queries, k, ef, oversample, must_set)

    def _search_held(self, queries: np.ndarray, k: int, ef: int, oversample: int, must_set: bool
                     ) -> tuple[np.ndarray, np.ndarray]:
        k_eff = min(k, self.live)
        if k_eff == 0:
            return np.empty((len(queries), 0), dtype=object), np.empty((len(queries), 0), dtype=np.float32)
        if self._graph is None:
            labels, dists = self._hamming_knn(queries, k_eff, oversample)
            return self._ids[labels], dists
        if must_set:
            self._graph.set_ef(ef)
        try:
            labels, dists = self._graph.search(queries, k_eff, num_threads=self._search_threads)
        except RuntimeError:
            # Tombstones can leave the graph walk short of k live hits: answer exactly instead.
            labels, dists = self._exact(queries, k_eff)
        return self._ids[labels], dists.astype(np.float32, copy=False)

    def search(self, queries: np.ndarray, k: int, ef: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, the ids and distances of its local top-k (best first)."""
        ids, dists = self.search_matrix(queries, k, ef)
        return list(zip(ids, dists, strict=True))

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        live_labels = np.flatnonzero(~self._deleted[: self._size])
        d = exact_distances(self.spec.metric, queries, self.rows(live_labels))
        cols, vals = top_k_rows(d, k)
        return live_labels[cols], vals

    # ---- persistence ---------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the partition's state as files in `directory` (which must exist); searches go on meanwhile."""
        with self._gate.freeze():
            if self._graph is not None:
                self._graph.save(directory / GRAPH_FILE)
            else:
                assert self._copy is not None
                self._copy.save(directory, self._size)
            np.save(directory / "norms.npy", self._norms[: self._size], allow_pickle=False)
            np.save(directory / "deleted.npy", self._deleted[: self._size], allow_pickle=False)
            with open(directory / "ids.json", "w", encoding="utf-8") as f:
                json.dump(self._ids[: self._size].tolist(), f)
            with open(directory / "payloads.jsonl", "w", encoding="utf-8") as f:
                for label, payload in self._payloads.items():
                    if self._deleted[label]:  # kept only for searches in flight; a restart has none
                        continue
                    f.write(json.dumps([label, payload], ensure_ascii=False))
                    f.write("\n")

    @classmethod
    def load(cls, directory: Path, spec: PartitionSpec, search_threads: int = 1,
             allowed_cache_mb: int = DEFAULT_ALLOWED_CACHE_MB) -> Partition:
        """Read a partition written by save()."""
        deleted = np.load(directory / "deleted.npy", allow_pickle=False)
        with open(directory / "ids.json", encoding="utf-8") as f:
            ids = json.load(f)
        size = len(ids)
        capacity = max(1024, 1 << max(size - 1, 1).bit_length())
        graph_file = directory / GRAPH_FILE
        legacy = spec.storage in GRAPH_TYPES and not _graph_holds(spec, graph_file)
        part = cls(spec, capacity=capacity, search_threads=search_threads,
                   index_file=None if legacy else graph_file, allowed_cache_mb=allowed_cache_mb)
        rows = part._copy.load(directory, size) if part._copy is not None else None
        if legacy:
            # Written before the graph held the only copy: its float32 graph is dropped and rebuilt from the
            # stored copy beside it, in the storage type's own encoding.
            rows = vector_copy(spec.storage, spec.dim, capacity, spec.metric).load(directory, size)
            part._graph.add(rows, np.arange(size), num_threads=search_threads)
            for label in np.flatnonzero(deleted).tolist():
                part._graph.mark_deleted(label)
            part.migrated = True
        norms = directory / "norms.npy"
        if norms.exists():
            part._norms[:size] = np.load(norms, allow_pickle=False)
        else:  # snapshots before storage types (float32 only) kept the raw vectors but no norms
            if rows is None:
                rows = np.load(directory / "vectors.npy", allow_pickle=False)
            part._norms[:size] = np.maximum(np.linalg.norm(rows, axis=1), 1e-30)
        part._deleted[:size] = deleted
        part._ids[:size] = ids
        part._labels = {doc_id: label for label, doc_id in enumerate(ids)}
        part._size = size
        part._tombstones = int(deleted.sum())
        part._live = bitmap_of(np.flatnonzero(~deleted))
        with open(directory / "payloads.jsonl", encoding="utf-8") as f:
            for line in f:
                label, payload = json.loads(line)
                part._payloads[int(label)] = payload
        # Field and text indexes are rebuilt from the payloads rather than stored in the snapshot.
        part._index_payloads(sorted(part._payloads))
        return part


def _graph_holds(spec: PartitionSpec, graph_file: Path) -> bool:
    """Whether a saved graph file holds its vectors in the spec's storage type (older snapshots of float16 and
    int8 partitions hold a float32 graph beside a stored copy)."""
    return element_size(graph_file) == layout(spec.storage, spec.metric, spec.dim, spec.m)[1]
