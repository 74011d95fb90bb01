"""Embed the Debian corpus once, in resumable chunks, so retrieval benchmarks can reuse the vectors.

Embedding 63k long descriptions with a CPU model takes hours on two cores, so the work is cut into
chunks that are written as they finish; a stopped run picks up where it left off. The order puts the
documents needed first at the front (those with a Korean description: the demo sample and the
retrieval benchmark's corpus), so a partial cache already serves them.

    python -m bench.corpus_cache [--model multilingual-e5-small@1.2.0] [--field text_en|text_ko] [--cache-dir DIR]
                                 [--limit N] [--threads N]
    python -m bench.corpus_cache --export-demo data/debian/demo_vectors.npz

Each field has its own cache folder (text_en, the English description every package has, and text_ko, the
Korean description 4,423 packages have).
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

from shoal.demo import DEMO_MODEL

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "debian" / "corpus.jsonl.gz"
QUERIES = ROOT / "data" / "debian" / "queries_dev.jsonl.gz"
DEFAULT_CACHE = ROOT / ".cache" / "corpus-embeddings"
CHUNK = 256                 # documents per cached file
FIELDS = ("text_en", "text_ko")
DEMO_FIELDS = ("text_en", "text_ko")  # the demo's entries per document, in this order
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


def cache_folder(cache_dir: Path, model: str, field: str = "text_en") -> Path:
    """The folder of `model`'s embeddings of one text field (text_en keeps the plain model name)."""
    name = model.replace("/", "_")
    return cache_dir / (name if field == "text_en" else f"{name}.{field}")


def chunk_path(cache_dir: Path, model: str, index: int, field: str = "text_en") -> Path:
    """Where chunk `index` of `model`'s embeddings of `field` lives."""
    return cache_folder(cache_dir, model, field) / f"chunk-{index:05d}.npz"


def iter_cached(cache_dir: Path, model: str, field: str = "text_en") -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids, vectors) for every finished chunk, in order."""
    folder = cache_folder(cache_dir, model, field)
    for path in sorted(folder.glob("chunk-*.npz")):
        with np.load(path, allow_pickle=False) as z:
            yield [str(x) for x in z["ids"]], z["vectors"]


def load_cached(cache_dir: Path, model: str, field: str = "text_en") -> tuple[list[str], np.ndarray]:
    """All cached (ids, vectors) for `model` and `field`, concatenated."""
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for chunk_ids, vectors in iter_cached(cache_dir, model, field):
        ids.extend(chunk_ids)
        parts.append(vectors)
    if not parts:
        return [], np.zeros((0, 0), dtype=np.float32)
    return ids, np.concatenate(parts)


def fitted(encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
    """Vectors of texts; a text longer than the model reads is cut to a word prefix it accepts (halving the
    words until it does), so a vector depends on its own text only."""
    from embedder.models.base import UnsupportedInput

    try:
        return np.asarray(encode(texts), dtype=np.float32)
    except UnsupportedInput:
        rows = []
        for text in texts:
            words = text.split()
            while True:
                try:
                    rows.append(np.asarray(encode([text]), dtype=np.float32)[0])
                    break
                except UnsupportedInput:
                    words = words[:len(words) // 2]
                    text = " ".join(words)
        return np.stack(rows)


def fill_cache(encode: Callable[[list[str]], np.ndarray], model: str, cache_dir: Path, limit: int | None,
               field: str = "text_en") -> int:
    """Embed every missing chunk of `field` (up to `limit` documents in all); return how many are cached."""
    docs = load_corpus()
    order = [p for p in priority_order(docs) if docs[p].get(field)][:limit]
    chunks = [order[i:i + CHUNK] for i in range(0, len(order), CHUNK)]
    started = time.monotonic()
    done_docs = fresh = 0
    for index, positions in enumerate(chunks):
        path = chunk_path(cache_dir, model, index, field)
        if path.exists():
            done_docs += len(positions)
            continue
        vectors = fitted(encode, [docs[p][field] for p in positions])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=np.array([docs[p]["id"] for p in positions]), vectors=vectors)
        tmp.rename(path)
        done_docs += len(positions)
        fresh += len(positions)
        elapsed = max(time.monotonic() - started, 1e-9)
        rate = fresh / elapsed                      # this run's own pace, not counting chunks cached before
        eta = (len(order) - done_docs) / rate / 60 if rate else 0.0
        print(f"[{model} {field}] {done_docs}/{len(order)} documents, {rate:.1f}/s, {elapsed / 60:.1f} min, "
              f"ETA {eta:.1f} min", file=sys.stderr, flush=True)
    return done_docs


def export_demo(cache_dir: Path, out: Path) -> int:
    """Write every document's cached entries (English, then Korean where it has one), int8-quantised, for
    `make run`; returns how many documents."""
    from shoal.demo import quantise

    docs = load_corpus()
    cached: dict[str, dict[str, np.ndarray]] = {}
    for f in DEMO_FIELDS:
        ids, vectors = load_cached(cache_dir, DEMO_MODEL, f)
        cached[f] = dict(zip(ids, vectors, strict=True))
    rows: list[np.ndarray] = []
    owner: list[int] = []
    for pos, doc in enumerate(docs):
        for f in DEMO_FIELDS:
            if not doc.get(f):
                continue
            if doc["id"] not in cached[f]:
                raise SystemExit(f"{doc['id']}'s {f} is not embedded yet; run python -m bench.corpus_cache --field {f}")
            rows.append(cached[f][doc["id"]])
            owner.append(pos)
    q, scale = quantise(np.stack(rows))
    np.savez_compressed(out, ids=np.array([d["id"] for d in docs]), q=q, scale=scale,
                        owner=np.asarray(owner, dtype=np.int32), model=np.array(DEMO_MODEL))
    return len(docs)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEMO_MODEL)
    ap.add_argument("--threads", type=int, default=0, help="encoder threads (0 = the library's choice; 1 on a busy "
                                                           "shared machine)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--field", choices=FIELDS, default="text_en", help="which text of each document to embed")
    ap.add_argument("--export-demo", type=Path, default=None, help="write the demo vectors file and stop")
    args = ap.parse_args(argv)
    if args.export_demo:
        print(f"wrote {export_demo(args.cache_dir, args.export_demo)} vectors to {args.export_demo}")
        return 0
    from embedder.catalog import build_registry  # heavy: only for the command line
    from embedder.settings import EmbedderSettings

    encoder = build_registry(EmbedderSettings(threads=args.threads)).load(args.model)
    fill_cache(lambda texts: encoder.embed_texts(texts, kind="passage"), args.model, args.cache_dir, args.limit,
               args.field)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
