"""`python -m bench.filtered`: filtered search, NOT and BM25 on the Debian corpus.

1. In one process, on one partition holding the whole corpus: Shoal's planner (filter evaluation included)
   against hnswlib's own filter callback alone and against numpy brute force, at each selectivity.
2. Through a local cluster (3 shards): the cost of NOT queries (threshold and rank forms) relative to the
   plain query, and MRR@10 of BM25, vector and hybrid ranking on the dev queries.

Vectors are the demo's hashed bag-of-words stand-in (the text embedder is not bound yet). Writes its
section of BENCHMARKS.md between the bench:filtered markers.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

import shoal
from bench.machine import load_average, machine_facts
from bench.report import write_section
from coordinator.catalog import CollectionSpec
from coordinator.query_bind import bind_query
from coordinator.query_parser import parse_query
from protos import shard_pb2
from protos.wire import pack_vector
from shard_node.partition import Partition
from shard_node.query import run_query
from shard_node.settings import PartitionSpec
from shoal import query as Q
from shoal.demo import CORPUS, read_corpus
from shoal.lexical import hashed_bow
from shoal.serve import LocalCluster

REPO = Path(__file__).resolve().parent.parent
QUERIES_FILE = Path(CORPUS).with_name("queries_dev.jsonl.gz")
BEGIN, END = "<!-- bench:filtered:begin -->", "<!-- bench:filtered:end -->"
FIELDS = {"section": "keyword", "architecture": "keyword", "tags": "tags", "installed_size_kb": "int",
          "text_en": "text"}
K = 10
EF = 256  # what plain search needs on these vectors for recall@10 >= 0.95
SEED = 7
UPSERT_BATCH = 2000
Columns = dict[str, np.ndarray]

# (selectivity label, filter string, the same filter over numpy columns)
FILTERS: list[tuple[str, str, Callable[[Columns], np.ndarray]]] = [
    ("0.1%", "tags:made-of::tex", lambda c: c["tex"]),
    ("1%", "section:fonts", lambda c: c["section"] == "fonts"),
    ("10%", "section:libs", lambda c: c["section"] == "libs"),
    ("50%", "architecture:all", lambda c: c["architecture"] == "all"),
    ("100%", "architecture:[amd64, all]", lambda c: np.isin(c["architecture"], ["amd64", "all"])),
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m bench.filtered", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--docs", type=int, default=0, help="corpus documents (0 = all)")
    p.add_argument("--queries", type=int, default=200, help="dev queries per filtered measurement")
    p.add_argument("--mrr-queries", type=int, default=1000, help="dev queries for MRR@10")
    p.add_argument("--not-queries", type=int, default=100, help="queries per NOT measurement")
    p.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    return p.parse_args(argv)


def load(docs_limit: int) -> tuple[list[dict], np.ndarray, Columns]:
    """Corpus documents, their vectors and payload columns."""
    docs = list(read_corpus())
    if 0 < docs_limit < len(docs):
        keep = np.sort(np.random.default_rng(SEED).choice(len(docs), docs_limit, replace=False))
        docs = [docs[i] for i in keep]
    cols = {"section": np.asarray([d["section"] for d in docs], dtype=object),
            "architecture": np.asarray([d["architecture"] for d in docs], dtype=object),
            "tex": np.asarray(["made-of::tex" in (d.get("tags") or []) for d in docs])}
    return docs, hashed_bow([d["text_en"] for d in docs]), cols


def dev_queries(n: int) -> list[dict]:
    """A seeded sample of the dev queries."""
    with gzip.open(QUERIES_FILE, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    pick = np.random.default_rng(SEED).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i] for i in pick]


def payload(doc: dict) -> dict:
    """The indexed payload fields of a corpus document."""
    return {k: doc[k] for k in FIELDS if doc.get(k) not in (None, [])}


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Mean share of the true top-k found, a hit counting when it is no farther than the k-th true one."""
    return float(np.mean([min(int((f <= t[-1] + 1e-5).sum()), len(t)) / len(t) if len(t) else 1.0
                          for f, t in zip(found, truth, strict=True)]))


def timed(fn: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Distances found per query, and queries per second."""
    start = time.perf_counter()
    out = [fn(q) for q in queries]
    return out, len(queries) / (time.perf_counter() - start)


def filtered_table(vectors: np.ndarray, docs: list[dict], cols: Columns, queries: np.ndarray) -> list[dict]:
    """Planner vs hnswlib filter callback vs brute force, per selectivity, on one in-process partition."""
    part = Partition(PartitionSpec(dim=vectors.shape[1], metric="cosine", ef_search=EF, fields=FIELDS),
                     capacity=len(docs))
    for start in tqdm(range(0, len(docs), UPSERT_BATCH), desc="indexing one partition", unit="batch"):
        end = start + UPSERT_BATCH
        part.upsert([d["id"] for d in docs[start:end]], vectors[start:end], [payload(d) for d in docs[start:end]])
    spec = CollectionSpec.new("bench", vectors.shape[1], "cosine", 1, 16, 200, EF, fields=FIELDS)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rows = []
    for label, expr, mask_fn in FILTERS:
        mask = mask_fn(cols)
        allowed = np.flatnonzero(mask)
        allowed_set = set(allowed.tolist())
        tree = bind_query(spec, parse_query(expr), queries[0]).filter

        def brute(q: np.ndarray, allowed: np.ndarray = allowed) -> np.ndarray:
            d = 1.0 - unit[allowed] @ (q / np.linalg.norm(q))
            return np.sort(d[np.argpartition(d, min(K, len(d)) - 1)[:K]])

        def callback(q: np.ndarray, allowed_set: set = allowed_set) -> np.ndarray:
            with part.searching(EF):
                try:
                    _, d = part.graph.knn_query(q.reshape(1, -1), k=min(K, len(allowed_set)), num_threads=1,
                                                filter=allowed_set.__contains__)
                except RuntimeError:  # hnswlib found fewer than k allowed nodes
                    return np.empty(0)
            return d[0]

        strategies: dict[str, int] = {}

        def planner(q: np.ndarray, tree=tree, strategies: dict[str, int] = strategies) -> np.ndarray:
            resp = run_query(part, shard_pb2.ShardQueryRequest(filter=tree, vector=pack_vector(q), k=K), 0)
            strategies[resp.plan.strategy] = strategies.get(resp.plan.strategy, 0) + 1
            return np.frombuffer(resp.vector_hits.scores, dtype="<f4")

        truth, brute_qps = timed(brute, queries)
        found_cb, cb_qps = timed(callback, queries)
        found_pl, pl_qps = timed(planner, queries)
        want = min(K, len(allowed))
        rows.append({
            "selectivity": label, "filter": expr, "allowed": len(allowed), "fraction": len(allowed) / len(docs),
            "planner_recall": recall(found_pl, truth), "planner_qps": pl_qps,
            "planner_short": sum(len(f) < want for f in found_pl),
            "strategies": ", ".join(f"{k} {v}" for k, v in sorted(strategies.items())),
            "callback_recall": recall(found_cb, truth), "callback_qps": cb_qps,
            "callback_short": sum(len(f) < want for f in found_cb),
            "brute_qps": brute_qps,
        })
        print(rows[-1], file=sys.stderr)
    return rows


def cluster_figures(vectors: np.ndarray, docs: list[dict], n_not: int, mrr_rows: list[dict]) -> dict:
    """NOT cost against the plain query, and MRR@10 per ranking, through a local 3-shard cluster."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="shoal-bench-filtered-") as tmp:
        cluster = LocalCluster(Path(tmp))
        cluster.start()
        try:
            with shoal.Client(cluster.address, timeout=600) as client:
                client.create_collection("debian", dim=vectors.shape[1], shards=3, ef_search=EF, fields=FIELDS)
                for start in tqdm(range(0, len(docs), UPSERT_BATCH), desc="loading the cluster", unit="batch"):
                    end = start + UPSERT_BATCH
                    client.upsert("debian", [d["id"] for d in docs[start:end]], vectors[start:end],
                                  [payload(d) for d in docs[start:end]])
                qv = hashed_bow([r["query"] for r in mrr_rows[:n_not]])
                shifted = np.roll(qv, 1, axis=0) * 0.3 + qv * 0.7
                kinds: dict[str, Callable[[int], object]] = {
                    "plain": lambda i: client.search("debian", qv[i], k=K, with_payload=False),
                    "filter section:libs": lambda i: client.search("debian", qv[i], k=K, with_payload=False,
                                                                   filter="section:libs"),
                    "NOT near@0.5 (threshold)": lambda i: client.search(
                        "debian", qv[i], k=K, with_payload=False,
                        filter=Q.not_(Q.near(shifted[i], min_similarity=0.5))),
                    "NOT near@top:50 (rank)": lambda i: client.search(
                        "debian", qv[i], k=K, with_payload=False, filter=Q.not_(Q.near(shifted[i], top=50))),
                }
                for name, fn in kinds.items():
                    fn(0)  # warm
                    start = time.perf_counter()
                    for i in range(len(qv)):
                        fn(i)
                    out.setdefault("not", {})[name] = len(qv) / (time.perf_counter() - start)
                out["mrr"] = mrr(client, mrr_rows)
        finally:
            cluster.stop()
    return out


def mrr(client: shoal.Client, rows: list[dict]) -> dict[str, float]:
    """MRR@10 of the dev queries' target package under BM25, vector (stand-in) and hybrid ranking."""
    vecs = hashed_bow([r["query"] for r in rows])
    rr: dict[str, list[float]] = {"bm25": [], "vector": [], "hybrid": []}
    for row, v in tqdm(list(zip(rows, vecs, strict=True)), desc="MRR@10", unit="query"):
        text = Q.match("text_en", row["query"])
        runs = {"bm25": client.search("debian", query=text, k=K, with_payload=False),
                "vector": client.search("debian", v, k=K, with_payload=False),
                "hybrid": client.search("debian", v, query=text, k=K, with_payload=False)}
        for name, hits in runs.items():
            ids = [h.id for h in hits]
            rr[name].append(1.0 / (ids.index(row["target"]) + 1) if row["target"] in ids else 0.0)
    return {name: float(np.mean(v)) for name, v in rr.items()}


def render(args: argparse.Namespace, n_docs: int, rows: list[dict], cl: dict, facts: dict, load_end: list) -> str:
    """The markdown section."""
    cmd = "python -m bench.filtered " + shlex.join(sys.argv[1:])
    lines = [BEGIN, "## Filtered search, NOT and BM25 (Debian corpus)", "",
             f"Command: `{cmd.strip()}` (`make bench-filter`). {n_docs:,} documents, vectors: hashed bag-of-words "
             f"of `text_en` (256-d, the demo's stand-in until the text embedder is bound), cosine, M 16, "
             f"ef {EF}, k {K}, {args.queries} dev queries per row. Machine: {facts['nproc']} CPUs "
             f"({facts['cpu_model']}), load average {facts['load_average_start']} at start, {load_end} at end "
             f"(the machine was shared), git {facts['git']}.", "",
             "### Filtered search, one partition in one process", "",
             "Shoal's planner is `shard_node.query.run_query` (filter evaluated from the indexes, then exact scan "
             "or post-filtered HNSW, deeper when needed). hnswlib's filter callback is `knn_query(filter=...)` on "
             "the same graph with the allowed set precomputed (a `set.__contains__`, the cheapest callable). "
             "Brute force is numpy over the allowed rows. \"short\" counts queries answered with fewer than k "
             "hits although k qualified.", "",
             "| selectivity | filter | allowed | planner recall@10 | planner q/s | plans chosen | callback recall@10 "
             "| callback q/s | callback short | brute force q/s | planner / callback | planner / brute |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['selectivity']} ({r['fraction']:.4f}) | `{r['filter']}` | {r['allowed']:,} | "
            f"{r['planner_recall']:.3f} | {r['planner_qps']:.0f} | {r['strategies']} | {r['callback_recall']:.3f} | "
            f"{r['callback_qps']:.0f} | {r['callback_short']} | {r['brute_qps']:.0f} | "
            f"{r['planner_qps'] / r['callback_qps']:.2f}x | {r['planner_qps'] / r['brute_qps']:.2f}x |")
    if cl:
        plain = cl["not"]["plain"]
        lines += ["", "### NOT and filters through the cluster (3 shards, single queries, gRPC)", "",
                  "The excluded vector is 0.7 x query + 0.3 x another query, so the exclusion eats the query's top. "
                  "The rank form first resolves the global top-50 across the shards (exact per-shard scans), "
                  "then runs the main query with that id set excluded.", "",
                  "| query | q/s | cost vs plain |", "| --- | ---: | ---: |"]
        for name, qps in cl["not"].items():
            lines.append(f"| {name} | {qps:.0f} | {plain / qps:.2f}x |")
        m = cl["mrr"]
        lines += ["", f"### MRR@10 on {args.mrr_queries} dev queries (known-item: the package whose summary "
                  "is the query)", "",
                  "| ranking | MRR@10 |", "| --- | ---: |",
                  f"| BM25 alone (`text_en`, SQLite FTS5, Porter stemming) | {m['bm25']:.3f} |",
                  f"| vector alone (hashed bag-of-words stand-in, not the embedder) | {m['vector']:.3f} |",
                  f"| hybrid RRF, equal weights (with the stand-in vectors) | {m['hybrid']:.3f} |"]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the measurements and write the section."""
    args = parse_args(argv)
    facts = machine_facts(REPO)
    docs, vectors, cols = load(args.docs)
    rows_q = dev_queries(max(args.queries, args.mrr_queries, args.not_queries))
    queries = hashed_bow([r["query"] for r in rows_q[:args.queries]])
    ids = {d["id"] for d in docs}
    mrr_rows = [r for r in rows_q if r["target"] in ids][:args.mrr_queries]
    table = filtered_table(vectors, docs, cols, queries)
    cl = cluster_figures(vectors, docs, args.not_queries, mrr_rows)
    write_section(render(args, len(docs), table, cl, facts, load_average()), args.out, BEGIN, END)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
