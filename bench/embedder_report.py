"""Write the embedder section of BENCHMARKS.md from bench/out/{retrieval,emoji_cluster,embedder_speed}.json.

    python -m bench.embedder_report
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.machine import machine_facts

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- bench:embedder:begin -->", "<!-- bench:embedder:end -->"


def _load(name: str) -> dict | None:
    path = OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def retrieval_section(data: dict) -> list[str]:
    """Known-item retrieval table."""
    rows = data["results"]
    lines = [
        "### Known-item retrieval through the cluster (Debian corpus)",
        "",
        f"Command: `{data['command'].strip()}`. Corpus: the English descriptions of the "
        f"{rows[0]['documents']:,} packages that also have a Korean description, each model's vectors in a "
        "collection bound to it (3 shards). English queries: a seeded sample of dev queries whose target is in that "
        "corpus (a package's one-line summary, not in the corpus). Korean queries: a seeded sample of the Korean "
        "descriptions, each looking for its own package's English description. Queries travel as text through the "
        "coordinator and are embedded by the embedder service.",
        "",
        "| model | English MRR@10 | English recall@10 | queries | Korean→English MRR@10 | Korean→English recall@10 "
        "| queries |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        en, ko = r["english"], r["korean_to_english"]
        lines.append(f"| `{r['model']}` | {en['mrr@10']:.3f} | {en['recall@10']:.3f} | {en['queries']:,} | "
                     f"{ko['mrr@10']:.3f} | {ko['recall@10']:.3f} | {ko['queries']:,} |")
    for r in rows:
        by = r.get("english_mrr_by_ranking")
        if by:
            lines += ["", f"Hybrid search on the same corpus and English queries (`{r['model']}` vectors; BM25 from "
                          "the shards' SQLite FTS5 index of `text_en`; reciprocal rank fusion, equal weights):",
                      "", "| ranking | MRR@10 |", "| --- | ---: |",
                      f"| BM25 alone | {by['bm25']:.3f} |", f"| vector alone | {by['vector']:.3f} |",
                      f"| hybrid (RRF) | {by['hybrid_rrf']:.3f} |"]
    return lines + [""]


def emoji_section(data: dict) -> list[str]:
    """Text-to-image and image-to-image figures."""
    t, i = data["text_to_image"], data["image_to_image"]
    return [
        "### Images through the cluster (1,151 rendered emoji)",
        "",
        f"Command: `make emoji && {data['command'].strip()}`. Text to image: collection bound to "
        "`conse-e5-efficientnet@0.1.0`; each emoji's lower-case Unicode name is the query for its own image "
        "(one right answer among 1,151; chance of recall@5 is 0.004). Held-out = the half of the emoji not used "
        "to tune ConSE. Image to image: collection bound to `efficientnet-lite0@0.1.0`; an image is the query and a "
        "neighbour counts when its name shares a content word with the query's.",
        "",
        "| text → image | recall@1 | recall@5 | held-out recall@1 | held-out recall@5 |",
        "| --- | --- | --- | --- | --- |",
        f"| ConSE (tuned) | {t['r@1']:.3f} | {t['r@5']:.3f} | {t['held_out_r@1']:.3f} | {t['held_out_r@5']:.3f} |",
        "",
        "| image → image | nearest shares a word | top-5 share a word | chance |",
        "| --- | --- | --- | --- |",
        f"| EfficientNet-Lite0 features | {i['at1']:.3f} | {i['mean_at5']:.3f} | {i['chance']:.3f} |",
        "",
    ]


def speed_section(data: dict) -> list[str]:
    """Embedder throughput table."""
    lines = [
        "### Embedder throughput over gRPC",
        "",
        f"Command: `{data['command'].strip()}`. Single: one item per call, one call at a time. Batch: 64 items per "
        "call. Concurrent: 32 clients each sending one item at once (dynamic batching joins them). Load average "
        f"(1 min) at the start: {data.get('machine', {}).get('load_average_start', ['?'])[0]} on "
        f"{data.get('machine', {}).get('nproc', '?')} CPUs.",
        "",
        "| model | input | single items/s | single p50 ms | batch-64 items/s | concurrent items/s "
        "| concurrent p50 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in data["results"]:
        s, b, c = r["single"], r["batch"], r["concurrent"]
        lines.append(f"| `{r['model']}` | {r['input']} | {s['items_per_s']:.1f} | {s['p50_ms']:.0f} | "
                     f"{b['items_per_s']:.1f} | {c['items_per_s']:.1f} | {c['p50_ms']:.0f} |")
    return lines + [""]


def main() -> int:
    """Rewrite the section between the embedder markers."""
    facts = machine_facts(ROOT)
    parts = ["## Embedder and retrieval quality", "",
             f"Machine: {facts['nproc']} CPUs ({facts['cpu_model']}), {facts['ram_gib']} GiB, Python "
             f"{facts['python']}, git {facts['git']}. The quality figures do not depend on load; the throughput "
             "figures do, and the load average during their run is given with them.", ""]
    for name, render in (("retrieval.json", retrieval_section), ("emoji_cluster.json", emoji_section),
                         ("embedder_speed.json", speed_section)):
        data = _load(name)
        if data is not None:
            parts += render(data)
    section = "\n".join([BEGIN, *parts, END])
    text = BENCHMARKS.read_text()
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS.write_text(text)
    print(f"updated {BENCHMARKS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
