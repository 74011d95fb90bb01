"""Full-text fields of a shard: one SQLite FTS5 table per text field, ranked by FTS5's built-in BM25.

FTS5 ships with Python's sqlite3, updates in place (upserts and deletes need no rebuild), and scores
in C. The rowid of every row is the partition's label, so matches come back as label arrays that
combine with the filter masks directly.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from protos.errors import FailedPrecondition

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
TOKENIZER = "porter unicode61 remove_diacritics 2"  # English stemming over Unicode word splitting
MAX_QUERY_WORDS = 64


def fts_query(text: str) -> str:
    """Free text as an FTS5 query: its words, each quoted, OR-ed (so any word can match)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))[:MAX_QUERY_WORDS]
    return " OR ".join(f'"{w}"' for w in words)


class TextIndex:
    """BM25 indexes of the text fields of one partition; safe to call from any thread."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = list(fields)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            for i, _ in enumerate(self.fields):
                self._db.execute(f"CREATE VIRTUAL TABLE t{i} USING fts5(body, tokenize='{TOKENIZER}')")
        except sqlite3.OperationalError as exc:
            raise FailedPrecondition(f"this Python's SQLite has no FTS5, which text fields need: {exc}") from None

    def _table(self, field: str) -> str:
        return f"t{self.fields.index(field)}"

    def set(self, labels: Sequence[int], payloads: Sequence[dict[str, Any]]) -> None:
        """Index the text fields of labels, replacing what they held."""
        if not self.fields:
            return
        with self._lock, self._db:
            for field in self.fields:
                table = self._table(field)
                self._db.executemany(f"DELETE FROM {table} WHERE rowid = ?", [(int(x),) for x in labels])
                rows = [(int(label), p[field]) for label, p in zip(labels, payloads, strict=True)
                        if isinstance(p.get(field), str)]
                self._db.executemany(f"INSERT INTO {table}(rowid, body) VALUES (?, ?)", rows)

    def clear(self, labels: Sequence[int]) -> None:
        """Forget deleted labels."""
        if not self.fields:
            return
        with self._lock, self._db:
            for field in self.fields:
                self._db.executemany(f"DELETE FROM {self._table(field)} WHERE rowid = ?", [(int(x),) for x in labels])

    def scores(self, field: str, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels that contain any word of `text` in `field`, and their BM25 scores (higher is better)."""
        query = fts_query(text)
        if not query:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        with self._lock:
            rows = self._db.execute(f"SELECT rowid, bm25({self._table(field)}) FROM {self._table(field)} "
                                    f"WHERE {self._table(field)} MATCH ?", (query,)).fetchall()
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        arr = np.asarray(rows, dtype=np.float64)
        # FTS5's bm25() is negated so that ascending order is best first.
        return arr[:, 0].astype(np.int64), -arr[:, 1]

    def matching(self, field: str, text: str, size: int) -> np.ndarray:
        """Mask over labels [0, size) of documents containing any word of `text` in `field`."""
        labels, _ = self.scores(field, text)
        mask = np.zeros(size, dtype=bool)
        mask[labels[labels < size]] = True
        return mask
