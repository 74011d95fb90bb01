"""The FTS5 text index: BM25 order, updates and deletes."""

from __future__ import annotations

import numpy as np

from shard_node.bm25 import TextIndex, fts_query, korean_terms


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


def matching(idx: TextIndex, field: str, text: str) -> list[int]:
    return sorted(idx.scores(field, text)[0].tolist())


def test_updates_and_deletes_take_effect() -> None:
    idx = TextIndex(["body", "title"])
    idx.set([0, 1], [{"body": "red apple", "title": "fruit"}, {"body": "green pear"}])
    assert matching(idx, "body", "apple") == [0]
    idx.set([0], [{"body": "yellow banana"}])
    assert matching(idx, "body", "apple") == []
    assert matching(idx, "title", "fruit") == []
    idx.clear([1])
    assert matching(idx, "body", "pear") == []
    assert idx.scores("body", "")[0].size == 0


KOREAN_DOCS = ["파이썬으로 작성된 HTTP 클라이언트", "러스트로 만든 웹 서버", "파이썬 3 인터프리터", "그래픽 라이브러리",
               "책을 읽는 프로그램"]


def test_korean_tokenizer_finds_words_inside_agglutinated_ones() -> None:
    ko = TextIndex({"body": "text:korean"})
    en = TextIndex({"body": "text:english"})
    for idx in (ko, en):
        idx.set(list(range(len(KOREAN_DOCS))), [{"body": t} for t in KOREAN_DOCS])
    assert matching(ko, "body", "파이썬") == [0, 2]   # 파이썬으로 = 파이썬 + 으로
    assert matching(en, "body", "파이썬") == [2]      # the English tokenizer sees only the bare word
    assert matching(ko, "body", "서버") == [1]
    assert matching(ko, "body", "책") == [4]          # a one-letter word matches as a prefix
    assert matching(ko, "body", "http") == [0]        # Latin words stay whole words
    assert matching(ko, "body", "이썬으") == [0]
    labels, scores = ko.scores("body", "파이썬 인터프리터")
    assert int(labels[np.argmax(scores)]) == 2 and (scores > 0).all()  # a real BM25 ranking


def test_korean_query_phrases() -> None:
    assert fts_query("파이썬 책 HTTP", "korean") == '"파이 이썬" OR "책"* OR "http"'
    assert korean_terms("GTK용 파이썬으로") == "gtk 용 파이 이썬 썬으 으로"
