"""Per-query calibration of a document's further entries against first entries, before grouping by best entry.

A document of a collection with embed_fields has its text as its first entry and, say, a Korean translation as
a further one. A query in one language scores every text in that language higher than any text in another,
whatever it says: on the Debian demo a Korean query meets a Korean description ~0.03 higher than the same
package's English one, so the 4,423 packages with a Korean entry fill the top 10 and the 59k English-only ones
never compete. So each query's further entries are shifted down by how far the mean of their top scores lies
above the mean of the first entries' top scores (never up: when the further entries are the other language,
the first entries are already the like-for-like comparison, and promoting translations would only add noise).

Kinds are told apart by entry id: a document's first entry (its text, or the text's first chunk) and its
further entries (the embedded fields' texts, and the text's later chunks if it was chunked), so it applies to
collections with embed_fields only (engine.calibrates). Measured in BENCHMARKS.md (bench.retrieval, whole corpus,
en+ko): English known-item MRR@10 0.567 -> 0.575, short Korean recall@10 0.815 -> 0.804; the demo's Korean
`파이썬 HTTP 클라이언트 라이브러리` gets `python3-httplib2`, which has no Korean description, into its top 10.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coordinator.grouping import Hit, doc_of

CALIBRATION_DEPTH = 100     # top scores of each kind whose means are compared
CALIBRATION_MIN = 10        # fewer entries of a kind than this among the candidates: no shift (too noisy)
CALIBRATION_FETCH = 800     # entries a calibrated search reads: enough that a Korean query sees English entries too


def is_first_entry(entry_id: str) -> bool:
    """Whether an entry is its document's first (its own text, or its first chunk)."""
    return doc_of(entry_id) == entry_id


def further_shift(scores: np.ndarray, first: np.ndarray) -> float:
    """How far the further entries' top scores lie above the first entries' (0 if below or too few)."""
    a, b = scores[first][:CALIBRATION_DEPTH], scores[~first][:CALIBRATION_DEPTH]
    if len(a) < CALIBRATION_MIN or len(b) < CALIBRATION_MIN:
        return 0.0
    return max(float(b.mean() - a.mean()), 0.0)


def calibrate(hits: Sequence[Hit]) -> list[Hit]:
    """Entry hits (similarity scores, best first) with further entries shifted by further_shift, best first."""
    if not hits:
        return []
    scores = np.fromiter((h.score for h in hits), dtype=np.float64, count=len(hits))
    first = np.fromiter((is_first_entry(h.id) for h in hits), dtype=bool, count=len(hits))
    shift = further_shift(scores, first)
    if shift == 0.0:
        return list(hits)
    adjusted = np.where(first, scores, scores - shift)
    order = np.argsort(-adjusted, kind="stable")
    return [Hit(hits[i].id, float(adjusted[i]), hits[i].distance + (0.0 if first[i] else shift), hits[i].payload)
            for i in order.tolist()]
