"""Turns measurements into comparisons, a BENCHMARKS.md section, a recall/QPS plot and results.json."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.concurrency import Concurrent
from bench.data import DataSpec
from bench.measure import CurvePoint, Ingest, Latency, qps_at_recall
from bench.memory import MIB, MemoryRun

BEGIN = "<!-- bench:cluster:begin -->"
END = "<!-- bench:cluster:end -->"
FILE_HEADER = ("# Benchmarks\n\nMeasured figures of Shoal. Each section is written by a harness; "
               "re-run it rather than editing the numbers by hand.\n")
# The issue's targets, and the configuration they are stated for.
FLOOR_TARGET = 1.5                 # single-query p50 / floor
BATCHED_TARGET, BATCHED_TARGET_SHARDS = 0.8, 2   # Shoal / hnswlib batched QPS at equal recall
CONCURRENT_TARGET = 0.5            # 16-client QPS / hnswlib single-thread QPS at equal recall
REPLICA_TARGET_MB = 10.0           # RSS of an idle shard replica beyond its data
MEMORY_TARGET_GB = 3.0             # all Shoal processes, 100 collections x 3 shards x 1,000 vectors
TARGET_N, TARGET_DIM = 100_000, 384
QUIET_LOAD = 1.0                   # 1-minute load average at the start above which a run is not taken as alone
HNSWLIB, HNSWLIB_1T, BRUTE, PGVECTOR = "hnswlib", "hnswlib_1t", "brute", "pgvector"
RPC_COORDINATOR = "rpc_coordinator"
T = TypeVar("T")


def shoal_role(shards: int) -> str:
    """Role of the Shoal collection with this many shards."""
    return f"shoal{shards}"


def rpc_node_role(shards: int) -> str:
    """Role of the empty RPC to a shard of that collection."""
    return f"rpc_node{shards}"


def partition_role(shards: int) -> str:
    """Role of one partition's in-process search for that shard count."""
    return f"partition{shards}"


@dataclass
class Results:
    """Everything one run measured, keyed by role (see the *_role helpers and the role constants)."""

    command: str
    machine: dict[str, Any]
    data: DataSpec
    shards: list[int]
    m: int
    ef_construction: int
    ef_search_default: int
    k: int
    batch: int
    ingest_batch: int
    threads: int
    passes: int
    clients: int
    client_queries: int
    concurrency_efs: list[int]
    floor_ef: int
    client_mode: str = "threads"
    names: dict[str, str] = field(default_factory=dict)
    curves: dict[str, list[CurvePoint]] = field(default_factory=dict)
    latency: dict[str, list[Latency]] = field(default_factory=dict)
    ingest: dict[str, Ingest] = field(default_factory=dict)
    concurrent: dict[str, list[Concurrent]] = field(default_factory=dict)
    memory: MemoryRun | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    phases_s: dict[str, float] = field(default_factory=dict)

    def latency_at(self, role: str, ef: int) -> Latency | None:
        """The single-query run of a role at an ef (ef 0 for systems without one)."""
        return next((x for x in self.latency.get(role, []) if x.ef == ef), None)

    def concurrent_at(self, role: str, ef: int) -> Concurrent | None:
        """The concurrent-client run of a role at an ef."""
        return next((x for x in self.concurrent.get(role, []) if x.ef == ef), None)


def matching(items: Sequence[T], recall: float, recall_of: Callable[[T], float | None],
             ef_of: Callable[[T], int]) -> tuple[T | None, bool]:
    """The cheapest (lowest-ef) item whose recall is at least `recall`, and True; when none reaches it, the
    item of highest recall and False (the comparison is then not at equal recall)."""
    scored = [x for x in items if recall_of(x) is not None]
    reaching = [x for x in scored if recall_of(x) >= recall]
    if reaching:
        return min(reaching, key=ef_of), True
    return (max(scored, key=recall_of), False) if scored else (None, False)


def equal_recall_batched(r: Results, shards: int) -> list[dict[str, Any]]:
    """Shoal QPS / hnswlib QPS at Shoal's recall, hnswlib's curve interpolated; None outside its range."""
    out = []
    for s in r.curves.get(shoal_role(shards), []):
        h = qps_at_recall(r.curves.get(HNSWLIB, []), s.recall)
        out.append({"ef": s.ef, "recall": s.recall, "shoal_qps": s.qps, "hnswlib_qps": h,
                    "ratio": None if h is None else s.qps / h})
    return out


def floor_rows(r: Results) -> list[dict[str, Any]]:
    """Per shard count: the floor's three parts, their sum, Shoal's p50 at the floor ef and the ratio."""
    out = []
    coord = r.latency_at(RPC_COORDINATOR, 0)
    for shards in r.shards:
        node, part = r.latency_at(rpc_node_role(shards), 0), r.latency_at(partition_role(shards), r.floor_ef)
        shoal = r.latency_at(shoal_role(shards), r.floor_ef)
        parts = [x.p50_ms for x in (coord, node, part) if x is not None]
        floor = sum(parts) if len(parts) == 3 else None
        out.append({"shards": shards, "client_coordinator_ms": coord and coord.p50_ms,
                    "coordinator_node_ms": node and node.p50_ms, "partition_ms": part and part.p50_ms,
                    "floor_ms": floor, "shoal_p50_ms": shoal and shoal.p50_ms,
                    "ratio": None if floor is None or shoal is None else shoal.p50_ms / floor})
    return out


def pgvector_single(r: Results) -> list[dict[str, Any]]:
    """Per shard count: Shoal's single query at the floor ef against pgvector's cheapest ef of at least its recall."""
    out = []
    for shards in r.shards:
        s = r.latency_at(shoal_role(shards), r.floor_ef)
        if s is None or s.recall is None:
            continue
        pg, equal = matching(r.latency.get(PGVECTOR, []), s.recall, lambda x: x.recall, lambda x: x.ef)
        out.append({"shards": shards, "ef": s.ef, "shoal_recall": s.recall, "shoal_p50_ms": s.p50_ms,
                    "shoal_p99_ms": s.p99_ms, "pg_ef": pg and pg.ef, "pg_recall": pg and pg.recall,
                    "pg_p50_ms": pg and pg.p50_ms, "pg_p99_ms": pg and pg.p99_ms, "equal_recall": equal,
                    "ratio": None if pg is None else s.p50_ms / pg.p50_ms})
    return out


def concurrency_rows(r: Results) -> list[dict[str, Any]]:
    """Per shard count: Shoal's concurrent QPS against pgvector's and hnswlib's one-thread QPS at its recall."""
    out = []
    for shards, ef in itertools.product(r.shards, r.concurrency_efs):
        s = r.concurrent_at(shoal_role(shards), ef)
        if s is None:
            continue
        pg, pg_equal = matching(r.concurrent.get(PGVECTOR, []), s.recall, lambda x: x.recall, lambda x: x.ef)
        h, h_equal = matching(r.curves.get(HNSWLIB_1T, []), s.recall, lambda x: x.recall, lambda x: x.ef)
        out.append({"shards": shards, "ef": s.ef, "recall": s.recall, "shoal_qps": s.qps,
                    "pg_ef": pg and pg.ef, "pg_recall": pg and pg.recall, "pg_qps": pg and pg.qps,
                    "pg_equal_recall": pg_equal, "pg_ratio": None if pg is None else s.qps / pg.qps,
                    "hnswlib_ef": h and h.ef, "hnswlib_recall": h and h.recall, "hnswlib_qps": h and h.qps,
                    "hnswlib_equal_recall": h_equal, "hnswlib_ratio": None if h is None else s.qps / h.qps})
    return out


def is_target_config(r: Results) -> bool:
    """Whether this run is at the size the targets are stated for."""
    return r.data.n >= TARGET_N and r.data.dim == TARGET_DIM


def _verdict(ok: bool | None) -> str:
    return "not judged (not measured)" if ok is None else ("met" if ok else "not met")


def share_verdict(passed: Sequence[bool]) -> str:
    """met / partly met (i of n recall levels) / not met, over the levels that could be compared."""
    if not passed:
        return "not judged (no Shoal recall level falls inside hnswlib's measured range)"
    if all(passed):
        return "met"
    return f"partly met ({sum(passed)} of {len(passed)} recall levels)" if any(passed) else "not met"


def judge_targets(r: Results) -> list[dict[str, Any]]:
    """Each target with its verdict and the figures that decide it."""
    out = []
    for x in floor_rows(r):
        ok = None if x["ratio"] is None else x["ratio"] <= FLOOR_TARGET
        out.append({"target": f"single-query p50 <= {FLOOR_TARGET}x the floor ({x['shards']} shards, "
                              f"ef={r.floor_ef})", "verdict": _verdict(ok),
                    "figures": f"{_fmt(x['shoal_p50_ms'], '.3f')} ms / {_fmt(x['floor_ms'], '.3f')} ms = "
                               f"{_fmt(x['ratio'])}x"})
    for x in pgvector_single(r):
        ok = x["equal_recall"] and x["ratio"] is not None and x["ratio"] < 1
        out.append({"target": f"single-query p50 below pgvector's at equal recall ({x['shards']} shards)",
                    "verdict": _verdict(ok) + ("" if x["equal_recall"] else " (pgvector never reached Shoal's "
                                                                             "recall; compared at its best)"),
                    "figures": f"Shoal {x['shoal_p50_ms']:.3f} ms at recall {x['shoal_recall']:.4f} vs pgvector "
                               f"{_fmt(x['pg_p50_ms'], '.3f')} ms at ef {x['pg_ef']} (recall "
                               f"{_fmt(x['pg_recall'], '.4f')})"})
    for x in concurrency_rows(r):
        ok = x["pg_equal_recall"] and x["pg_ratio"] is not None and x["pg_ratio"] > 1
        out.append({"target": f"{r.clients}-client QPS above pgvector's at equal recall ({x['shards']} shards, "
                              f"ef {x['ef']})",
                    "verdict": _verdict(ok), "figures": f"{x['shoal_qps']:,.0f} vs {_fmt(x['pg_qps'], ',.0f')} q/s "
                                                        f"(pgvector ef {x['pg_ef']}) = {_fmt(x['pg_ratio'])}x"})
        ok = None if x["hnswlib_ratio"] is None else x["hnswlib_equal_recall"] and x["hnswlib_ratio"] >= \
            CONCURRENT_TARGET
        out.append({"target": f"{r.clients}-client QPS >= {CONCURRENT_TARGET}x hnswlib's single-thread QPS at equal "
                              f"recall ({x['shards']} shards, ef {x['ef']})", "verdict": _verdict(ok),
                    "figures": f"{x['shoal_qps']:,.0f} vs {_fmt(x['hnswlib_qps'], ',.0f')} q/s (hnswlib ef "
                               f"{x['hnswlib_ef']}) = {_fmt(x['hnswlib_ratio'])}x"})
    for shards in r.shards:
        pts = [x for x in equal_recall_batched(r, shards) if x["ratio"] is not None]
        goal = f" >= {BATCHED_TARGET}x" if shards == BATCHED_TARGET_SHARDS else " (reported)"
        out.append({"target": f"batched QPS at equal recall vs in-process hnswlib{goal} ({shards} shards)",
                    "verdict": share_verdict([x["ratio"] >= BATCHED_TARGET for x in pts])
                    if shards == BATCHED_TARGET_SHARDS else "reported",
                    "figures": ", ".join(f"{x['ratio']:.2f} at recall {x['recall']:.4f} (ef {x['ef']})"
                                         for x in pts) or "—"})
    mem = r.memory
    if mem is not None:
        beyond = mem.per_replica_beyond_data()
        out.append({"target": f"idle shard replica <= {REPLICA_TARGET_MB:g} MB beyond its data",
                    "verdict": _verdict(None if beyond is None else beyond <= REPLICA_TARGET_MB * 1e6),
                    "figures": f"{_fmt(beyond and beyond / MIB, '.1f')} MiB"})
        final = mem.steps[-1].rss_bytes if mem.steps else None
        ok = None if final is None else mem.created >= mem.wanted and final <= MEMORY_TARGET_GB * 1e9
        out.append({"target": f"{mem.wanted} collections x {mem.shards} shards x {mem.vectors:,} vectors in <= "
                              f"{MEMORY_TARGET_GB:g} GB RSS", "verdict": _verdict(ok),
                    "figures": f"{mem.created} created, {_fmt(final and final / 2**30, '.2f')} GiB"})
    return out


def results_json(r: Results) -> dict[str, Any]:
    """Everything, as plain JSON values."""
    return {
        "command": r.command, "machine": r.machine, "data": r.data.to_dict(),
        "data_description": r.data.describe(),
        "setup": {"client_mode": r.client_mode, "shards": r.shards, "m": r.m, "ef_construction": r.ef_construction,
                  "ef_search_default": r.ef_search_default, "k": r.k, "search_batch": r.batch,
                  "ingest_batch": r.ingest_batch, "hnswlib_threads": r.threads, "passes": r.passes,
                  "clients": r.clients, "client_queries": r.client_queries, "concurrency_efs": r.concurrency_efs,
                  "floor_ef": r.floor_ef},
        "systems": r.names,
        "curves": {role: [p.to_dict() for p in pts] for role, pts in r.curves.items()},
        "latency": {role: [x.to_dict() for x in xs] for role, xs in r.latency.items()},
        "concurrent": {role: [x.to_dict() for x in xs] for role, xs in r.concurrent.items()},
        "ingest": {role: x.to_dict() for role, x in r.ingest.items()},
        "memory": None if r.memory is None else r.memory.to_dict(),
        "comparisons": {"equal_recall_batched": {s: equal_recall_batched(r, s) for s in r.shards},
                        "floor": floor_rows(r), "pgvector_single": pgvector_single(r),
                        "concurrency": concurrency_rows(r)},
        "targets": judge_targets(r), "notes": r.notes, "phases_s": r.phases_s,
    }


def write_json(r: Results, path: Path) -> None:
    """Dump results.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results_json(r), indent=2) + "\n")


def plot_curves(r: Results, path: Path) -> None:
    """recall@k (x) against batched queries/s (y, log) for Shoal and hnswlib, ef marked; brute force as a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    styles = [(shoal_role(s), "o-") for s in r.shards] + [(HNSWLIB, "s--"), (HNSWLIB_1T, "^:")]
    for role, style in styles:
        pts = sorted(r.curves.get(role, []), key=lambda p: p.ef)
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


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> list[str]:
    """Markdown table lines; `right` marks right-aligned (numeric) columns."""
    right = right or [i > 0 for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" if r else "---" for r in right) + " |",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def _curve_table(r: Results) -> list[str]:
    rows = []
    for role in [*(shoal_role(s) for s in r.shards), HNSWLIB, HNSWLIB_1T]:
        for p in sorted(r.curves.get(role, []), key=lambda p: p.ef):
            rows.append([r.names[role], p.ef, f"{p.recall:.4f}", f"{p.qps:,.0f}"])
    for p in r.curves.get(BRUTE, []):
        rows.append([r.names[BRUTE], "exact", f"{p.recall:.4f}", f"{p.qps:,.0f}"])
    return table(["system", "ef", f"recall@{r.k}", "batched QPS"], rows)


def _recall_table(r: Results) -> list[str]:
    rows = []
    for shards in r.shards:
        for x in equal_recall_batched(r, shards):
            h = "outside hnswlib's range" if x["hnswlib_qps"] is None else f"{x['hnswlib_qps']:,.0f}"
            rows.append([r.names[shoal_role(shards)], x["ef"], f"{x['recall']:.4f}", f"{x['shoal_qps']:,.0f}", h,
                         _fmt(x["ratio"])])
    return table(["system", "Shoal ef", f"recall@{r.k}", "Shoal QPS", "hnswlib QPS at that recall", "ratio"], rows)


def _latency_table(r: Results) -> list[str]:
    roles = [*(shoal_role(s) for s in r.shards), HNSWLIB, PGVECTOR, BRUTE, RPC_COORDINATOR,
             *(rpc_node_role(s) for s in r.shards), *(partition_role(s) for s in r.shards)]
    rows = []
    for role in roles:
        for x in r.latency.get(role, []):
            ef = {BRUTE: "exact"}.get(role, str(x.ef) if x.ef else "-")
            rows.append([r.names[role], ef, _fmt(x.recall, ".4f"), f"{x.queries:,}", f"{x.p50_ms:.3f}",
                         f"{x.p99_ms:.3f}", f"{x.mean_ms:.3f}", f"{x.max_ms:.3f}"])
    return table(["system", "ef", f"recall@{r.k}", "queries", "p50 ms", "p99 ms", "mean ms", "max ms"], rows)


def _floor_table(r: Results) -> list[str]:
    rows = [[x["shards"], _fmt(x["client_coordinator_ms"], ".3f"), _fmt(x["coordinator_node_ms"], ".3f"),
             _fmt(x["partition_ms"], ".3f"), _fmt(x["floor_ms"], ".3f"), _fmt(x["shoal_p50_ms"], ".3f"),
             _fmt(x["ratio"]) + "x"] for x in floor_rows(r)]
    return table(["shards", "client → coordinator RPC p50 ms", "coordinator → node RPC p50 ms",
                  f"one partition search p50 ms (ef {r.floor_ef})", "floor ms",
                  f"Shoal single-query p50 ms (ef {r.floor_ef})", "p50 / floor"], rows)


def _pg_single_table(r: Results) -> list[str]:
    rows = [[x["shards"], x["ef"], f"{x['shoal_recall']:.4f}", f"{x['shoal_p50_ms']:.3f}", f"{x['shoal_p99_ms']:.3f}",
             x["pg_ef"], _fmt(x["pg_recall"], ".4f") + ("" if x["equal_recall"] else " (below)"),
             _fmt(x["pg_p50_ms"], ".3f"), _fmt(x["pg_p99_ms"], ".3f"), _fmt(x["ratio"]) + "x"]
            for x in pgvector_single(r)]
    return table(["Shoal shards", "Shoal ef", "Shoal recall", "Shoal p50 ms", "Shoal p99 ms", "pgvector ef_search",
                  "pgvector recall", "pgvector p50 ms", "pgvector p99 ms", "Shoal / pgvector p50"], rows)


def _concurrent_table(r: Results) -> list[str]:
    rows = []
    for role in [*(shoal_role(s) for s in r.shards), PGVECTOR]:
        for x in sorted(r.concurrent.get(role, []), key=lambda x: x.ef):
            rows.append([r.names[role], x.ef, f"{x.recall:.4f}", x.clients, f"{x.queries:,}", f"{x.qps:,.0f}",
                         f"{x.p50_ms:.3f}", f"{x.p99_ms:.3f}"])
    for p in sorted(r.curves.get(HNSWLIB_1T, []), key=lambda p: p.ef):
        rows.append([r.names[HNSWLIB_1T] + ", batched", p.ef, f"{p.recall:.4f}", 1, f"{p.queries:,}",
                     f"{p.qps:,.0f}", "—", "—"])
    lines = table(["system", "ef", f"recall@{r.k}", "clients", "searches", "QPS", "p50 ms", "p99 ms"], rows)
    for x in concurrency_rows(r):
        lines.append(f"\n{r.names[shoal_role(x['shards'])]} at ef {x['ef']} (recall {x['recall']:.4f}): "
                     f"{_fmt(x['pg_ratio'])}x pgvector's QPS at ef {x['pg_ef']} (recall {_fmt(x['pg_recall'], '.4f')}"
                     f"{'' if x['pg_equal_recall'] else ', lower'}); {_fmt(x['hnswlib_ratio'])}x hnswlib's "
                     f"one-thread QPS at ef {x['hnswlib_ef']} (recall {_fmt(x['hnswlib_recall'], '.4f')}"
                     f"{'' if x['hnswlib_equal_recall'] else ', lower'}).")
    return lines


def _ingest_table(r: Results) -> list[str]:
    rows = []
    for role in [*(shoal_role(s) for s in r.shards), HNSWLIB, PGVECTOR]:
        if role in r.ingest:
            x = r.ingest[role]
            rows.append([r.names[role], f"{x.vectors:,}", f"{x.batch:,}", f"{x.seconds:.1f}", f"{x.rate:,.0f}"])
    lines = table(["system", "vectors", "batch", "seconds", "vectors/s"], rows)
    if "pgvector_index_build_s" in r.notes:
        lines.append(f"\npgvector's time is COPY plus `CREATE INDEX ... USING hnsw` "
                     f"({r.notes['pgvector_index_build_s']:.1f} s of it, {max(r.threads - 1, 0)} parallel "
                     "maintenance workers besides the leader).")
    return lines


def _memory_lines(r: Results) -> list[str]:
    mem = r.memory
    if mem is None:
        return ["Not run (`--memory-collections 0`)."]
    last = mem.steps[-1] if mem.steps else None
    per, beyond = mem.per_replica_bytes(), mem.per_replica_beyond_data()
    rows = [
        ["Shoal processes, empty cluster", mem.baseline.processes, f"{mem.baseline.rss_bytes / MIB:,.0f}",
         f"{mem.baseline.pss_bytes / MIB:,.0f}"],
        *([[f"after {last.collections} collections", last.processes, f"{last.rss_bytes / MIB:,.0f}",
            f"{last.pss_bytes / MIB:,.0f}"]] if last else []),
    ]
    lines = table(["state", "processes", "RSS MiB", "PSS MiB"], rows)
    avg = mem.creation_seconds / mem.created if mem.created else None
    lines += [
        "",
        f"- Asked for {mem.wanted} collections x {mem.shards} shards x {mem.vectors:,} vectors (dim {mem.dim}); "
        f"created {mem.created} in {mem.creation_seconds:.1f} s (create + upsert, {_fmt(avg, '.2f')} s each; "
        f"CreateCollection alone {mem.create_only_seconds:.1f} s in all)"
        + (f"; {mem.stopped}." if mem.stopped else "."),
        f"- RSS per shard replica (growth from the first to the last collection / replicas added): "
        f"{_fmt(per and per / MIB, '.1f')} MiB; the replica's own index memory (DescribeCollection "
        f"`memory_bytes`) {mem.index_bytes_per_replica / MIB:.2f} MiB; beyond its data "
        f"{_fmt(beyond and beyond / MIB, '.1f')} MiB.",
        f"- Cap: {mem.cap_bytes / 2**30:.1f} GiB of summed RSS (`--memory-cap-gb`).",
        "- Processes counted, empty cluster: " + _names(mem.baseline.names) + "; at the end: "
        + _names(mem.final_names) + ".",
    ]
    return lines


def _loaded_memory_lines(r: Results) -> list[str]:
    """RSS of the main comparison's servers with their data loaded."""
    n = r.notes
    if "shoal_rss_mib" not in n:
        return []
    return ["", f"With the main comparison's data loaded ({len(r.shards)} collections of {r.data.n:,} vectors), the "
                f"Shoal processes held {n['shoal_rss_mib']:,} MiB RSS ({n['shoal_pss_mib']:,} MiB PSS, "
                f"{n['shoal_processes']} processes) and PostgreSQL {n['postgresql_rss_mib']:,} MiB RSS "
                f"({n['postgresql_pss_mib']:,} MiB PSS, {n['postgresql_processes']} processes, one table and "
                "index of the same vectors)."]


def _names(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} x{n}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "—"


def _quiet_line(r: Results) -> str:
    """Whether the machine was idle when the run began (a figure taken beside other work does not count)."""
    start = r.machine.get("load_average_start") or [0.0]
    if start[0] <= QUIET_LOAD:
        return f"The machine was quiet at the start (1-minute load {start[0]} <= {QUIET_LOAD})."
    return (f"**The machine was not quiet at the start (1-minute load {start[0]} > {QUIET_LOAD}): these figures do "
            "not count; re-run the benchmark alone.**")


def _client_mode(r: Results) -> str:
    if r.client_mode == "processes":
        return "each a process of its own (spawned, `--client-processes`)"
    return ("threads of the benchmark process (gRPC Python may share one connection among channels with the same "
            "settings, as it would for an application with many clients in one process; `--client-processes` "
            "gives each client a process)")


def _setup_lines(r: Results) -> list[str]:
    return [
        f"- Every index is HNSW with M={r.m}, ef_construction={r.ef_construction}; k={r.k}; recall@{r.k} of every "
        "system against the same exact ground truth.",
        f"- Shoal: one cluster (`shoal.serve.LocalCluster`, without the embedder) with one collection per shard "
        f"count ({', '.join(str(s) for s in r.shards)}), reached through `shoal.Client` on loopback; batched "
        f"search is `search_batch(..., with_payload=False)`, {r.batch} queries per call; single queries are "
        "`client.search` one at a time.",
        f"- hnswlib: one `hnswlib.Index` over all vectors in the benchmark process, num_threads={r.threads} for "
        "ingest and batched calls, 1 for single queries and for the one-thread row.",
        "- PostgreSQL + pgvector: the `pgserver` wheel's server on a Unix socket (shared_buffers 1GB), one table "
        "(`id bigint, embedding vector`), `CREATE INDEX ... USING hnsw (embedding vector_cosine_ops)`; queries "
        "`ORDER BY embedding <=> $1 LIMIT k` through psycopg (prepared, binary), `SET hnsw.ef_search` per ef; "
        "the harness checks with EXPLAIN that the index answers.",
        "- Brute force: a float32 numpy matrix product and top-k per batch; its result is the ground truth.",
        f"- Floor: the standard gRPC `Health.Check` against the coordinator's address (client → coordinator), "
        "the same call from the benchmark process against the address DescribeCollection reports for the "
        "collection's shard 0 (stands for coordinator → node: the same hop, made from the client process), and "
        f"a single query on one thread into an in-process hnswlib index of 1/shards of the vectors at ef "
        f"{r.floor_ef}. Floor = the sum of the three p50s. The two RPC rows are new unary calls, as the issue "
        "defines the floor; Shoal's own searches travel as messages on open streams (the SDK's SearchStream, the "
        "coordinator's NodeSearchStream), which cost about half a new call on loopback, so the floor counts "
        "those hops dearer than Shoal pays them.",
        f"- Concurrency: {r.clients} clients, {_client_mode(r)}, each with its own `shoal.Client` (or psycopg "
        f"connection), start together and send {r.client_queries} single-vector searches each, one after another; "
        f"QPS = all searches / wall time. Shoal runs at ef {', '.join(map(str, r.concurrency_efs))}; pgvector at "
        "the same efs and at the cheapest ef_search whose recall is at least Shoal's; hnswlib's one-thread QPS "
        "(batched knn_query, num_threads=1) likewise.",
        f"- {r.passes} passes; in each pass every system takes its turn at every measurement, and the best pass "
        "counts (highest QPS; lowest p50). BLAS is pinned to one thread in the benchmark process (threadpoolctl); "
        "the servers use their own settings.",
        "- Timings cover only the calls into each system. Every latency run starts with untimed warm-up queries.",
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
    scope = "" if is_target_config(r) else (
        f" This run is {r.data.n:,} x {r.data.dim}, not the {TARGET_N:,} x {TARGET_DIM} the targets are "
        "stated for: indicative only.")
    lines = [
        BEGIN,
        "## Cluster: Shoal vs in-process hnswlib vs PostgreSQL + pgvector vs brute force",
        "",
        f"Command: `{r.command}` (git {m.get('git') or 'unknown'}; whole run {total / 60:.1f} min: "
        + ", ".join(f"{name} {s:.0f} s" for name, s in r.phases_s.items()) + ").",
        "",
        f"Machine: {m['nproc']} CPUs (nproc), {m['ram_gib']} GiB RAM, CPU `{m['cpu_model']}`, {m['os']}; "
        f"Python {m['python']}, " + ", ".join(f"{name} {ver}" for name, ver in v.items()) + ". "
        f"Load average (1/5/15 min) at start {m['load_average_start']}, at each pass "
        f"{m.get('load_average_per_pass')}, at end {m.get('load_average_end')}. Everything — benchmark client, "
        "coordinator, Ray, shard processes and PostgreSQL — shares these CPUs." + scope,
        "",
        _quiet_line(r),
        "",
        f"Data: {r.data.describe()}",
        "",
        "Setup:",
        "",
        *_setup_lines(r),
        "",
        "### Targets",
        "",
        *(f"- {t['target']}: **{t['verdict']}** ({t['figures']})" for t in judge_targets(r)),
        "",
        "### Single query vs the floor",
        "",
        *_floor_table(r),
        "",
        "### Single query vs pgvector at equal recall",
        "",
        *_pg_single_table(r),
        "",
        f"### {r.clients} concurrent clients",
        "",
        *_concurrent_table(r),
        "",
        "### Recall and batched throughput",
        "",
        *_curve_table(r),
        "",
        "Shoal searches every shard with the given ef and merges the per-shard top-k, so at equal ef it "
        "examines more candidates than one index does and reaches higher recall; the fair comparison is at "
        "equal recall (hnswlib's curve interpolated at Shoal's recall):",
        "",
        *_recall_table(r),
        "",
        f"![recall@{r.k} vs queries/s]({plot_ref})",
        "",
        "### Single-query latency, every system",
        "",
        *_latency_table(r),
        "",
        "### Ingest",
        "",
        *_ingest_table(r),
        "",
        "### Memory of many small collections",
        "",
        "RSS summed over every Shoal process: the processes LocalCluster started (Ray head, coordinator) and all "
        "their descendants (GCS, raylet, Ray workers and shard processes), plus any other process in their "
        "sessions; PSS splits shared pages among their users.",
        "",
        *_memory_lines(r),
        *_loaded_memory_lines(r),
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
