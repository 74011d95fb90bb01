"""Field indexes and filter evaluation on one partition, against plain Python over the payloads."""

from __future__ import annotations

import numpy as np
import pytest

from protos import query_pb2
from protos import query_tree as q
from protos.errors import InvalidArgument
from shard_node.partition import Partition
from shard_node.query import allowed_set
from shard_node.settings import PartitionSpec

FIELDS = {"kind": "keyword", "tags": "tags", "n": "int", "x": "float", "when": "datetime", "ok": "bool",
          "body": "text"}
KINDS = ["a", "b", "c", "d"]
TAGS = ["t1", "t2", "t3", "t4", "t5"]
WORDS = ["red", "green", "blue", "fast", "slow"]


def payload(rng: np.random.Generator) -> dict:
    p = {"kind": str(rng.choice(KINDS)), "n": int(rng.integers(0, 100)), "x": float(rng.normal()),
         "when": f"2024-0{int(rng.integers(1, 10))}-01", "ok": bool(rng.integers(0, 2)),
         "tags": [str(t) for t in rng.choice(TAGS, size=int(rng.integers(0, 3)), replace=False)],
         "body": " ".join(rng.choice(WORDS, size=3))}
    for key in ("n", "tags", "body"):  # some documents lack some fields
        if rng.random() < 0.1:
            del p[key]
    return p


@pytest.fixture
def part() -> tuple[Partition, dict[str, dict]]:
    rng = np.random.default_rng(1)
    p = Partition(PartitionSpec(dim=4, metric="cosine", fields=FIELDS), capacity=16)
    docs = {f"d{i}": payload(rng) for i in range(300)}
    p.upsert(list(docs), rng.standard_normal((300, 4)).astype(np.float32) + 0.1, list(docs.values()))
    # replace some, delete some: the indexes must follow
    again = {f"d{i}": payload(rng) for i in range(0, 300, 7)}
    p.upsert(list(again), rng.standard_normal((len(again), 4)).astype(np.float32) + 0.1, list(again.values()))
    docs.update(again)
    gone = [f"d{i}" for i in range(0, 300, 11)]
    p.delete(gone)
    for g in gone:
        docs.pop(g)
    return p, docs


def selected(p: Partition, node: query_pb2.QueryNode, explain: bool = False) -> set[str]:
    with p.searching(p.spec.ef_search):
        allowed, _, _, _ = allowed_set(p, node, explain)
    assert (np.diff(allowed.labels) > 0).all()  # sorted, no repeats
    return set(p.ids_of(allowed.labels))


CASES = [
    (q.eq("kind", "a"), lambda d: d["kind"] == "a"),
    (q.in_("kind", ["a", "c", "zz"]), lambda d: d["kind"] in ("a", "c")),
    (q.contains("tags", "t2"), lambda d: "t2" in d.get("tags", [])),
    (q.in_("tags", ["t1", "t5"]), lambda d: bool({"t1", "t5"} & set(d.get("tags", [])))),
    (q.range_("n", gte=10, lt=40), lambda d: "n" in d and 10 <= d["n"] < 40),
    (q.range_("n", gt=10, lte=40), lambda d: "n" in d and 10 < d["n"] <= 40),
    (q.range_("x", gt=0.5), lambda d: d["x"] > 0.5),
    (q.range_("when", gte="2024-03-01", lt="2024-06-01T00:00:00Z"), lambda d: "2024-03" <= d["when"] < "2024-06"),
    (q.eq("ok", True), lambda d: d["ok"]),
    (q.exists("tags"), lambda d: bool(d.get("tags"))),
    (q.exists("n"), lambda d: "n" in d),
    (q.match("body", "red fast"), lambda d: bool({"red", "fast"} & set(d.get("body", "").split()))),
    (q.not_(q.eq("kind", "a")), lambda d: d["kind"] != "a"),
    (q.and_(q.eq("kind", "b"), q.not_(q.contains("tags", "t1")), q.range_("n", lt=50)),
     lambda d: d["kind"] == "b" and "t1" not in d.get("tags", []) and d.get("n", 999) < 50),
    (q.or_(q.eq("kind", "d"), q.and_(q.eq("ok", False), q.exists("body"))),
     lambda d: d["kind"] == "d" or (not d["ok"] and "body" in d)),
    (q.ids(["d1", "d2", "d11", "nope"]), lambda d: False),
]


@pytest.mark.parametrize(("node", "oracle"), CASES, ids=[q.render(c[0]) for c in CASES])
def test_filter_equals_python_over_payloads(part, node, oracle) -> None:
    p, docs = part
    expected = {i for i, d in docs.items() if oracle(d)}
    if node.WhichOneof("node") == "ids":
        expected = {"d1", "d2"}  # d11 was deleted, nope never existed
    assert selected(p, node) == expected


def test_indexes_are_rebuilt_on_load(part, tmp_path) -> None:
    p, docs = part
    p.save(tmp_path)
    loaded = Partition.load(tmp_path, p.spec)
    for node, _ in CASES:
        assert selected(loaded, node) == selected(p, node)


def test_estimates_and_figures(part) -> None:
    p, docs = part
    with p.searching(p.spec.ef_search):
        _, _, _, figures = allowed_set(p, q.and_(q.eq("kind", "a"), q.range_("n", lt=50)), explain=True)
    kinds, ranges, both = figures
    assert kinds.estimated == kinds.actual == sum(d["kind"] == "a" for d in docs.values())
    assert ranges.estimated == ranges.actual == sum(d.get("n", 999) < 50 for d in docs.values())
    assert both.estimated == both.actual == sum(d["kind"] == "a" and d.get("n", 999) < 50 for d in docs.values())
    with p.searching(p.spec.ef_search):
        assert allowed_set(p, q.eq("kind", "a"))[3] == []  # figures (and render()) only for explain


@pytest.mark.parametrize(("node", "message"), [
    (q.range_("kind", lt=3), "range needs"),
    (q.contains("kind", "a"), "'contains' needs a tags field"),
    (q.eq("nofield", "a"), "unknown field"),
    (q.eq("n", "abc"), "expected an integer"),
    (q.and_(q.eq("kind", "a"), query_pb2.QueryNode()), "empty node"),
])
def test_bad_predicates_are_refused(part, node, message) -> None:
    with pytest.raises(InvalidArgument, match=message):
        selected(part[0], node)
