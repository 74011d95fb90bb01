"""Field schemas: text tokenizers are named in the type, and bad or changed ones are refused clearly."""

from __future__ import annotations

import pytest

from shard_node.schema import base_type, check_schema, check_schema_change, is_text, tokenizer_of


def test_text_types_name_their_tokenizer() -> None:
    assert check_schema({"en": "text", "en2": "text:english", "ko": "text:korean"}) is None
    assert [tokenizer_of(t) for t in ("text", "text:english", "text:korean")] == ["english", "english", "korean"]
    assert base_type("text:korean") == "text" and is_text("text:korean") and not is_text("keyword")


@pytest.mark.parametrize(("fields", "words"), [
    ({"body": "text:klingon"}, ["'body'", "'klingon'", "text:english", "text:korean"]),
    ({"body": "text:"}, ["'body'", "text:english, text:korean"]),
    ({"kind": "keyword:korean"}, ["'kind'", "only text fields take a tokenizer"]),
])
def test_unknown_tokenizers_are_refused_naming_field_and_choices(fields, words) -> None:
    problem = check_schema(fields)
    assert problem is not None
    for word in words:
        assert word in problem


def test_a_tokenizer_change_on_an_existing_field_is_refused() -> None:
    old = {"body": "text", "kind": "keyword"}
    problem = check_schema_change(old, {"body": "text:korean", "kind": "keyword"})
    assert problem is not None and "'body'" in problem and "english, korean" in problem
    assert check_schema_change(old, {"body": "text:english", "kind": "keyword", "new": "text:korean"}) is None
    assert "cannot change" in check_schema_change(old, {"body": "text", "kind": "int"})
