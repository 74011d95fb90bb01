"""Filtered, full-text and hybrid search through the public API and the CLI; bad queries get INVALID_ARGUMENT."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

import shoal
from coordinator.fusion import rrf
from protos import coordinator_pb2, coordinator_pb2_grpc, query_pb2
from protos.wire import pack_matrix, payloads_to_proto
from shoal import query as Q
from shoal.demo import read_corpus
from shoal.lexical import hashed_bow
from shoal.serve import LocalCluster
from tests.support.oracle import exact_distances, same_set_up_to_ties

N = 600
FIELDS = {"section": "keyword", "tags": "tags", "installed_size_kb": "int", "text_en": "text"}


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return list(itertools.islice(read_corpus(), N))


@pytest.fixture
def filled(client: shoal.Client, collection_name: str, docs: list[dict]) -> Iterator[str]:
    client.create_collection(collection_name, dim=256, shards=3, fields=FIELDS)
    client.upsert(collection_name, [d["id"] for d in docs], hashed_bow([d["text_en"] for d in docs]),
                  [{k: d[k] for k in FIELDS if d.get(k) is not None} for d in docs])
    yield collection_name


@pytest.fixture
def stub(cluster: LocalCluster) -> Iterator[coordinator_pb2_grpc.CoordinatorStub]:
    with grpc.insecure_channel(cluster.address) as channel:
        yield coordinator_pb2_grpc.CoordinatorStub(channel)


def _search(stub, **kw) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        stub.Search(coordinator_pb2.SearchRequest(**kw), timeout=30)
    return err.value


@pytest.mark.parametrize(("where", "message"), [
    ({"filter": "sectoin:games"}, "unknown field 'sectoin'"),
    ({"filter": "installed_size_kb<lots"}, "field 'installed_size_kb' is int"),
    ({"filter": "section<5"}, "field 'section' is keyword"),
    ({"filter": "section:games AND (tags:x"}, "position 25"),
    ({"filter": "section:games tags:x"}, "position 14"),
    ({"filter": "   "}, "empty"),
    ({"filter_tree": query_pb2.QueryNode()}, "empty"),
    ({"filter_tree": Q.and_()}, "no clauses"),
    ({"query": "section:games"}, "nothing to rank by"),
    ({"query": 'near:"a dog"'}, "embedding model"),
])
def test_bad_queries_answer_invalid_argument(stub, filled, where, message) -> None:
    vectors = pack_matrix(hashed_bow(["game"])) if "query" not in where else None
    err = _search(stub, collection=filled, k=5, vectors=vectors, **where)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.details()


def test_bad_schema_is_refused(client: shoal.Client, collection_name: str) -> None:
    for fields, message in (({"a": "blob"}, "unknown type 'blob'"), ({"near": "keyword"}, "reserved"),
                            ({"1a": "int"}, "not valid")):
        with pytest.raises(shoal.InvalidArgument, match=message):
            client.create_collection(collection_name, dim=4, fields=fields)
    assert collection_name not in [c.name for c in client.list_collections()]


def test_bad_or_changed_tokenizers_are_refused_naming_field_and_choices(client: shoal.Client,
                                                                        collection_name: str) -> None:
    with pytest.raises(shoal.InvalidArgument, match="'body'.*'klingon'.*text:english, text:korean"):
        client.create_collection(collection_name, dim=4, fields={"body": "text:klingon"})
    client.create_collection(collection_name, dim=4, fields={"body": "text"})  # the fixture drops it
    with pytest.raises(shoal.InvalidArgument, match="'body'.*'english'.*'korean'.*english, korean"):
        client.create_collection(collection_name, dim=4, fields={"body": "text:korean"})


def test_payload_of_the_wrong_type_is_refused_and_nothing_is_written(client, filled, docs) -> None:
    before = client.count(filled)
    vec = hashed_bow(["x", "y"])
    with pytest.raises(shoal.InvalidArgument, match="'b'.*installed_size_kb.*int"):
        client.upsert(filled, ["a", "b"], vec, [{"installed_size_kb": 5}, {"installed_size_kb": "big"}])
    with pytest.raises(shoal.InvalidArgument, match="tags"):
        client.upsert(filled, ["a"], vec[:1], [{"tags": [1, 2]}])
    assert client.count(filled) == before
    assert client.get(filled, ["a", "b"]) == []


def test_filter_as_string_and_as_tree_agree(client, filled, docs) -> None:
    v = hashed_bow(["a free strategy game"])[0]
    text = "section:games AND installed_size_kb<20000 AND NOT tags:interface::x11"
    tree = Q.and_(Q.eq("section", "games"), Q.range_("installed_size_kb", lt=20000),
                  Q.not_(Q.contains("tags", "interface::x11")))
    by_text = client.search(filled, v, k=20, filter=text)
    by_tree = client.search(filled, v, k=20, filter=tree)
    expected = {d["id"] for d in docs if d["section"] == "games" and d["installed_size_kb"] < 20000
                and "interface::x11" not in (d.get("tags") or [])}
    assert [h.id for h in by_text] == [h.id for h in by_tree]
    assert len(by_text) == min(20, len(expected)) and {h.id for h in by_text} <= expected


def test_bm25_ranking_returns_only_matching_documents(client, filled, docs) -> None:
    hits = client.search(filled, query='text_en:"audio"', k=50)
    matching = {d["id"] for d in docs if re.search(r"\baudios?\b", d["text_en"].lower())}
    assert len(matching) > 10
    assert len(hits) == min(50, len(matching))
    assert {h.id for h in hits} <= matching
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hybrid_is_the_rrf_of_both_rankings(client, filled) -> None:
    v = hashed_bow(["audio player for music files"])[0]
    words = 'text_en:"audio music player"'
    by_text = client.search(filled, query=words, k=100, ranking="bm25")
    hybrid = client.search(filled, v, k=10, query=words, weights=(1.0, 2.0))
    # the vector ranking with the text clause kept as a filter differs: rank by vector over every document
    unfiltered = client.search(filled, v, k=100)
    expected = rrf([[h.id for h in unfiltered], [h.id for h in by_text]], [1.0, 2.0], 10)
    assert [h.id for h in hybrid] == [i for i, _ in expected]
    assert [h.score for h in hybrid] == pytest.approx([s for _, s in expected])


def test_vector_ranking_keeps_the_text_clause_as_a_filter(client, filled, docs) -> None:
    """ranking="vector": only documents the text clause matches, ordered by vector distance, the exact top-k."""
    v = hashed_bow(["audio player for music files"])[0]
    words = 'text_en:"audio music player"'
    matching = {h.id for h in client.search(filled, query=words, k=len(docs), ranking="bm25")}
    by_vector = client.search(filled, v, k=20, query=words, ranking="vector")
    assert 20 < len(matching) < len(docs) // 2, "the clause should select a real subset"
    assert len(by_vector) == 20 and {h.id for h in by_vector} <= matching
    distances = [h.distance for h in by_vector]
    assert distances == sorted(distances), "a vector ranking is ordered by distance"
    rows = [i for i, d in enumerate(docs) if d["id"] in matching]
    exact = exact_distances("cosine", v[None, :], hashed_bow([docs[i]["text_en"] for i in rows]))[0]
    order = np.argsort(exact, kind="stable")[:20]
    truth_ids, truth_d = [docs[rows[i]]["id"] for i in order], exact[order]
    assert same_set_up_to_ties([h.id for h in by_vector], np.asarray(distances), truth_ids, truth_d), (
        [h.id for h in by_vector], truth_ids)
    unfiltered = client.search(filled, v, k=20)
    assert [h.id for h in unfiltered] != [h.id for h in by_vector], "the clause must change the answer here"


def test_korean_hybrid_search_fuses_a_real_bm25_ranking(client: shoal.Client, collection_name: str) -> None:
    korean_docs = [d for d in read_corpus() if d.get("text_ko")]
    # "파이썬" (Python) standing only inside longer words, as in "파이썬으로" (in Python), and never alone
    target = next(d for d in korean_docs if "파이썬으로" in d["text_ko"]
                  and not re.search(r"(^|[^가-힣])파이썬($|[^가-힣])", d["text_ko"]))
    docs = [target] + [d for d in korean_docs[:300] if d["id"] != target["id"]]
    client.create_collection(collection_name, dim=256, shards=2, fields={"ko": "text:korean", "ko_en": "text"})
    client.upsert(collection_name, [d["id"] for d in docs], hashed_bow([d["text_en"] for d in docs]),
                  [{"ko": d["text_ko"], "ko_en": d["text_ko"]} for d in docs])
    korean = client.search(collection_name, query='ko:"파이썬"', k=300, ranking="bm25")
    expected = {d["id"] for d in docs if "파이썬" in d["text_ko"]}
    assert {h.id for h in korean} == expected and target["id"] in expected
    english = client.search(collection_name, query='ko_en:"파이썬"', k=300, ranking="bm25")
    assert target["id"] not in {h.id for h in english}  # the English tokenizer misses the agglutinated word
    v = hashed_bow([target["text_en"]])[0]
    hybrid = client.search(collection_name, v, query='ko:"파이썬"', k=10)
    unfiltered = client.search(collection_name, v, k=100)
    fused = rrf([[h.id for h in unfiltered], [h.id for h in korean][:100]], [1.0, 1.0], 10)
    assert [h.id for h in hybrid] == [i for i, _ in fused] and target["id"] in {h.id for h in hybrid}


def test_explain_reports_the_plan(client, filled) -> None:
    v = hashed_bow(["library"])[0]
    hits, plan = client.explain(filled, v, k=5, filter="section:libs OR tags:role::program")
    assert len(hits) == 5 and plan["ranking"] == "vector"
    assert plan["tree"] == '(section:"libs" OR tags:"role::program")'
    assert sorted(s["shard"] for s in plan["shards"]) == [0, 1, 2]
    for shard in plan["shards"]:
        assert shard["strategy"] in ("exact", "hnsw", "hnsw_filter")
        assert [c["clause"] for c in shard["clauses"]][-1] == plan["tree"]
        assert shard["clauses"][-1]["actual"] == shard["allowed"] and shard["latency_ms"] > 0
    vq = "[" + ", ".join(map(str, v.tolist())) + "]"
    _, plan = client.explain(filled, query=f"near:{vq} AND NOT near:{vq}@top:7", k=5)
    assert plan["resolved"][0]["actual"] == 7


def test_cli_query_and_filtered_search(cluster, filled) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shoal.cli", "--address", cluster.address, *args],
                              capture_output=True, text=True, timeout=120, check=False)

    r = run("query", 'section:games AND text_en:"strategy"', "-c", filled, "-k", "3", "--json")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert 0 < len(hits) <= 3 and all(h["payload"]["section"] == "games" for h in hits)
    r = run("search", "--like", "0ad", "-c", filled, "--filter", "installed_size_kb<100", "--explain")
    assert r.returncode == 0, r.stderr
    assert '"strategy"' in r.stderr
    r = run("query", "section:games AND", "-c", filled)
    assert r.returncode == 2 and "position 17" in r.stderr


def test_batched_filtered_search(client, filled) -> None:
    v = hashed_bow(["game", "python library"])
    both = client.search_batch(filled, v, k=5, filter="section:games")
    assert [[h.id for h in hits] for hits in both] == [
        [h.id for h in client.search(filled, row, k=5, filter="section:games")] for row in v]


def test_payload_helper_round_trip() -> None:
    assert payloads_to_proto([{"tags": ["a"]}])[0].fields["tags"].list_value.values[0].string_value == "a"
    assert np.isfinite(hashed_bow(["x"])).all()
