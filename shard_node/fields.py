"""A shard's payload field indexes: per-value posting lists (roaring bitmaps) and sorted numeric columns.

Every index is addressed by the partition's labels and every predicate answers a new roaring bitmap of
the labels that hold it, so AND / OR / NOT are set operations on compressed postings and a set's exact
size is known without a pass over the whole partition. Postings hold live labels only: a delete clears
the label from every index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pyroaring import BitMap

from shard_node.schema import CODED_TYPES, NUMERIC_TYPES, TAGS, FieldTypeError, base_type, values_of


def labels_array(bitmap: BitMap) -> np.ndarray:
    """A bitmap's labels as a sorted int64 array."""
    return np.frombuffer(bitmap.to_array(), dtype=np.uint32).astype(np.int64)


def bitmap_of(labels: np.ndarray) -> BitMap:
    """A bitmap of int labels (any order)."""
    return BitMap(np.asarray(labels, dtype=np.uint32))


_VALUE_ENTRY_BYTES = 100  # one value's dict entry and empty bitmap, about


def _grown(arr: np.ndarray, capacity: int, fill: Any) -> np.ndarray:
    if len(arr) >= capacity:
        return arr
    out = np.full(capacity, fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class Postings:
    """keyword / bool / tags: value -> bitmap of the labels holding it, and every label's values."""

    def __init__(self, capacity: int) -> None:
        self.postings: dict[Any, BitMap] = {}
        self._of_label: dict[int, list[Any]] = {}
        self._present = BitMap()

    def grow(self, capacity: int) -> None:
        pass

    def set(self, label: int, values: list[Any]) -> None:
        self.clear(label)
        if values:
            held = self._of_label[label] = list(dict.fromkeys(values))
            for value in held:
                self.postings.setdefault(value, BitMap()).add(label)
            self._present.add(label)

    def clear(self, label: int) -> None:
        for value in self._of_label.pop(label, []):
            self.postings[value].discard(label)
        self._present.discard(label)

    def isin(self, values: Sequence[Any]) -> BitMap:
        found = [self.postings[v] for v in dict.fromkeys(values) if v in self.postings]
        if not found:
            return BitMap()
        return found[0].copy() if len(found) == 1 else BitMap.union(*found)

    def exists(self) -> BitMap:
        return self._present.copy()


class NumericColumn:
    """int / float / datetime: a float64 column (NaN = missing) and a sorted index rebuilt after writes."""

    def __init__(self, capacity: int) -> None:
        self.values = np.full(capacity, np.nan, dtype=np.float64)
        self._order: np.ndarray | None = None
        self._sorted: np.ndarray | None = None
        self._present = BitMap()

    def grow(self, capacity: int) -> None:
        self.values = _grown(self.values, capacity, np.nan)

    def set(self, label: int, values: list[Any]) -> None:
        self.clear(label)
        if values:
            self.values[label] = values[0]
            self._present.add(label)
            self._order = None

    def clear(self, label: int) -> None:
        if label in self._present:
            self.values[label] = np.nan
            self._present.discard(label)
            self._order = None

    def _sorted_index(self) -> tuple[np.ndarray, np.ndarray]:
        if self._order is None:
            present = labels_array(self._present)
            order = present[np.argsort(self.values[present], kind="stable")]
            self._order, self._sorted = order, self.values[order]
        return self._order, self._sorted  # type: ignore[return-value]

    def range(self, lo: float | None, lo_incl: bool, hi: float | None, hi_incl: bool) -> BitMap:
        """Labels whose value lies in the range: two binary searches on the sorted column."""
        order, vals = self._sorted_index()
        start = 0 if lo is None else int(np.searchsorted(vals, lo, side="left" if lo_incl else "right"))
        end = len(vals) if hi is None else int(np.searchsorted(vals, hi, side="right" if hi_incl else "left"))
        return bitmap_of(order[start:max(start, end)])

    def isin(self, values: Sequence[Any]) -> BitMap:
        out = BitMap()
        for v in dict.fromkeys(values):
            out |= self.range(float(v), True, float(v), True)
        return out

    def exists(self) -> BitMap:
        return self._present.copy()


class PresenceColumn:
    """text: only whether a label has the field (the words themselves live in the BM25 index)."""

    def __init__(self, capacity: int) -> None:
        self._present = BitMap()

    def grow(self, capacity: int) -> None:
        pass

    def set(self, label: int, values: list[Any]) -> None:
        if values:
            self._present.add(label)
        else:
            self._present.discard(label)

    def clear(self, label: int) -> None:
        self._present.discard(label)

    def exists(self) -> BitMap:
        return self._present.copy()


def _column(ftype: str, capacity: int) -> Any:
    kind = base_type(ftype)
    if kind in CODED_TYPES or kind == TAGS:
        return Postings(capacity)
    if kind in NUMERIC_TYPES:
        return NumericColumn(capacity)
    return PresenceColumn(capacity)


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

    def nbytes(self) -> int:
        """Bytes of the numeric columns and the postings, about (4 bytes per posted label, a dict entry per value)."""
        total = 0
        for col in self.columns.values():
            if isinstance(col, NumericColumn):
                total += col.values.nbytes
            elif isinstance(col, Postings):
                total += sum(len(b) for b in col.postings.values()) * 4 + len(col.postings) * _VALUE_ENTRY_BYTES
        return total

    def clear(self, labels: Sequence[int]) -> None:
        """Forget the values of deleted labels."""
        for col in self.columns.values():
            for label in labels:
                col.clear(int(label))

    def column(self, name: str) -> Any:
        """The index of one field."""
        return self.columns[name]

    def type_of(self, name: str) -> str:
        """A field's base type (a text field's tokenizer is the text index's business)."""
        return base_type(self.schema[name])
