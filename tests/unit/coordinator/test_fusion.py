"""Reciprocal rank fusion."""

from __future__ import annotations

import pytest

from coordinator.fusion import RRF_K, rrf


def test_documents_in_both_lists_come_first() -> None:
    fused = rrf([["a", "b", "c"], ["c", "d", "a"]], [1.0, 1.0], 4)
    assert [i for i, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 3))


def test_weights_shift_the_order() -> None:
    assert rrf([["a"], ["b"]], [1.0, 2.0], 2)[0][0] == "b"
    assert rrf([["a"], ["b"]], [2.0, 1.0], 2)[0][0] == "a"


def test_k_cuts_and_ties_break_by_id() -> None:
    assert rrf([["b", "x"], ["a", "y"]], [1.0, 1.0], 2) == [("a", 1 / (RRF_K + 1)), ("b", 1 / (RRF_K + 1))]
