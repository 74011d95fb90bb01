"""The ingest module's pure parts: batching by kind, content digests, JSON-lines parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shoal.ingest import IngestError, Item, _batches, iter_jsonl


def test_batches_split_by_kind_and_size() -> None:
    items = [Item("a", vector=[1.0]), Item("b", vector=[2.0]), Item("c", text="x"), Item("d", text="y"),
             Item("e", text="z"), Item("f", vector=[3.0])]
    got = [[i.id for i in b] for b in _batches(items, vector_batch=5, embed_batch=2)]
    assert got == [["a", "b"], ["c", "d"], ["e"], ["f"]]


def test_digest_changes_with_any_part_and_not_otherwise() -> None:
    base = Item("a", {"k": 1}, text="hello")
    assert base.digest() == Item("a", {"k": 1}, text="hello").digest()
    assert len({base.digest(), Item("a", {"k": 2}, text="hello").digest(), Item("a", {"k": 1}, text="hellO").digest(),
                Item("a", {"k": 1}, text="hello", image=b"\x01").digest()}) == 4
    # the text and the image are length-framed: moving bytes between them changes the digest
    assert Item("a", text="ab").digest() != Item("a", text="a", image=b"b").digest()


def test_jsonl_items_and_errors_name_the_line(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join([json.dumps({"id": 1, "vector": [0.5], "payload": {"n": 1}}), "",
                               json.dumps({"id": "t", "text": "words", "lang": "en"}),
                               json.dumps({"id": "i", "image": base64.b64encode(b"PNG").decode()})]) + "\n")
    items = list(iter_jsonl(good))
    assert [(i.id, i.payload) for i in items] == [("1", {"n": 1}), ("t", {"lang": "en"}), ("i", {})]
    assert items[0].vector == [0.5] and items[1].text == "words" and items[2].image == b"PNG"
    for line, message in (("{not json", "2: not valid JSON"), ('{"id": "x"}', '2: each line needs "id"'),
                          ('{"id": "x", "image": "***"}', '2: "image" is not base64')):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({"id": "ok", "text": "fine"}) + "\n" + line + "\n")
        with pytest.raises(IngestError, match=message):
            list(iter_jsonl(bad))
