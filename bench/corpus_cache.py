"""Embed the Debian corpus once, in resumable chunks, so retrieval benchmarks can reuse the vectors.

Embedding 63k long descriptions with a CPU model takes hours on two cores, so the work is cut into
chunks that are written as they finish; a stopped run picks up where it left off. The order puts the
documents needed first at the front (those with a Korean description: the demo sample and the
retrieval benchmark's corpus), so a partial cache already serves them.

    python -m bench.corpus_cache [--model multilingual-e5-small@1.0.0] [--cache-dir DIR] [--limit N] [--threads N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "debian" / "corpus.jsonl.gz"
QUERIES = ROOT / "data" / "debian" / "queries_dev.jsonl.gz"
DEFAULT_CACHE = ROOT / ".cache" / "corpus-embeddings"
CHUNK = 256                 # documents per cached file
DEV_SAMPLE = 2000           # dev queries scored by the retrieval reports
DEV_SEED = 0


def load_corpus() -> list[dict]:
    """Every corpus document, in file order."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def dev_sample(n: int = DEV_SAMPLE, seed: int = DEV_SEED) -> list[dict]:
    """A fixed, seeded sample of the dev queries (query, target)."""
    with gzip.open(QUERIES, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    picks = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i] for i in sorted(picks)]


def priority_order(docs: list[dict]) -> list[int]:
    """Document positions: those with a Korean description (the demo and the benchmark corpus) first,
    then the targets of a random dev sample, then section python, then the rest."""
    targets = {q["target"] for q in dev_sample()}
    order = [i for i, d in enumerate(docs) if d.get("text_ko")]
    order += [i for i, d in enumerate(docs) if d["id"] in targets and not d.get("text_ko")]
    taken = set(order)
    order += [i for i, d in enumerate(docs) if d["section"] == "python" and i not in taken]
    taken = set(order)
    return order + [i for i in range(len(docs)) if i not in taken]


def chunk_path(cache_dir: Path, model: str, index: int) -> Path:
    """Where chunk `index` of `model`'s embeddings lives."""
    return cache_dir / model.replace("/", "_") / f"chunk-{index:05d}.npz"


def iter_cached(cache_dir: Path, model: str) -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids, vectors) for every finished chunk, in order."""
    folder = cache_dir / model.replace("/", "_")
    for path in sorted(folder.glob("chunk-*.npz")):
        with np.load(path, allow_pickle=False) as z:
            yield [str(x) for x in z["ids"]], z["vectors"]


def load_cached(cache_dir: Path, model: str) -> tuple[list[str], np.ndarray]:
    """All cached (ids, vectors) for `model`, concatenated."""
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for chunk_ids, vectors in iter_cached(cache_dir, model):
        ids.extend(chunk_ids)
        parts.append(vectors)
    if not parts:
        return [], np.zeros((0, 0), dtype=np.float32)
    return ids, np.concatenate(parts)


def fill_cache(encode: Callable[[list[str]], np.ndarray], model: str, cache_dir: Path, limit: int | None) -> int:
    """Embed every missing chunk (up to `limit` documents in all); return how many documents are cached."""
    docs = load_corpus()
    order = priority_order(docs)[:limit]
    chunks = [order[i:i + CHUNK] for i in range(0, len(order), CHUNK)]
    started = time.monotonic()
    done_docs = 0
    for index, positions in enumerate(chunks):
        path = chunk_path(cache_dir, model, index)
        if path.exists():
            done_docs += len(positions)
            continue
        vectors = np.asarray(encode([docs[p]["text_en"] for p in positions]), dtype=np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=np.array([docs[p]["id"] for p in positions]), vectors=vectors)
        tmp.rename(path)
        done_docs += len(positions)
        rate = done_docs / max(time.monotonic() - started, 1e-9)
        print(f"[{model}] {done_docs}/{len(order)} documents, {rate:.1f}/s", file=sys.stderr, flush=True)
    return done_docs


def export_demo(cache_dir: Path, out: Path) -> int:
    """Write the demo sample's cached vectors, int8-quantised, for `make run`; returns how many."""
    from shoal.demo import DEMO_MODEL, in_demo_sample, quantise

    wanted = {d["id"] for d in load_corpus() if in_demo_sample(d)}
    ids, vectors = load_cached(cache_dir, DEMO_MODEL)
    rows = [i for i, doc_id in enumerate(ids) if doc_id in wanted]
    missing = len(wanted) - len(rows)
    if missing:
        raise SystemExit(f"{missing} demo documents are not embedded yet; run python -m bench.corpus_cache first")
    q, scale = quantise(vectors[rows])
    np.savez_compressed(out, ids=np.array([ids[i] for i in rows]), q=q, scale=scale, model=np.array(DEMO_MODEL))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="multilingual-e5-small@1.0.0")
    ap.add_argument("--threads", type=int, default=0, help="encoder threads (0 = the library's choice; 1 on a busy "
                                                           "shared machine)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--export-demo", type=Path, default=None, help="write the demo vectors file and stop")
    args = ap.parse_args(argv)
    if args.export_demo:
        print(f"wrote {export_demo(args.cache_dir, args.export_demo)} vectors to {args.export_demo}")
        return 0
    from embedder.catalog import build_registry  # heavy: only for the command line
    from embedder.settings import EmbedderSettings

    encoder = build_registry(EmbedderSettings(threads=args.threads)).load(args.model)
    fill_cache(lambda texts: encoder.embed_texts(texts, kind="passage"), args.model, args.cache_dir, args.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
