"""`python -m bench.filtered`: filtered search, NOT and BM25 on the Debian corpus.

1. In one process, on one partition: Shoal's planner (filter evaluation included) against each of its plans
   forced (exact scan of the cached allowed rows, post-filtered HNSW sized by the exact cardinality,
   the graph's filtered walk, the allowed mask checked in C) and against a bare numpy scan of the allowed
   rows, at each selectivity.
   Two tables: the real embeddings of data/debian/demo_vectors.npz (text_en by the default text model;
   queries are dev queries embedded by the same model, cached under .cache/) and the hashed bag-of-words
   stand-in over the whole corpus. Systems are timed interleaved, best of 3, BLAS on one thread.
2. Through a local cluster (3 shards, real vectors): the cost of NOT queries (threshold and rank forms)
   relative to the plain query, and MRR@10 of BM25, vector and hybrid ranking on the dev queries.

Writes its section of BENCHMARKS.md between the bench:filtered markers.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

import shoal
from bench.machine import load_average, machine_facts
from bench.report import write_section
from coordinator.catalog import CollectionSpec
from coordinator.query_bind import bind_query
from coordinator.query_parser import parse_query
from protos import shard_pb2
from protos.wire import pack_vector
from shard_node.fields import labels_array
from shard_node.filters import FilterContext, evaluate
from shard_node.near import near_set
from shard_node.partition import Partition
from shard_node.planner import EXACT, HNSW, HNSW_FILTER
from shard_node.query import run_query
from shard_node.settings import PartitionSpec
from shoal import query as Q
from shoal.demo import CORPUS, DEMO_MODEL, DEMO_VECTORS, read_corpus
from shoal.lexical import hashed_bow
from shoal.serve import LocalCluster

REPO = Path(__file__).resolve().parent.parent
QUERIES_FILE = Path(CORPUS).with_name("queries_dev.jsonl.gz")
QUERY_CACHE = REPO / ".cache" / "filtered-bench"
BEGIN, END = "<!-- bench:filtered:begin -->", "<!-- bench:filtered:end -->"
FIELDS = {"section": "keyword", "architecture": "keyword", "tags": "tags", "installed_size_kb": "int",
          "text_en": "text"}
K = 10
EF = 384  # plain search on the real vectors: recall@10 0.994 (0.988-0.990 at 256)
SEED = 7
UPSERT_BATCH = 2000
ROUNDS = 3  # each system's queries run this many times, interleaved with the others; the best counts
MIN_WINDOW_S = 0.1  # a timed pass repeats the queries until it lasts about this long

# (selectivity label on the whole corpus, filter string)
FILTERS: list[tuple[str, str]] = [
    ("0.1%", "tags:made-of::tex"),
    ("1%", "section:fonts"),
    ("10%", "section:libs"),
    ("50%", "architecture:all"),
    ("100%", "architecture:[amd64, all]"),
]
PLANS = {"planner": "", "exact (cached rows)": EXACT, "post-filtered hnsw": HNSW,
         "filtered walk (mask in C)": HNSW_FILTER}


@dataclass
class Corpus:
    """Documents, their vectors and the dev queries' vectors, as one table measures them."""

    name: str
    docs: list[dict]
    vectors: np.ndarray
    queries: np.ndarray
    vectors_desc: str


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m bench.filtered", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--docs", type=int, default=0, help="stand-in corpus documents (0 = all)")
    p.add_argument("--queries", type=int, default=200, help="dev queries per filtered measurement")
    p.add_argument("--mrr-queries", type=int, default=1000, help="dev queries for MRR@10")
    p.add_argument("--not-queries", type=int, default=100, help="queries per NOT measurement")
    p.add_argument("--skip-cluster", action="store_true", help="only the one-partition tables")
    p.add_argument("--skip-standin", action="store_true", help="only the real-vector table")
    p.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    return p.parse_args(argv)


def dev_queries(n: int) -> list[dict]:
    """A seeded sample of the dev queries."""
    with gzip.open(QUERIES_FILE, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    pick = np.random.default_rng(SEED).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i] for i in pick]


def embedded_queries(texts: list[str]) -> np.ndarray:
    """Query vectors of texts by the demo's text model, embedded once and cached under .cache/."""
    digest = hashlib.sha256("\n".join([DEMO_MODEL, *texts]).encode()).hexdigest()[:16]
    path = QUERY_CACHE / f"queries-{digest}.npy"
    if path.exists():
        return np.load(path)
    from embedder.catalog import build_registry  # heavy: only when the cache is cold
    from embedder.settings import EmbedderSettings

    print(f"embedding {len(texts)} dev queries with {DEMO_MODEL} (cached in {path})", file=sys.stderr)
    encoder = build_registry(EmbedderSettings()).load(DEMO_MODEL)
    vectors = np.asarray(encoder.embed_texts(texts, kind="query"), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def real_corpus(query_texts: list[str]) -> Corpus:
    """The documents of demo_vectors.npz with their real embeddings, and the dev queries embedded alike."""
    stored = np.load(DEMO_VECTORS)
    owner = stored["owner"] if "owner" in stored.files else np.arange(len(stored["ids"]))
    first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])   # each document's English entry
    vectors = stored["q"][first].astype(np.float32) * stored["scale"][first, None]
    by_id = {d["id"]: d for d in read_corpus()}
    docs = [by_id[i] for i in stored["ids"][owner[first]].tolist()]
    return Corpus("real", docs, vectors, embedded_queries(query_texts),
                  f"`text_en` embedded by `{stored['model']}` ({vectors.shape[1]}-d, int8-stored "
                  f"{DEMO_VECTORS.name}); queries: dev queries embedded by the same model")


def standin_corpus(docs_limit: int, query_texts: list[str]) -> Corpus:
    """The whole corpus (or a seeded sample) with hashed bag-of-words vectors."""
    docs = list(read_corpus())
    if 0 < docs_limit < len(docs):
        keep = np.sort(np.random.default_rng(SEED).choice(len(docs), docs_limit, replace=False))
        docs = [docs[i] for i in keep]
    return Corpus("stand-in", docs, hashed_bow([d["text_en"] for d in docs]), hashed_bow(query_texts),
                  "hashed bag-of-words of `text_en` (256-d, the demo's old stand-in) for documents and queries")


def payload(doc: dict) -> dict:
    """The indexed payload fields of a corpus document."""
    return {k: doc[k] for k in FIELDS if doc.get(k) not in (None, [])}


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Mean share of the true top-k found, a hit counting when it is no farther than the k-th true one."""
    return float(np.mean([min(int((f <= t[-1] + 1e-5).sum()), len(t)) / len(t) if len(t) else 1.0
                          for f, t in zip(found, truth, strict=True)]))


def best_of(systems: dict[str, Callable[[np.ndarray], np.ndarray]], queries: np.ndarray
            ) -> tuple[dict[str, list[np.ndarray]], dict[str, float]]:
    """Each system's answers and its best queries/second over ROUNDS rounds, the systems interleaved."""
    found: dict[str, list[np.ndarray]] = {}
    qps: dict[str, float] = dict.fromkeys(systems, 0.0)
    passes: dict[str, int] = {}
    for name, fn in systems.items():
        fn(queries[0])  # warm: the first call of a plan fills the allowed-rows cache
        start = time.perf_counter()
        found[name] = [fn(q) for q in queries]
        # A pass of fast queries takes a few ms, as long as one scheduler hiccup: repeat it to fill a window.
        passes[name] = max(1, math.ceil(MIN_WINDOW_S / max(time.perf_counter() - start, 1e-9)))
    for _ in range(ROUNDS):
        for name, fn in systems.items():
            start = time.perf_counter()
            for _ in range(passes[name]):
                found[name] = [fn(q) for q in queries]
            qps[name] = max(qps[name], passes[name] * len(queries) / (time.perf_counter() - start))
    return found, qps


def allowed_labels(part: Partition, tree: object) -> np.ndarray:
    """The filter's allowed labels, evaluated from the partition's payload index (no cache)."""
    with part.searching(EF):
        ctx = FilterContext(part.fields, part.text, part.live_bitmap(), part.labels_of,
                            lambda v, tau: near_set(part, v, tau))
        return labels_array(evaluate(ctx, tree))


def systems_for(part: Partition, tree: object, unit: np.ndarray, allowed: np.ndarray, want: int,
                strategies: dict[str, int]) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each measured system for one filter: a query vector -> the distances of its top k.

    unit: every document's vector at unit length, by label; brute force gathers the allowed rows per query."""

    def top(rows_: np.ndarray, q: np.ndarray) -> np.ndarray:
        d = 1.0 - rows_ @ (q / np.linalg.norm(q))
        return np.sort(d[np.argpartition(d, want - 1)[:want]])

    def brute_pays(q: np.ndarray) -> np.ndarray:
        # The allowed set from the same payload index on every query, then a bare numpy scan of its rows.
        return top(unit[allowed_labels(part, tree)], q)

    def brute_given(q: np.ndarray) -> np.ndarray:
        return top(unit[allowed], q)  # the allowed set handed over for free

    def plan(strategy: str) -> Callable[[np.ndarray], np.ndarray]:
        def run(q: np.ndarray) -> np.ndarray:
            resp = run_query(part, shard_pb2.ShardQueryRequest(filter=tree, vector=pack_vector(q), k=K,
                                                               strategy=strategy), 0)
            if not strategy:
                strategies[resp.plan.strategy] = strategies.get(resp.plan.strategy, 0) + 1
            return np.frombuffer(resp.vector_hits.scores, dtype="<f4")
        return run

    systems = {name: plan(strategy) for name, strategy in PLANS.items()}
    systems["brute force (pays for its set)"] = brute_pays
    systems["brute force (set given)"] = brute_given
    return systems


def filtered_table(corpus: Corpus) -> list[dict]:
    """Planner, each plan forced, and brute force, per selectivity, on one in-process partition."""
    docs, vectors, queries = corpus.docs, corpus.vectors, corpus.queries
    part = Partition(PartitionSpec(dim=vectors.shape[1], metric="cosine", ef_search=EF, fields=FIELDS),
                     capacity=len(docs))
    for start in tqdm(range(0, len(docs), UPSERT_BATCH), desc=f"indexing one partition ({corpus.name})",
                      unit="batch"):
        end = start + UPSERT_BATCH
        part.upsert([d["id"] for d in docs[start:end]], vectors[start:end], [payload(d) for d in docs[start:end]],
                    num_threads=2)
    spec = CollectionSpec.new("bench", vectors.shape[1], "cosine", 1, 16, 200, EF, fields=FIELDS)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rows = []
    for label, expr in FILTERS:
        tree = bind_query(spec, parse_query(expr), queries[0]).filter
        allowed = allowed_labels(part, tree)  # labels are row numbers here: one upsert, no deletes
        want = min(K, len(allowed))
        strategies: dict[str, int] = {}
        systems = systems_for(part, tree, unit, allowed, want, strategies)
        exact_d = 1.0 - unit[allowed].astype(np.float64) @ (queries / np.linalg.norm(queries, axis=1, keepdims=True)).T
        truth = [np.sort(col)[:want] for col in exact_d.T]
        found, qps = best_of(systems, queries)
        strategies.clear()
        for q in queries:  # untimed: which plans the planner chose, once per query
            systems["planner"](q)
        row = {"selectivity": label, "filter": expr, "allowed": len(allowed), "fraction": len(allowed) / len(docs),
               "strategies": ", ".join(f"{k} {v}" for k, v in sorted(strategies.items())), "systems": {}}
        for name in systems:
            row["systems"][name] = {"qps": qps[name], "recall": recall(found[name], truth),
                                    "short": sum(len(f) < want for f in found[name])}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def cluster_figures(corpus: Corpus, mrr_rows: list[dict], mrr_vectors: np.ndarray, n_not: int) -> dict:
    """NOT cost against the plain query, and MRR@10 per ranking, through a local 3-shard cluster."""
    docs, vectors = corpus.docs, corpus.vectors
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
                qv = corpus.queries[:n_not]
                shifted = np.roll(qv, 1, axis=0) * 0.3 + qv * 0.7
                # The threshold that excludes about the query's top 50 documents, so the exclusion eats the top.
                unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
                sims = (shifted / np.linalg.norm(shifted, axis=1, keepdims=True)) @ unit.T
                taus = np.sort(sims, axis=1)[:, -50]
                kinds: dict[str, Callable[[int], object]] = {
                    "plain": lambda i: client.search("debian", qv[i], k=K, with_payload=False),
                    "filter section:libs": lambda i: client.search("debian", qv[i], k=K, with_payload=False,
                                                                   filter="section:libs"),
                    "NOT near@similarity (threshold, ~top 50)": lambda i: client.search(
                        "debian", qv[i], k=K, with_payload=False,
                        filter=Q.not_(Q.near(shifted[i], min_similarity=float(taus[i])))),
                    "NOT near@top:50 (rank)": lambda i: client.search(
                        "debian", qv[i], k=K, with_payload=False, filter=Q.not_(Q.near(shifted[i], top=50))),
                }
                out["not"] = interleaved_qps(kinds, len(qv))
                out["mrr"], out["mrr_queries"] = mrr(client, mrr_rows, mrr_vectors), len(mrr_rows)
        finally:
            cluster.stop()
    return out


def interleaved_qps(kinds: dict[str, Callable[[int], object]], n: int) -> dict[str, float]:
    """q/s of each kind over queries 0..n-1, the kinds interleaved query by query (in a rotating order, so each
    sees the same machine load), ROUNDS times; each kind's best round counts."""
    names = list(kinds)
    for fn in kinds.values():
        fn(0)  # warm
    best = dict.fromkeys(names, 0.0)
    for _ in tqdm(range(ROUNDS), desc="NOT and filters, interleaved", unit="round"):
        spent = dict.fromkeys(names, 0.0)
        for i in range(n):
            for j in range(len(names)):
                name = names[(i + j) % len(names)]
                start = time.perf_counter()
                kinds[name](i)
                spent[name] += time.perf_counter() - start
        for name in names:
            best[name] = max(best[name], n / spent[name])
    return best


def mrr(client: shoal.Client, rows: list[dict], vecs: np.ndarray) -> dict[str, float]:
    """MRR@10 of the dev queries' target package under BM25, vector and hybrid ranking."""
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


def table(corpus: Corpus, rows: list[dict], n_queries: int) -> list[str]:
    """One corpus's filtered-search table."""
    names = list(rows[0]["systems"]) if rows else []
    lines = [f"#### {corpus.name}: {len(corpus.docs):,} documents, {corpus.vectors_desc}; {n_queries} queries", "",
             "| selectivity | filter | allowed | plans chosen | " + " | ".join(f"{n} q/s (recall@10)" for n in names)
             + " | planner / brute (pays) | planner / brute (given) |",
             "| --- | --- | ---: | --- | " + " | ".join("---:" for _ in names) + " | ---: | ---: |"]
    for r in rows:
        cells = []
        for n in names:
            s = r["systems"][n]
            short = f", {s['short']} short" if s["short"] else ""
            cells.append(f"{s['qps']:,.0f} ({s['recall']:.3f}{short})")
        planner = r["systems"]["planner"]["qps"]
        lines.append(f"| {r['selectivity']} ({r['fraction']:.4f}) | `{r['filter']}` | {r['allowed']:,} | "
                     f"{r['strategies']} | " + " | ".join(cells) + " | "
                     f"{planner / r['systems']['brute force (pays for its set)']['qps']:.2f}x | "
                     f"{planner / r['systems']['brute force (set given)']['qps']:.2f}x |")
    return lines + [""]


def render(args: argparse.Namespace, tables: list[tuple[Corpus, list[dict]]], cl: dict, facts: dict,
           load_end: list) -> str:
    """The markdown section."""
    cmd = "python -m bench.filtered " + shlex.join(sys.argv[1:])
    lines = [BEGIN, "## Filtered search, NOT and BM25 (Debian corpus)", "",
             f"Command: `{cmd.strip()}` (`make bench-filter`). Cosine, M 16, ef {EF}, k {K}. Each system's "
             f"queries run {ROUNDS} times interleaved with the others' and the best pass counts (a pass repeats the "
             f"queries until it lasts about {MIN_WINDOW_S * 1000:.0f} ms, so one scheduler hiccup does not decide a "
             "fast system's figure); BLAS on one thread. "
             f"Machine: {facts['nproc']} CPUs ({facts['cpu_model']}), load average {facts['load_average_start']} "
             f"at start, {load_end} at end, git {facts['git']}.", "",
             "### Filtered search, one partition in one process", "",
             "The planner is `shard_node.query.run_query` (filter from the roaring postings, exact size, allowed "
             "set and rows cached per filter and partition version; then exact scan or post-filtered HNSW). "
             "The three plans are the same call with the plan forced: exact scan of the cached allowed rows "
             "(one gemv), post-filtered HNSW sized by the exact cardinality (k / selectivity x 2, deeper when "
             "short), and the graph's filtered walk (hnswlib's search with the allowed set's mask checked in C per "
             "visited node; before 2026-12-07 a Python callback). Brute force is a bare numpy scan of the allowed "
             "rows (gathered per query): "
             "\"pays\" evaluates the allowed set from the same payload index on every query, \"given\" gets it "
             "for free. \"short\" counts queries answered with fewer than k hits although k qualified.", ""]
    for corpus, rows in tables:
        lines += table(corpus, rows, len(corpus.queries))
    if cl:
        plain = cl["not"]["plain"]
        lines += ["### NOT and filters through the cluster (3 shards, single queries, gRPC, real vectors)", "",
                  "The excluded vector is 0.7 x query + 0.3 x another query, so the exclusion eats the query's top; "
                  "the threshold form's similarity is set per query to exclude about 50 documents. The kinds run "
                  f"interleaved query by query in a rotating order, {ROUNDS} rounds, each kind's best round counts. "
                  "The rank form's exact local top-50 narrows its candidates through each partition's int8 scan "
                  "sketch (shard_node/sketch.py) and rescores them.", "",
                  "| query | q/s | cost vs plain |", "| --- | ---: | ---: |"]
        for name, qps in cl["not"].items():
            lines.append(f"| {name} | {qps:.0f} | {plain / qps:.2f}x |")
        m = cl["mrr"]
        lines += ["", f"### MRR@10 on {cl['mrr_queries']} dev queries whose target is among the documents "
                  "(known-item: the package whose summary is the query; real vectors)", "",
                  "| ranking | MRR@10 |", "| --- | ---: |",
                  f"| BM25 alone (`text_en`, SQLite FTS5, Porter stemming) | {m['bm25']:.3f} |",
                  f"| vector alone ({DEMO_MODEL}) | {m['vector']:.3f} |",
                  f"| hybrid RRF, equal weights | {m['hybrid']:.3f} |", ""]
    lines += [END]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the measurements and write the section."""
    args = parse_args(argv)
    facts = machine_facts(REPO)
    rows_q = dev_queries(max(args.queries, args.mrr_queries, args.not_queries))
    texts = [r["query"] for r in rows_q[:args.queries]]
    real = real_corpus(texts)
    tables = []
    with threadpool_limits(limits=1, user_api="blas"):
        tables.append((real, filtered_table(real)))
        if not args.skip_standin:
            standin = standin_corpus(args.docs, texts)
            tables.append((standin, filtered_table(standin)))
    cl = {}
    if not args.skip_cluster:
        ids = {d["id"] for d in real.docs}
        mrr_rows = [r for r in rows_q if r["target"] in ids][:args.mrr_queries]
        cl = cluster_figures(real, mrr_rows, embedded_queries([r["query"] for r in mrr_rows]), args.not_queries)
    write_section(render(args, tables, cl, facts, load_average()), args.out, BEGIN, END)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
