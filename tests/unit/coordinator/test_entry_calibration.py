"""Calibration of further entries against first entries, against a numpy oracle."""

from __future__ import annotations

import numpy as np

from coordinator.entry_calibration import CALIBRATION_DEPTH, CALIBRATION_MIN, calibrate, further_shift, is_first_entry
from coordinator.grouping import Hit, chunk_id, group_hits


def _hits(rng: np.random.Generator, n_docs: int, further_bonus: float) -> list[Hit]:
    """Every document's first and further entry (the further scored with a bonus), best first."""
    hits = []
    for d in range(n_docs):
        hits.append(Hit(f"d{d}", float(rng.uniform(0.7, 0.9)), 0.0, None))
        hits.append(Hit(chunk_id(f"d{d}", 1), float(rng.uniform(0.7, 0.9)) + further_bonus, 0.0, None))
    for h in hits:
        h.distance = 1.0 - h.score
    return sorted(hits, key=lambda h: -h.score)


def oracle(hits: list[Hit]) -> tuple[float, list[str]]:
    """The shift and the grouped ranking, computed directly from the definition."""
    s = np.array([h.score for h in hits])
    first = np.array(["\x1f" not in h.id for h in hits])
    top_first, top_further = np.sort(s[first])[::-1][:CALIBRATION_DEPTH], np.sort(s[~first])[::-1][:CALIBRATION_DEPTH]
    shift = max(top_further.mean() - top_first.mean(), 0.0)
    best: dict[str, float] = {}
    for h, sc, f in zip(hits, s, first, strict=True):
        doc = h.id.split("\x1f")[0]
        best[doc] = max(best.get(doc, -np.inf), sc if f else sc - shift)
    return shift, sorted(best, key=lambda d: (-best[d], d))


def test_is_first_entry() -> None:
    assert is_first_entry("doc") and not is_first_entry(chunk_id("doc", 1))


def test_further_entries_lose_their_bonus_and_documents_regroup() -> None:
    hits = _hits(np.random.default_rng(0), 400, further_bonus=0.05)
    shift, ranking = oracle(hits)
    assert 0.04 < shift < 0.06
    out = calibrate(hits)
    first = np.array([is_first_entry(h.id) for h in hits])
    assert abs(further_shift(np.array([h.score for h in hits]), first) - shift) < 1e-12
    assert [h.score for h in out] == sorted((h.score for h in out), reverse=True)
    assert [h.id for h in group_hits(out, 20)] == ranking[:20]
    moved = {h.id: h for h in out}
    for h in hits:  # distances move with the scores: further entries only, by the shift
        assert abs(moved[h.id].distance - (h.distance + (0.0 if is_first_entry(h.id) else shift))) < 1e-9


def test_never_promotes_further_entries() -> None:
    hits = _hits(np.random.default_rng(1), 400, further_bonus=-0.05)
    assert calibrate(hits) == hits


def test_too_few_of_a_kind_is_left_alone() -> None:
    hits = _hits(np.random.default_rng(2), CALIBRATION_MIN - 1, further_bonus=0.05)  # too few of each kind
    assert calibrate(hits) == hits
    assert calibrate([]) == []
