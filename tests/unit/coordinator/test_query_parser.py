"""The query string parser: the grammar's forms, and syntax errors that name the position."""

from __future__ import annotations

import pytest

from coordinator.query_parser import QuerySyntaxError, parse_query
from protos.query_tree import depth, render


@pytest.mark.parametrize(("text", "expected"), [
    ("section:python", 'section:"python"'),
    ("section:python AND size<5000", '(section:"python" AND size<"5000")'),
    ("a:1 OR b:2 AND c:3", '(a:"1" OR (b:"2" AND c:"3"))'),
    ("NOT (a:1 OR b:2)", '(NOT (a:"1" OR b:"2"))'.removeprefix("(").removesuffix(")")),
    ("tags:role::program", 'tags:"role::program"'),
    ('section:"two words"', 'section:"two words"'),
    ("section:[games, python]", 'section:["games", "python"]'),
    ("tags:*", "tags:*"),
    ("d>=2024-01-01T00:00:00Z", 'd>="2024-01-01T00:00:00Z"'),
    ("near:[1, -2.5, 3e-1]", "near:[1, -2.5, 0.3]"),
    ("NOT near:[1, 2]@0.8", "NOT near:[1, 2]@0.8"),
    ("NOT near:[1, 2]@top:50", "NOT near:[1, 2]@top:50"),
    ('near:"a dog"', 'near:"a dog"'),
    ('match:"http client"', ':"http client"'),
    ("  x:1   AND\ty:2 ", '(x:"1" AND y:"2")'),
])
def test_parses_to_the_tree(text: str, expected: str) -> None:
    assert render(parse_query(text)) == expected


@pytest.mark.parametrize(("text", "position"), [
    ("section:python AND", 18),
    ("section:", 8),
    ("NOT (x:1", 8),
    ("x=1", 1),
    ("near:[1,2", 9),
    ("near:[1,a]", 8),
    ("x:1 y:2", 4),
    ("AND x:1", 0),
    ('x:"open', 2),
    ("near:[1]@top:0", 13),
    ("near:[1]@", 9),
    ("(x:1))", 5),
])
def test_syntax_errors_name_the_position(text: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as err:
        parse_query(text)
    assert f"position {position}:" in str(err.value)
    assert err.value.code.name == "INVALID_ARGUMENT"


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_query_is_refused(text: str) -> None:
    with pytest.raises(QuerySyntaxError, match="empty"):
        parse_query(text)


@pytest.mark.parametrize("text", ["NOT " * 33 + "a:1", "(" * 33 + "a:1" + ")" * 33, "NOT (" * 17 + "a:1" + ")" * 17,
                                  "(" * 100_000 + "a:1", "NOT " * 100_000 + "a:1"])
def test_nesting_past_the_limit_is_refused_before_it_recurses(text: str) -> None:
    """Deep NOT/parentheses answer INVALID_ARGUMENT naming max_query_depth, never RecursionError."""
    with pytest.raises(QuerySyntaxError, match="max_query_depth"):
        parse_query(text, max_depth=32)


def test_nesting_at_the_limit_parses() -> None:
    """32 levels of NOT and parentheses are allowed; the limit is the caller's."""
    tree = parse_query("NOT (" * 16 + "a:1" + ")" * 16, max_depth=32)
    assert depth(tree, 100) == 16
    with pytest.raises(QuerySyntaxError, match="deeper than 3 levels"):
        parse_query("NOT NOT NOT NOT a:1", max_depth=3)
