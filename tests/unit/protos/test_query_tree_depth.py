"""query_tree.depth: AND/OR/NOT levels, counted without recursion and cut short past the limit."""

from __future__ import annotations

import pytest

from protos import query_tree as q


@pytest.mark.parametrize(("tree", "expected"), [
    (q.exists("a"), 0),
    (q.not_(q.exists("a")), 1),
    (q.and_(q.exists("a"), q.or_(q.exists("b"), q.not_(q.exists("c")))), 3),
    (q.and_(), 1),
    (q.or_(q.exists("a"), q.and_(q.and_(q.and_(q.exists("b"))))), 4),
])
def test_depth(tree: q.Node, expected: int) -> None:
    assert q.depth(tree, 100) == expected


def test_depth_stops_past_the_limit() -> None:
    """The walk ends at the first level past the limit, whatever lies below it."""
    tree = q.exists("a")
    for _ in range(90):
        tree = q.not_(tree)
    assert q.depth(tree, 100) == 90
    assert q.depth(tree, 10) == 11
