"""A partition's HNSW graph (hnswlib, through shard_node/native/hnsw_graph.cpp) holding the only copy of its
vectors in the collection's storage type: float32, float16, or int8 with one scale per vector.

Every type keeps each vector in its own scale (float32 cosine adds its inverse norm, for hnswlib's inner-product
kernel); every call takes and returns float32 numpy arrays. Calls run in C without the GIL (ctypes releases it),
so searches on several threads overlap.
"""

from __future__ import annotations

import ctypes
import functools
import struct
from pathlib import Path

import numpy as np

from shard_node.native_build import LIBRARY

KINDS = {"float32": 0, "float16": 1, "int8": 2}
METRICS = {"ip": 0, "l2": 1, "cosine": 2}
_HEADER = struct.Struct("<QQQQ")  # hnswlib's file: offsetLevel0, max_elements, count, bytes per element
_I64P = np.ctypeslib.ndpointer(dtype=np.int64, flags="C_CONTIGUOUS")
_F32P = np.ctypeslib.ndpointer(dtype=np.float32, flags="C_CONTIGUOUS")
_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    """The compiled library, loaded once per process with its signatures declared."""
    global _lib
    if _lib is None:
        if not LIBRARY.exists():
            raise RuntimeError(f"{LIBRARY} is missing: run `make install` (or python -m shard_node.native_build)")
        lib = ctypes.CDLL(str(LIBRARY))
        size, vp, cp = ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p
        sigs = {
            "graph_error": (cp, []),
            "graph_new": (vp, [ctypes.c_int, ctypes.c_int, size, size, size, size, size]),
            "graph_load": (vp, [ctypes.c_int, ctypes.c_int, size, cp, size]),
            "graph_free": (None, [vp]),
            "graph_code_size": (size, [vp]),
            "graph_element_size": (size, [vp]),
            "graph_layout": (ctypes.c_int, [ctypes.c_int, ctypes.c_int, size, size, ctypes.POINTER(size),
                                            ctypes.POINTER(size)]),
            "graph_upper_bytes": (size, [vp]),
            "graph_save": (ctypes.c_int, [vp, cp]),
            "graph_resize": (ctypes.c_int, [vp, size]),
            "graph_set_ef": (None, [vp, size]),
            "graph_add": (ctypes.c_int, [vp, _F32P, _I64P, size, ctypes.c_int]),
            "graph_mark_deleted": (ctypes.c_int, [vp, ctypes.c_int64]),
            "graph_rows": (ctypes.c_int, [vp, _I64P, size, _F32P]),
            "graph_prefix": (ctypes.c_int, [vp, size, _F32P]),
            "graph_search": (ctypes.c_int, [vp, _F32P, size, size, ctypes.c_int, vp, size, _I64P, _F32P]),
        }
        for name, (restype, argtypes) in sigs.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        _lib = lib
    return _lib


def _check(rc: int) -> None:
    if rc != 0:
        raise RuntimeError(_library().graph_error().decode("utf-8", "replace"))


def _header(path: Path) -> tuple[int, int, int, int]:
    with open(path, "rb") as f:
        return _HEADER.unpack(f.read(_HEADER.size))


def element_size(path: Path) -> int:
    """Bytes per element recorded in a saved graph's header (tells a float32 graph from a float16 one)."""
    return _header(path)[3]


def saved_vector_bytes(path: Path, kind: str, metric: str, dim: int) -> int:
    """Bytes of a saved graph file that are its elements' vectors (the rest is links and labels)."""
    return _header(path)[2] * code_size(kind, metric, dim)


@functools.lru_cache(maxsize=64)
def layout(kind: str, metric: str, dim: int, m: int = 16) -> tuple[int, int]:
    """(bytes of one vector's code, bytes of one level-0 element) in a graph of this storage type, as the
    library lays them out (int8: codes and a float32 scale; float32 cosine: the vector and its inverse norm);
    asked once per combination (the library builds a one-slot graph to answer)."""
    code, element = ctypes.c_size_t(), ctypes.c_size_t()
    _check(_library().graph_layout(KINDS[kind], METRICS[metric], dim, m, ctypes.byref(code), ctypes.byref(element)))
    return code.value, element.value


def code_size(kind: str, metric: str, dim: int) -> int:
    """Bytes one vector takes in a graph of this storage type."""
    return layout(kind, metric, dim)[0]


class Graph:
    """hnswlib's HierarchicalNSW over vectors stored as `kind`; not thread-safe for writes (the partition's gate
    is), searches may run concurrently."""

    def __init__(self, kind: str, metric: str, dim: int, capacity: int, m: int = 16, ef_construction: int = 200,
                 seed: int = 100, path: Path | None = None) -> None:
        lib = _library()
        self.kind, self.metric, self.dim = kind, metric, dim
        if path is None:
            handle = lib.graph_new(KINDS[kind], METRICS[metric], dim, capacity, m, ef_construction, seed)
        else:
            handle = lib.graph_load(KINDS[kind], METRICS[metric], dim, str(path).encode(), capacity)
        if not handle:
            raise RuntimeError(lib.graph_error().decode("utf-8", "replace"))
        self._handle = ctypes.c_void_p(handle)
        self._capacity = capacity
        self.code_size = int(lib.graph_code_size(self._handle))

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and _lib is not None:
            _lib.graph_free(handle)
            self._handle = None

    def _prepared(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)

    def add(self, vectors: np.ndarray, labels: np.ndarray, num_threads: int = 1) -> None:
        """Insert (or replace) vectors at labels; a deleted label added again is live again."""
        v = self._prepared(vectors)
        lab = np.ascontiguousarray(labels, dtype=np.int64)
        _check(_library().graph_add(self._handle, v, lab, len(lab), num_threads))

    def mark_deleted(self, label: int) -> None:
        """Tombstone a label: walks pass through it, results skip it."""
        _check(_library().graph_mark_deleted(self._handle, label))

    def resize(self, capacity: int) -> None:
        """Make room for `capacity` elements."""
        _check(_library().graph_resize(self._handle, capacity))
        self._capacity = capacity

    def set_ef(self, ef: int) -> None:
        """The search beam for the following searches."""
        _library().graph_set_ef(self._handle, ef)

    def search(self, queries: np.ndarray, k: int, num_threads: int = 1, mask: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Labels and distances (hnswlib's: 1 - cosine/dot, squared l2) of each query's top k, best first; only
        labels whose `mask` entry is true when one is given. RuntimeError when a walk finds fewer than k."""
        q = self._prepared(queries)
        labels = np.empty((len(q), k), np.int64)
        dists = np.empty((len(q), k), np.float32)
        mask_ptr, mask_len = None, 0
        if mask is not None:
            mask = np.ascontiguousarray(mask, dtype=np.bool_)
            mask_ptr, mask_len = mask.ctypes.data, len(mask)
        _check(_library().graph_search(self._handle, q, len(q), k, num_threads, mask_ptr, mask_len, labels, dists))
        return labels, dists

    def rows(self, labels: np.ndarray) -> np.ndarray:
        """Decoded float32 rows of labels, a fresh array."""
        lab = np.ascontiguousarray(labels, dtype=np.int64)
        out = np.empty((len(lab), self.dim), np.float32)
        _check(_library().graph_rows(self._handle, lab, len(lab), out))
        return out

    def prefix(self, size: int) -> np.ndarray:
        """Decoded rows of labels [0, size), a fresh array."""
        out = np.zeros((size, self.dim), np.float32)
        _check(_library().graph_prefix(self._handle, size, out))
        return out

    def save(self, path: Path) -> None:
        """Write the graph, vectors included, to one file."""
        _check(_library().graph_save(self._handle, str(path).encode()))

    def vector_bytes(self) -> int:
        """Bytes of the vectors' codes in the graph's allocation (all capacity slots)."""
        return self._capacity * self.code_size

    def graph_bytes(self) -> int:
        """Bytes of the rest: level-0 links and labels for every slot, upper-level links of the elements."""
        lib = _library()
        level0 = self._capacity * (int(lib.graph_element_size(self._handle)) - self.code_size)
        return level0 + int(lib.graph_upper_bytes(self._handle)) + self._capacity * 8  # + link-list pointers
