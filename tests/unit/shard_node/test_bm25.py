"""The FTS5 text index: BM25 order, updates and deletes."""

from __future__ import annotations

from shard_node.bm25 import TextIndex, fts_query


def test_query_words_are_quoted_and_or_ed() -> None:
    assert fts_query('Python "HTTP" client; python!') == '"python" OR "http" OR "client"'
    assert fts_query("  ...  ") == ""


def test_rarer_and_repeated_words_score_higher() -> None:
    idx = TextIndex(["body"])
    texts = ["a python http client library", "python python python bindings", "a rust web server",
             "python tools", "http server in go", "graphics library"]
    idx.set(list(range(len(texts))), [{"body": t} for t in texts])
    labels, scores = idx.scores("body", "python http client")
    ranked = [int(x) for x in labels[(-scores).argsort()]]
    assert ranked[0] == 0  # matches all three words, one of them rare
    assert set(ranked) == {0, 1, 3, 4}
    assert (scores > 0).all()


def test_updates_and_deletes_take_effect() -> None:
    idx = TextIndex(["body", "title"])
    idx.set([0, 1], [{"body": "red apple", "title": "fruit"}, {"body": "green pear"}])
    assert idx.matching("body", "apple", 2).tolist() == [True, False]
    idx.set([0], [{"body": "yellow banana"}])
    assert idx.matching("body", "apple", 2).tolist() == [False, False]
    assert idx.matching("title", "fruit", 2).tolist() == [False, False]
    idx.clear([1])
    assert idx.matching("body", "pear", 2).tolist() == [False, False]
    assert idx.scores("body", "")[0].size == 0
