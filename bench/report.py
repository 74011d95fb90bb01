"""Turns measurements into comparisons, a BENCHMARKS.md section, a recall/QPS plot and results.json."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.data import DataSpec
from bench.measure import CurvePoint, Ingest, Latency, qps_at_recall

BEGIN = "<!-- bench:cluster:begin -->"
END = "<!-- bench:cluster:end -->"
FILE_HEADER = ("# Benchmarks\n\nMeasured figures of Shoal. Each section is written by a harness; "
               "re-run it rather than editing the numbers by hand.\n")
# The issue's targets, and the configuration they are stated for.
THROUGHPUT_TARGET = 0.5
P50_TARGET_MS = 3.0
TARGET_LATENCY_EF = 128
TARGET_N, TARGET_DIM, TARGET_SHARDS = 100_000, 384, 4
SHOAL, HNSWLIB, BRUTE = "shoal", "hnswlib", "brute"
# Latency floors of the path a Shoal query takes: one empty gRPC hop, and one shard called directly.
RPC_FLOOR, ONE_SHARD = "rpc_floor", "one_shard"


@dataclass
class Results:
    """Everything one run measured, keyed by role (SHOAL, HNSWLIB, BRUTE)."""

    command: str
    machine: dict[str, Any]
    data: DataSpec
    shards: int
    m: int
    ef_construction: int
    ef_search_default: int
    k: int
    batch: int
    ingest_batch: int
    threads: int
    repeats: int
    names: dict[str, str] = field(default_factory=dict)
    curves: dict[str, list[CurvePoint]] = field(default_factory=dict)
    latency: dict[str, list[Latency]] = field(default_factory=dict)
    ingest: dict[str, Ingest] = field(default_factory=dict)
    phases_s: dict[str, float] = field(default_factory=dict)


def equal_ef_ratios(r: Results) -> list[dict[str, Any]]:
    """Shoal QPS / hnswlib QPS at each ef both were measured at, with both recalls."""
    hnsw = {p.ef: p for p in r.curves.get(HNSWLIB, [])}
    return [{"ef": s.ef, "shoal_recall": s.recall, "hnswlib_recall": hnsw[s.ef].recall, "shoal_qps": s.qps,
             "hnswlib_qps": hnsw[s.ef].qps, "ratio": s.qps / hnsw[s.ef].qps}
            for s in r.curves.get(SHOAL, []) if s.ef in hnsw]


def equal_recall_ratios(r: Results) -> list[dict[str, Any]]:
    """Shoal QPS / hnswlib QPS at Shoal's recall, hnswlib's curve interpolated; None outside its range."""
    out = []
    for s in r.curves.get(SHOAL, []):
        h = qps_at_recall(r.curves.get(HNSWLIB, []), s.recall)
        out.append({"ef": s.ef, "recall": s.recall, "shoal_qps": s.qps, "hnswlib_qps": h,
                    "ratio": None if h is None else s.qps / h})
    return out


def latency_ratios(r: Results) -> list[dict[str, Any]]:
    """Shoal p50 / hnswlib p50 (and p99) at each ef both were timed at."""
    hnsw = {x.ef: x for x in r.latency.get(HNSWLIB, [])}
    return [{"ef": s.ef, "shoal_p50_ms": s.p50_ms, "hnswlib_p50_ms": hnsw[s.ef].p50_ms,
             "p50_ratio": s.p50_ms / hnsw[s.ef].p50_ms, "p99_ratio": s.p99_ms / hnsw[s.ef].p99_ms}
            for s in r.latency.get(SHOAL, []) if s.ef in hnsw]


def ingest_ratio(r: Results) -> float | None:
    """Shoal ingest rate / hnswlib ingest rate."""
    if SHOAL not in r.ingest or HNSWLIB not in r.ingest:
        return None
    return r.ingest[SHOAL].rate / r.ingest[HNSWLIB].rate


def is_target_config(r: Results) -> bool:
    """Whether this run is at the size the targets are stated for."""
    return r.data.n >= TARGET_N and r.data.dim == TARGET_DIM and r.shards == TARGET_SHARDS


def judge_targets(r: Results) -> dict[str, Any]:
    """Whether each target was met, with the figures that decide it."""
    comparable = [x for x in equal_recall_ratios(r) if x["ratio"] is not None]
    passed = [x for x in comparable if x["ratio"] >= THROUGHPUT_TARGET]
    if not comparable:
        tp_verdict = "not judged (no Shoal recall level falls inside hnswlib's measured recall range)"
    elif len(passed) == len(comparable):
        tp_verdict = "met"
    elif passed:
        tp_verdict = f"partly met ({len(passed)} of {len(comparable)} recall levels)"
    else:
        tp_verdict = "not met"
    lat = next((x for x in r.latency.get(SHOAL, []) if x.ef == TARGET_LATENCY_EF), None)
    if lat is None:
        p50_verdict = f"not judged (no single-query run at ef={TARGET_LATENCY_EF})"
    else:
        p50_verdict = "met" if lat.p50_ms <= P50_TARGET_MS else "not met"
    return {
        "target_config": is_target_config(r),
        "throughput": {"target_ratio": THROUGHPUT_TARGET, "verdict": tp_verdict,
                       "min_ratio": min((x["ratio"] for x in comparable), default=None),
                       "max_ratio": max((x["ratio"] for x in comparable), default=None),
                       "points": comparable},
        "p50": {"target_ms": P50_TARGET_MS, "ef": TARGET_LATENCY_EF, "verdict": p50_verdict,
                "p50_ms": None if lat is None else lat.p50_ms},
    }


def results_json(r: Results) -> dict[str, Any]:
    """Everything, as plain JSON values."""
    return {
        "command": r.command, "machine": r.machine, "data": r.data.to_dict(),
        "data_description": r.data.describe(),
        "setup": {"shards": r.shards, "m": r.m, "ef_construction": r.ef_construction,
                  "ef_search_default": r.ef_search_default, "k": r.k, "search_batch": r.batch,
                  "ingest_batch": r.ingest_batch, "hnswlib_threads": r.threads, "search_repeats": r.repeats},
        "systems": r.names,
        "curves": {role: [p.to_dict() for p in pts] for role, pts in r.curves.items()},
        "latency": {role: [x.to_dict() for x in xs] for role, xs in r.latency.items()},
        "ingest": {role: x.to_dict() for role, x in r.ingest.items()},
        "ratios": {"equal_ef": equal_ef_ratios(r), "equal_recall": equal_recall_ratios(r),
                   "latency": latency_ratios(r), "ingest": ingest_ratio(r)},
        "targets": judge_targets(r),
        "phases_s": r.phases_s,
    }


def write_json(r: Results, path: Path) -> None:
    """Dump results.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results_json(r), indent=2) + "\n")


def plot_curves(r: Results, path: Path) -> None:
    """recall@k (x) against queries/s (y, log) for Shoal and hnswlib, ef marked; brute force as a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for role, style in ((SHOAL, "o-"), (HNSWLIB, "s--")):
        pts = r.curves.get(role, [])
        if not pts:
            continue
        ax.plot([p.recall for p in pts], [p.qps for p in pts], style, label=r.names[role])
        for p in pts:
            ax.annotate(f"ef={p.ef}", (p.recall, p.qps), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for p in r.curves.get(BRUTE, []):
        ax.plot([p.recall], [p.qps], "k*", markersize=12, label=r.names[BRUTE])
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{r.k}")
    ax.set_ylabel("queries/s (batched, log scale)")
    ax.set_title(f"{r.data.n:,} x {r.data.dim}, cosine, M={r.m}, ef_construction={r.ef_construction}, "
                 f"{r.machine.get('nproc')} CPUs", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(x: float | None, spec: str = ".2f") -> str:
    """A number, or an em dash when absent."""
    return "—" if x is None else format(x, spec)


def _curve_table(r: Results) -> list[str]:
    """system | ef | recall | QPS | ratio rows."""
    rows = [f"| system | ef | recall@{r.k} | batched QPS | Shoal / hnswlib QPS at this ef |",
            "| --- | ---: | ---: | ---: | ---: |"]
    ratio = {x["ef"]: x["ratio"] for x in equal_ef_ratios(r)}
    for role in (SHOAL, HNSWLIB):
        for p in r.curves.get(role, []):
            cell = _fmt(ratio.get(p.ef), ".2f") if role == SHOAL else ""
            rows.append(f"| {r.names[role]} | {p.ef} | {p.recall:.4f} | {p.qps:,.0f} | {cell} |")
    for p in r.curves.get(BRUTE, []):
        rows.append(f"| {r.names[BRUTE]} | exact | {p.recall:.4f} | {p.qps:,.0f} | |")
    return rows


def _recall_table(r: Results) -> list[str]:
    """Shoal against hnswlib's curve interpolated at Shoal's recall."""
    rows = [f"| Shoal ef | Shoal recall@{r.k} | Shoal QPS | hnswlib QPS at that recall | ratio |",
            "| ---: | ---: | ---: | ---: | ---: |"]
    for x in equal_recall_ratios(r):
        h = "outside hnswlib's range" if x["hnswlib_qps"] is None else f"{x['hnswlib_qps']:,.0f}"
        rows.append(f"| {x['ef']} | {x['recall']:.4f} | {x['shoal_qps']:,.0f} | {h} | {_fmt(x['ratio'])} |")
    return rows


def _latency_table(r: Results) -> list[str]:
    """p50/p99 of one-at-a-time queries."""
    rows = ["| system | ef | queries | p50 ms | p99 ms | mean ms | max ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for role in (SHOAL, HNSWLIB, BRUTE, ONE_SHARD, RPC_FLOOR):
        for x in r.latency.get(role, []):
            ef = {BRUTE: "exact", RPC_FLOOR: "-"}.get(role, str(x.ef))
            rows.append(f"| {r.names[role]} | {ef} | {x.queries:,} | {x.p50_ms:.3f} | {x.p99_ms:.3f} | "
                        f"{x.mean_ms:.3f} | {x.max_ms:.3f} |")
    for x in latency_ratios(r):
        rows.append(f"\nShoal / hnswlib at ef={x['ef']}: p50 {x['p50_ratio']:.1f}x "
                    f"({x['shoal_p50_ms']:.3f} ms vs {x['hnswlib_p50_ms']:.3f} ms), p99 {x['p99_ratio']:.1f}x.")
    if RPC_FLOOR in r.latency:
        rows.append("\nA Shoal query is one gRPC hop from the client to the coordinator plus a fan-out of one hop to "
                    "every shard; the last two rows measure those hops alone on this machine, so the share of "
                    "Shoal's latency that is transport (rather than search) can be read off the table.")
    return rows


def _ingest_table(r: Results) -> list[str]:
    """Vectors/s of building the index."""
    rows = ["| system | vectors | batch | seconds | vectors/s |", "| --- | ---: | ---: | ---: | ---: |"]
    for role in (SHOAL, HNSWLIB):
        if role in r.ingest:
            x = r.ingest[role]
            rows.append(f"| {r.names[role]} | {x.vectors:,} | {x.batch:,} | {x.seconds:.1f} | {x.rate:,.0f} |")
    ratio = ingest_ratio(r)
    if ratio is not None:
        rows.append(f"\nShoal / hnswlib ingest rate: {ratio:.2f}.")
    return rows


def _target_lines(r: Results) -> list[str]:
    """One line per target, with the deciding figures."""
    t = judge_targets(r)
    tp, p50 = t["throughput"], t["p50"]
    scope = "" if t["target_config"] else (
        f" — this run is {r.data.n:,} x {r.data.dim} on {r.shards} shards, not the stated "
        f"{TARGET_N:,} x {TARGET_DIM} on {TARGET_SHARDS}, so this is indicative only")
    pts = ", ".join(f"{x['ratio']:.2f} at recall {x['recall']:.3f} (Shoal ef={x['ef']})" for x in tp["points"])
    return [
        f"- Batched throughput through Shoal >= {THROUGHPUT_TARGET:.0%} of in-process hnswlib at equal recall: "
        f"**{tp['verdict']}**{': ' + pts if pts else ''}{scope}.",
        f"- Single-query p50 <= {P50_TARGET_MS:g} ms at {TARGET_N // 1000}k x {TARGET_DIM} on {TARGET_SHARDS} "
        f"shards (ef={TARGET_LATENCY_EF}): **{p50['verdict']}** (p50 {_fmt(p50['p50_ms'], '.3f')} ms){scope}.",
    ]


def _setup_lines(r: Results) -> list[str]:
    """How each system was driven and timed, as bullets."""
    return [
        f"- One collection, {r.shards} shards, HNSW M={r.m}, ef_construction={r.ef_construction} for both Shoal "
        f"and hnswlib; k={r.k}; both ingest in batches of {r.ingest_batch:,}.",
        "- Shoal: started by `shoal.serve.LocalCluster` on loopback, reached through `shoal.Client`; batched "
        f"search is `search_batch(..., with_payload=False)` with {r.batch} queries per call, one call at a time; "
        "single-query latency is `client.search` one query at a time.",
        f"- hnswlib: one `hnswlib.Index` over all vectors in this process, num_threads={r.threads} for ingest and "
        "batched calls, 1 for single queries. Its ef values without a Shoal counterpart stretch its curve to "
        "Shoal's recall range.",
        "- Brute force: a float32 numpy matrix product and top-k per batch (BLAS on every core); its batched run "
        "is also the ground truth.",
        "- Timings cover only the calls into each system (not id parsing or progress bars). Each curve starts with "
        f"an untimed warm-up batch; each ef is timed over {r.repeats} full passes of the queries and the fastest "
        "counts (the same for every system); each latency run starts with untimed warm-up queries.",
        "- hnswlib and brute force are measured before the cluster starts, so its idle processes do not compete "
        "with them.",
    ]


def render_section(r: Results, plot: Path, out: Path) -> str:
    """The markdown between (and including) the cluster markers."""
    m = r.machine
    v = m["versions"]
    try:
        plot_ref = os.path.relpath(plot, out.parent)
    except ValueError:
        plot_ref = str(plot)
    total = sum(r.phases_s.values())
    lines = [
        BEGIN,
        "## Cluster: Shoal vs in-process hnswlib vs brute force",
        "",
        f"Command: `{r.command}` (git {m.get('git') or 'unknown'}; whole run {total / 60:.1f} min: "
        + ", ".join(f"{name} {s:.0f} s" for name, s in r.phases_s.items()) + ").",
        "",
        f"Machine: {m['nproc']} CPUs (nproc), {m['ram_gib']} GiB RAM, CPU `{m['cpu_model']}`, {m['os']}; "
        f"Python {m['python']}, hnswlib {v['hnswlib']}, ray {v['ray']}, numpy {v['numpy']}, grpcio {v['grpcio']}. "
        f"Load average (1/5/15 min) at start {m['load_average_start']}, at end {m.get('load_average_end')}. "
        "Everything — benchmark client, coordinator, Ray and the shard actors — shares these CPUs.",
        "",
        f"Data: {r.data.describe()}",
        "",
        "Setup:",
        "",
        *_setup_lines(r),
        "",
        "### Recall and batched throughput",
        "",
        *_curve_table(r),
        "",
        "Shoal searches every shard with the given ef and merges the per-shard top-k, so at equal ef it "
        "examines more candidates than one index does and reaches higher recall; the fair comparison is at "
        "equal recall:",
        "",
        *_recall_table(r),
        "",
        f"![recall@{r.k} vs queries/s]({plot_ref})",
        "",
        "### Single-query latency",
        "",
        *_latency_table(r),
        "",
        "### Ingest",
        "",
        *_ingest_table(r),
        "",
        "### Targets",
        "",
        *_target_lines(r),
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(section: str, path: Path, begin: str = BEGIN, end_marker: str = END) -> None:
    """Put the section into path between the markers, replacing only that region (or appending it)."""
    if path.exists():
        text = path.read_text()
        start, end = text.find(begin), text.find(end_marker)
        if start != -1 and end > start:
            text = text[:start] + section.rstrip("\n") + text[end + len(end_marker):]
        else:
            text = text.rstrip("\n") + "\n\n" + section
    else:
        text = FILE_HEADER + "\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
