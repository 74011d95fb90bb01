"""A shard's payload field indexes: dictionary-coded columns, tag postings, sorted numeric columns.

Every index is addressed by the partition's labels, and every predicate answers a numpy bool mask
over labels [0, size), so AND / OR / NOT are vectorised mask operations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from shard_node.schema import BOOL, CODED_TYPES, NUMERIC_TYPES, TAGS, TEXT, FieldTypeError, values_of

_MISSING = -1


def _grown(arr: np.ndarray, capacity: int, fill: Any) -> np.ndarray:
    if len(arr) >= capacity:
        return arr
    out = np.full(capacity, fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class CodedColumn:
    """keyword / bool: one code per label (-1 = missing) and how many labels hold each value."""

    def __init__(self, capacity: int) -> None:
        self.codes = np.full(capacity, _MISSING, dtype=np.int32)
        self.vocab: dict[Any, int] = {}
        self.counts: Counter[int] = Counter()

    def grow(self, capacity: int) -> None:
        self.codes = _grown(self.codes, capacity, _MISSING)

    def set(self, label: int, values: list[Any]) -> None:
        self.clear(label)
        if values:
            code = self.vocab.setdefault(values[0], len(self.vocab))
            self.codes[label] = code
            self.counts[code] += 1

    def clear(self, label: int) -> None:
        old = int(self.codes[label])
        if old != _MISSING:
            self.counts[old] -= 1
            self.codes[label] = _MISSING

    def _code_list(self, values: Sequence[Any]) -> list[int]:
        return [self.vocab[v] for v in values if v in self.vocab]

    def isin(self, values: Sequence[Any], size: int) -> np.ndarray:
        codes = self._code_list(values)
        col = self.codes[:size]
        if len(codes) == 1:
            return col == codes[0]
        return np.isin(col, codes) if codes else np.zeros(size, dtype=bool)

    def estimate_in(self, values: Sequence[Any]) -> int:
        return sum(self.counts[c] for c in self._code_list(values))

    def exists(self, size: int) -> np.ndarray:
        return self.codes[:size] != _MISSING

    def estimate_exists(self) -> int:
        return sum(self.counts.values())


class TagPostings:
    """tags: an inverted index, tag -> set of labels, with each posting list cached as an array."""

    def __init__(self, capacity: int) -> None:
        self.postings: dict[str, set[int]] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._of_label: dict[int, list[str]] = {}

    def grow(self, capacity: int) -> None:
        pass

    def set(self, label: int, values: list[Any]) -> None:
        self.clear(label)
        if values:
            self._of_label[label] = list(dict.fromkeys(values))
            for tag in self._of_label[label]:
                self.postings.setdefault(tag, set()).add(label)
                self._arrays.pop(tag, None)

    def clear(self, label: int) -> None:
        for tag in self._of_label.pop(label, []):
            self.postings[tag].discard(label)
            self._arrays.pop(tag, None)

    def _array(self, tag: str) -> np.ndarray:
        arr = self._arrays.get(tag)
        if arr is None:
            labels = self.postings.get(tag, set())
            arr = self._arrays[tag] = np.fromiter(labels, dtype=np.int64, count=len(labels))
        return arr

    def isin(self, values: Sequence[Any], size: int) -> np.ndarray:
        mask = np.zeros(size, dtype=bool)
        for tag in values:
            arr = self._array(tag)
            mask[arr[arr < size]] = True
        return mask

    def estimate_in(self, values: Sequence[Any]) -> int:
        return sum(len(self.postings.get(t, ())) for t in values)

    def exists(self, size: int) -> np.ndarray:
        mask = np.zeros(size, dtype=bool)
        labels = np.fromiter(self._of_label, dtype=np.int64, count=len(self._of_label))
        mask[labels[labels < size]] = True
        return mask

    def estimate_exists(self) -> int:
        return len(self._of_label)


class NumericColumn:
    """int / float / datetime: a float64 column (NaN = missing) and a sorted index rebuilt after writes."""

    def __init__(self, capacity: int) -> None:
        self.values = np.full(capacity, np.nan, dtype=np.float64)
        self._order: np.ndarray | None = None
        self._sorted: np.ndarray | None = None
        self._present = 0

    def grow(self, capacity: int) -> None:
        self.values = _grown(self.values, capacity, np.nan)

    def set(self, label: int, values: list[Any]) -> None:
        self.clear(label)
        if values:
            self.values[label] = values[0]
            self._present += 1
            self._order = None

    def clear(self, label: int) -> None:
        if not np.isnan(self.values[label]):
            self.values[label] = np.nan
            self._present -= 1
            self._order = None

    def _sorted_index(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self._order is None:
            col = self.values[:size]
            present = np.flatnonzero(~np.isnan(col))
            order = present[np.argsort(col[present], kind="stable")]
            self._order, self._sorted = order, col[order]
        return self._order, self._sorted  # type: ignore[return-value]

    def _bounds(self, size: int, lo: float | None, lo_incl: bool, hi: float | None, hi_incl: bool
                ) -> tuple[np.ndarray, int, int]:
        order, vals = self._sorted_index(size)
        start = 0 if lo is None else int(np.searchsorted(vals, lo, side="left" if lo_incl else "right"))
        end = len(vals) if hi is None else int(np.searchsorted(vals, hi, side="right" if hi_incl else "left"))
        return order, start, max(start, end)

    def range(self, size: int, lo: float | None, lo_incl: bool, hi: float | None, hi_incl: bool) -> np.ndarray:
        order, start, end = self._bounds(size, lo, lo_incl, hi, hi_incl)
        mask = np.zeros(size, dtype=bool)
        mask[order[start:end]] = True
        return mask

    def estimate_range(self, size: int, lo: float | None, lo_incl: bool, hi: float | None, hi_incl: bool) -> int:
        _, start, end = self._bounds(size, lo, lo_incl, hi, hi_incl)
        return end - start

    def isin(self, values: Sequence[Any], size: int) -> np.ndarray:
        return np.isin(self.values[:size], np.asarray(values, dtype=np.float64))

    def estimate_in(self, values: Sequence[Any]) -> int:
        return int(np.isin(self.values, np.asarray(values, dtype=np.float64)).sum())

    def exists(self, size: int) -> np.ndarray:
        return ~np.isnan(self.values[:size])

    def estimate_exists(self) -> int:
        return self._present


class PresenceColumn:
    """text: only whether a label has the field (the words themselves live in the BM25 index)."""

    def __init__(self, capacity: int) -> None:
        self.present = np.zeros(capacity, dtype=bool)

    def grow(self, capacity: int) -> None:
        self.present = _grown(self.present, capacity, False)

    def set(self, label: int, values: list[Any]) -> None:
        self.present[label] = bool(values)

    def clear(self, label: int) -> None:
        self.present[label] = False

    def exists(self, size: int) -> np.ndarray:
        return self.present[:size].copy()

    def estimate_exists(self) -> int:
        return int(self.present.sum())


def _column(ftype: str, capacity: int) -> Any:
    if ftype in CODED_TYPES:
        return CodedColumn(capacity)
    if ftype == TAGS:
        return TagPostings(capacity)
    if ftype in NUMERIC_TYPES:
        return NumericColumn(capacity)
    if ftype == TEXT:
        return PresenceColumn(capacity)
    raise FieldTypeError(f"unknown field type {ftype!r}")


class FieldIndexes:
    """Every indexed field of one partition. Not thread-safe: the partition's gate guards it."""

    def __init__(self, schema: dict[str, str], capacity: int) -> None:
        self.schema = dict(schema)
        self.columns = {name: _column(ftype, capacity) for name, ftype in self.schema.items()}

    def grow(self, capacity: int) -> None:
        """Make room for labels below `capacity`."""
        for col in self.columns.values():
            col.grow(capacity)

    def set(self, labels: Sequence[int], payloads: Sequence[dict[str, Any]]) -> None:
        """Index the payloads of labels (replacing what they held); values that do not fit a field are skipped."""
        for name, ftype in self.schema.items():
            col = self.columns[name]
            for label, payload in zip(labels, payloads, strict=True):
                try:
                    values = values_of(ftype, payload.get(name))
                except FieldTypeError:
                    values = []  # the coordinator refuses these; older or direct writes are indexed as missing
                col.set(int(label), values)

    def clear(self, labels: Sequence[int]) -> None:
        """Forget the values of deleted labels."""
        for col in self.columns.values():
            for label in labels:
                col.clear(int(label))

    def column(self, name: str) -> Any:
        """The index of one field."""
        return self.columns[name]

    def type_of(self, name: str) -> str:
        """A field's type."""
        return self.schema[name]

    def is_bool(self, name: str) -> bool:
        """Whether a field is boolean."""
        return self.schema.get(name) == BOOL
