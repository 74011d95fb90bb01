"""Full-text fields of a shard: one SQLite FTS5 table per text field, ranked by FTS5's built-in BM25.

FTS5 ships with Python's sqlite3, updates in place (upserts and deletes need no rebuild), and scores
in C. The rowid of every row is the partition's label, so matches come back as label arrays that
combine with the filter sets directly.

Each field has a tokenizer (its type `text:<tokenizer>`): `english` is FTS5's Porter stemmer over
Unicode words. `korean` indexes every run of Hangul (or CJK) characters as its overlapping character
bigrams, and other words whole, because Korean words are agglutinated (`파이썬으로` = `파이썬` + `으로`):
a query word then matches as the phrase of its bigrams, wherever it stands inside a longer word.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from protos.errors import FailedPrecondition
from shard_node.schema import ENGLISH, KOREAN, tokenizer_of

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af\u3040-\u30ff\u4e00-\u9fff"  # Hangul, kana, CJK ideographs
_KOREAN_WORD = re.compile(f"[{_CJK}]+|(?:(?![{_CJK}])[^\\W_])+", re.UNICODE)
FTS5_TOKENIZERS = {ENGLISH: "porter unicode61 remove_diacritics 2",  # English stemming over Unicode words
                   KOREAN: "unicode61 remove_diacritics 2"}          # over the bigrams korean_terms writes
MAX_QUERY_WORDS = 64


_CJK_START = re.compile(f"[{_CJK}]")


def _is_cjk(word: str) -> bool:
    # _KOREAN_WORD splits text into runs that are all CJK or all not, so the first letter tells.
    return _CJK_START.match(word) is not None


def _bigrams(word: str) -> list[str]:
    return [word] if len(word) == 1 else [word[i:i + 2] for i in range(len(word) - 1)]


def korean_terms(text: str) -> str:
    """Text as the korean tokenizer indexes it: Hangul / CJK runs as overlapping bigrams, other words whole."""
    out: list[str] = []
    for word in _KOREAN_WORD.findall(text):
        out.extend(_bigrams(word) if _is_cjk(word) else [word.lower()])
    return " ".join(out)


def fts_query(text: str, tokenizer: str = ENGLISH) -> str:
    """Free text as an FTS5 query: its words, each quoted, OR-ed (so any word can match).

    Under the korean tokenizer a Hangul word is the phrase of its bigrams (a one-letter word, a prefix)."""
    if tokenizer != KOREAN:
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))[:MAX_QUERY_WORDS]
        return " OR ".join(f'"{w}"' for w in words)
    words = list(dict.fromkeys(w.lower() for w in _KOREAN_WORD.findall(text)))[:MAX_QUERY_WORDS]
    terms = []
    for w in words:
        if not _is_cjk(w):
            terms.append(f'"{w}"')
        elif len(w) == 1:
            terms.append(f'"{w}"*')
        else:
            terms.append('"' + " ".join(_bigrams(w)) + '"')
    return " OR ".join(terms)


class TextIndex:
    """BM25 indexes of the text fields of one partition; safe to call from any thread."""

    def __init__(self, fields: Mapping[str, str] | Sequence[str]) -> None:
        """fields: name -> field type (`text`, `text:korean`, ...), or names alone (all english)."""
        types = dict(fields) if isinstance(fields, Mapping) else dict.fromkeys(fields, "text")
        self.fields = list(types)
        self.tokenizers = {name: tokenizer_of(ftype) for name, ftype in types.items()}
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            for i, name in enumerate(self.fields):
                fts5 = FTS5_TOKENIZERS[self.tokenizers[name]]
                self._db.execute(f"CREATE VIRTUAL TABLE t{i} USING fts5(body, tokenize='{fts5}')")
        except sqlite3.OperationalError as exc:
            raise FailedPrecondition(f"this Python's SQLite has no FTS5, which text fields need: {exc}") from None

    def _table(self, field: str) -> str:
        return f"t{self.fields.index(field)}"

    def nbytes(self) -> int:
        """Bytes the in-memory SQLite database takes (pages in use)."""
        if not self.fields:
            return 0
        with self._lock:
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def set(self, labels: Sequence[int], payloads: Sequence[dict[str, Any]]) -> None:
        """Index the text fields of labels, replacing what they held."""
        if not self.fields:
            return
        with self._lock, self._db:
            for field in self.fields:
                table = self._table(field)
                self._db.executemany(f"DELETE FROM {table} WHERE rowid = ?", [(int(x),) for x in labels])
                prepare = korean_terms if self.tokenizers[field] == KOREAN else str
                rows = [(int(label), prepare(p[field])) for label, p in zip(labels, payloads, strict=True)
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
        query = fts_query(text, self.tokenizers[field])
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
