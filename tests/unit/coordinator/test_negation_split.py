"""Which rank-form NOTs run in one round: top-level conjuncts only, and only when no other rank set is left."""

from __future__ import annotations

from coordinator.negation import split_rank_nots
from protos import query_tree as q


def test_top_level_rank_nots_leave_the_filter() -> None:
    tree = q.and_(q.eq("tag", "a"), q.not_(q.near([1.0, 0.0], top=5)), q.not_(q.near([0.0, 1.0], top=3)))
    rest, nears = split_rank_nots(tree)
    assert rest == q.eq("tag", "a")
    assert [(list(n.vector), n.top) for n in nears] == [([1.0, 0.0], 5), ([0.0, 1.0], 3)]


def test_a_lone_rank_not_leaves_no_filter() -> None:
    rest, nears = split_rank_nots(q.not_(q.near([1.0], top=2)))
    assert rest is None and len(nears) == 1


def test_nested_or_threshold_forms_stay_in_the_filter() -> None:
    under_or = q.and_(q.eq("tag", "a"), q.or_(q.not_(q.near([1.0], top=2)), q.eq("tag", "b")))
    assert split_rank_nots(under_or) == (under_or, [])
    threshold = q.and_(q.eq("tag", "a"), q.not_(q.near([1.0], min_similarity=0.5)))
    assert split_rank_nots(threshold) == (threshold, [])
    mixed = q.and_(q.not_(q.near([1.0], top=2)), q.or_(q.not_(q.near([0.5], top=2)), q.eq("tag", "b")))
    assert split_rank_nots(mixed) == (mixed, [])  # another rank set remains: all of it takes two rounds
