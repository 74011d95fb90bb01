"""`python -m bench.scale`: a million vectors through the cluster, for every storage type.

For a seeded synthetic clustered set (default 1M x 768, --n / --dim) and, when the Debian corpus has been
embedded into .cache/corpus-embeddings/, for those real embeddings (documents held out as queries): build
time, RSS of the cluster's processes, disk, the partitions' own memory figures by part, and batched and
concurrent QPS with p99 at the cheapest setting reaching recall@10 >= --target (vs numpy exact truth on the
query sample; the best-recall setting, marked "below", when none reaches it). In-process hnswlib is measured
side by side; the Milvus 2c8g anchor row (VectorDBBench) is quoted. Each storage type runs on a fresh local
cluster, so one type's memory never counts against another. Writes its section of BENCHMARKS.md and
bench/out/scale.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from tqdm import tqdm

import shoal
from bench.concurrency import Opener, run_concurrent
from bench.corpus_cache import DEFAULT_CACHE, load_cached
from bench.data import DataSpec, make_dataset
from bench.machine import git_revision, load_average, machine_facts
from bench.measure import CurvePoint, cheapest_ef_reaching, measure_curve, measure_latency
from bench.memory import MIB, memory_of, process_tree
from bench.report import table, write_section
from bench.systems import Hnswlib, Shoal
from shard_node.partition import exact_distances, top_k_rows
from shard_node.settings import DEFAULT_OVERSAMPLE
from shard_node.storage import BINARY, STORAGE_TYPES
from shoal.demo import DEMO_MODEL, DEMO_VECTORS, dequantise
from shoal.serve import LocalCluster

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "out" / "scale.json"
BASELINE_CACHE = REPO / "bench" / "out" / "scale-cache"
BEGIN, END = "<!-- bench:scale:begin -->", "<!-- bench:scale:end -->"
SEED = 20_261_202
K = 10
M, EF_CONSTRUCTION = 16, 200
TRUTH_CHUNK = 100
INGEST_BATCH = 1000
REAL_MODEL = DEMO_MODEL  # the demo's bundled vectors are its embeddings of the whole corpus
# The published anchor for a small machine: Milvus on 2 cores / 8 GB, Cohere 1M x 768 (VectorDBBench).
MILVUS_ANCHOR = {"system": "Milvus 2c8g (VectorDBBench, Cohere 1M x 768)", "qps": 274.5, "recall": 0.981, "p99_ms": 4.9}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="synthetic vectors indexed")
    p.add_argument("--dim", type=int, default=768, help="synthetic vector dimension")
    p.add_argument("--queries", type=int, default=500, help="query sample scored against exact truth")
    p.add_argument("--storage", nargs="+", default=list(STORAGE_TYPES), choices=STORAGE_TYPES)
    p.add_argument("--efs", type=int, nargs="+", default=[32, 64, 128, 256], help="ef values (graph types)")
    p.add_argument("--oversample", type=int, nargs="+", default=[16, 64, 256, 1024],
                   help="Hamming candidates per hit (binary)")
    p.add_argument("--target", type=float, default=0.98, help="recall@10 the QPS and p99 are reported at")
    p.add_argument("--shards", type=int, default=2, help="shards per collection")
    p.add_argument("--batch", type=int, default=64, help="queries per batched search call")
    p.add_argument("--clients", type=int, default=8, help="concurrent single-query clients (threads)")
    p.add_argument("--per-client", type=int, default=200, help="searches per concurrent client")
    p.add_argument("--serial", type=int, default=500,
                   help="one-at-a-time queries from one client for serial p50/p99 (VectorDBBench's latency)")
    p.add_argument("--baseline-cache", type=Path, default=BASELINE_CACHE,
                   help="where the in-process hnswlib index is kept between runs (its build takes ~14 min at 1M)")
    p.add_argument("--threads", type=int, default=2, help="threads of the in-process hnswlib")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--skip-synthetic", action="store_true", help="only the real-embedding table")
    p.add_argument("--skip-real", action="store_true", help="only the synthetic table")
    p.add_argument("--corpus-cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--corpus-model", default=REAL_MODEL)
    p.add_argument("--data-dir", type=Path, default=None, help="where clusters keep their data (default: a temp dir)")
    p.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--render-only", action="store_true", help=f"rewrite the section from {RESULTS.name}")
    return p.parse_args(argv)


@dataclass
class Row:
    """One system (or storage type) on one data set."""

    system: str
    storage: str
    build_s: float
    rss_mib: float
    disk_mib: float
    memory: dict[str, int] = field(default_factory=dict)   # the partitions' own figures, bytes by part
    curve: list[dict[str, Any]] = field(default_factory=list)
    knob: int | None = None                                # cheapest ef / oversample reaching the target
    recall: float | None = None
    batched_qps: float | None = None
    concurrent: dict[str, Any] = field(default_factory=dict)
    serial: dict[str, Any] = field(default_factory=dict)      # one client, one query at a time, at the knob
    build_note: str = ""


class ShoalOversampled(Shoal):
    """A binary collection searched with the Hamming pass's oversampling as the swept knob (in place of ef)."""

    def search(self, queries: np.ndarray, k: int, ef: int) -> list[list[shoal.Hit]]:
        """search_batch with oversample = the knob."""
        return self.client.search_batch(self.collection, vectors=queries, k=k, oversample=ef, with_payload=False)

    def search_one(self, query: np.ndarray, k: int, ef: int) -> list[shoal.Hit]:
        """One query, through search_batch (the call that carries oversample)."""
        return self.search(query[None, :], k, ef)[0]

    def labels_one(self, raw: list[shoal.Hit], k: int) -> np.ndarray:
        """Parse the string ids back to row numbers."""
        return self.labels([raw], k)[0]


def exact_truth(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Each query's exact top-k rows by cosine, with progress (the rows are normalised once, not per chunk)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    out = np.empty((len(queries), K), np.int64)
    for start in tqdm(range(0, len(queries), TRUTH_CHUNK), desc="exact truth", unit="chunk"):
        cols, _ = top_k_rows(exact_distances("ip", queries[start:start + TRUTH_CHUNK], unit), K)
        out[start:start + len(cols)] = cols
    return out


def dir_bytes(path: Path) -> int:
    """Bytes of every file below path."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def at_target(curve: list[CurvePoint], target: float) -> tuple[int | None, CurvePoint | None]:
    """The cheapest knob whose recall reaches the target, and its point; when none does, the best-recall point
    (the table marks it as below the target)."""
    knob = cheapest_ef_reaching({p.ef: p.recall for p in curve}, target)
    if knob is None and curve:
        knob = max(curve, key=lambda p: (p.recall, -p.ef)).ef
    return knob, next((p for p in curve if p.ef == knob), None)


def measure_hnswlib(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, args: argparse.Namespace) -> Row:
    """The in-process baseline: build, RSS growth of this process, curve."""
    me = psutil.Process()
    before = me.memory_info().rss
    index = Hnswlib(vectors.shape[1], M, EF_CONSTRUCTION, args.threads)
    # A sample of the rows in the key: the same seed under a changed generator must not reuse a stale graph.
    digest = hashlib.sha256(np.ascontiguousarray(vectors[::997]).tobytes()).hexdigest()[:12]
    key = f"hnswlib-{len(vectors)}x{vectors.shape[1]}-{digest}-m{M}-efc{EF_CONSTRUCTION}"
    cached, record = args.baseline_cache / f"{key}.bin", args.baseline_cache / f"{key}.json"
    note = ""
    if cached.exists() and record.exists():
        # Same seeded data and parameters: the graph is the one an earlier run built; its build time is that run's.
        index.load(cached, len(vectors))
        built = json.loads(record.read_text())
        build, note = built["build_s"], f"build timed at git {built['git']} (index cached since)"
    else:
        build = index.ingest(vectors, INGEST_BATCH)
        args.baseline_cache.mkdir(parents=True, exist_ok=True)
        index.save(cached)
        record.write_text(json.dumps({"build_s": build, "git": git_revision(REPO)}) + "\n")
    rss = me.memory_info().rss - before
    curve = measure_curve(index, queries, truth, args.efs, args.batch)
    knob, point = at_target(curve, args.target)
    row = Row(index.name, "float32", build, rss / MIB, 0.0, curve=[p.to_dict() for p in curve],
              knob=knob, recall=point.recall if point else None, batched_qps=point.qps if point else None,
              build_note=note)
    if knob is not None:
        row.serial = measure_latency(index, queries[: args.serial], K, knob, truth).to_dict()
    return row


def measure_storage(storage: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                    args: argparse.Namespace, root: Path) -> Row:
    """One storage type on a fresh cluster: ingest, figures, curve over its knob, concurrent clients at target."""
    data_dir = root / f"cluster-{storage}"
    name = f"scale_{storage}"
    with LocalCluster(data_dir, embedder=False) as cluster, shoal.Client(cluster.address, timeout=600) as client:
        base = memory_of(process_tree(cluster.process_ids())).rss_bytes
        client.create_collection(name, dim=vectors.shape[1], metric="cosine", shards=args.shards, m=M,
                                 ef_construction=EF_CONSTRUCTION, storage=storage)
        kind = ShoalOversampled if storage == BINARY else Shoal
        system = kind(client, name, args.shards)
        system.name = f"Shoal {storage} ({args.shards} shards)"
        build = system.ingest(vectors, INGEST_BATCH)
        rss = memory_of(process_tree(cluster.process_ids())).rss_bytes - base
        info = client.describe_collection(name)
        knobs = args.oversample if storage == BINARY else args.efs
        curve = measure_curve(system, queries, truth, knobs, args.batch)
        knob, point = at_target(curve, args.target)
        row = Row(system.name, storage, build, rss / MIB, dir_bytes(data_dir / "collections") / MIB,
                  memory={**info.memory, "disk": sum(info.disk.values())}, curve=[p.to_dict() for p in curve],
                  knob=knob, recall=point.recall if point else None, batched_qps=point.qps if point else None)
        if knob is not None:
            row.serial = measure_latency(system, queries[: args.serial], K, knob, truth).to_dict()
            opener = Opener(kind.connect, (cluster.address, name, args.shards, 600.0))
            conc = run_concurrent(opener, system.name, queries, truth, K, knob, args.clients, args.per_client)
            row.concurrent = conc.to_dict()
    return row


def run_set(label: str, vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace,
            save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Every system on one data set; `save` gets the set after each system, so a run cut short (an hour at 1M)
    still leaves what it measured."""
    tqdm.write(f"== {label}: {len(vectors):,} x {vectors.shape[1]}, {len(queries)} queries (load {load_average()})",
               file=sys.stderr)
    truth = exact_truth(queries, vectors)
    out: dict[str, Any] = {"label": label, "n": len(vectors), "dim": int(vectors.shape[1]), "queries": len(queries),
                           "rows": []}
    out["rows"].append(measure_hnswlib(vectors, queries, truth, args).__dict__)
    save(out)
    root = Path(tempfile.mkdtemp(prefix="shoal-scale-", dir=args.data_dir))
    try:
        for storage in args.storage:
            tqdm.write(f"== {label}: {storage} (load {load_average()})", file=sys.stderr)
            out["rows"].append(measure_storage(storage, vectors, queries, truth, args, root).__dict__)
            save(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def real_set(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The cached corpus embeddings split into documents and held-out queries, or None when none are cached."""
    _, vectors = load_cached(args.corpus_cache, args.corpus_model)
    source = f"the embeddings cached in {args.corpus_cache}"
    if len(vectors) <= args.queries and args.corpus_model == DEMO_MODEL and DEMO_VECTORS.exists():
        # The demo's bundled vectors are the same model over the whole corpus (int8 + scale per row, decoded).
        with np.load(DEMO_VECTORS, allow_pickle=False) as z:
            vectors = dequantise(z["q"], z["scale"])
        source = f"{DEMO_VECTORS.relative_to(REPO)} (every English and Korean entry, int8 decoded)"
    if len(vectors) <= args.queries:
        return None
    order = np.random.default_rng(args.seed).permutation(len(vectors))
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return vectors[order[args.queries:]], vectors[order[: args.queries]], source


def _recall(x: float | None, target: float) -> str:
    return "—" if x is None else f"{x:.3f}" + (" (below)" if x < target else "")


def _mib(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def render_set(s: dict[str, Any], target: float) -> list[str]:
    """One data set's table."""
    header = ["system", "build s", "RSS MiB", "disk MiB", "vectors MiB", "graph MiB", "payloads MiB",
              "setting at target", "recall@10", "batched QPS", "concurrent QPS", "p99 ms", "serial p50 / p99 ms"]
    rows = []
    for r in s["rows"]:
        mem, conc = r["memory"], r["concurrent"]
        name = "oversample" if r["storage"] == BINARY and r["memory"] else "ef"
        knob = "—" if r["knob"] is None else f"{name} {r['knob']}"
        rows.append([r["system"], f"{r['build_s']:,.1f}", _mib(r["rss_mib"]), _mib(r["disk_mib"] or None),
                     _mib(mem["vectors"] / MIB if mem else None), _mib(mem["graph"] / MIB if mem else None),
                     _mib(mem["payloads"] / MIB if mem else None), knob,
                     _recall(r["recall"], target),
                     "—" if r["batched_qps"] is None else f"{r['batched_qps']:,.0f}",
                     f"{conc['qps']:,.0f}" if conc else "—", f"{conc['p99_ms']:.1f}" if conc else "—",
                     _serial(r.get("serial"))])
    a = MILVUS_ANCHOR
    rows.append([a["system"], "", "", "", "", "", "", "", f"{a['recall']:.3f}", "", f"{a['qps']}", "",
                 f"— / {a['p99_ms']}"])
    notes = [f"{r['system']}: {r['build_note']}." for r in s["rows"] if r.get("build_note")]
    notes += [_at_default(r) for r in s["rows"] if r["storage"] == BINARY and r["memory"]]
    return [f"#### {s['label']}: {s['n']:,} x {s['dim']}, {s['queries']} queries, target recall@10 >= {target}", "",
            *table(header, rows), "", *(f"- {n}" for n in notes), *([""] if notes else [])]


def _at_default(row: dict[str, Any]) -> str:
    """A binary row at the default oversampling (what a query that sets none gets)."""
    point = next((p for p in row["curve"] if p["ef"] == DEFAULT_OVERSAMPLE), None)
    if point is None:
        return f"{row['system']}: the default oversample {DEFAULT_OVERSAMPLE} was not swept."
    return (f"{row['system']} at the default oversample {DEFAULT_OVERSAMPLE}: recall@10 {point['recall']:.3f}, "
            f"{point['qps']:,.0f} QPS batched.")


def _serial(x: dict[str, Any] | None) -> str:
    return "—" if not x else f"{x['p50_ms']:.2f} / {x['p99_ms']:.2f}"


def _machine(m: dict[str, Any]) -> str:
    return f"{m['usable_cpus']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB, git {m['git']}"


def render(res: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    lines = [BEGIN, "### Storage types at scale (`make bench-scale`)", "",
             f"Command: `{res['command']}`; {_machine(res['machine'])}; load at start {res['load']}; "
             f"{res.get('seconds', 0) / 60:.0f} min in all.", "",
             "Build = upserts of 1,000 vectors through the coordinator until every one is acknowledged (WAL fsync "
             "and graph insert). RSS = the cluster's processes after the build minus before the collection existed. "
             "vectors / graph / payloads = the partitions' own figures (DescribeCollection); a graph type's vectors "
             "are the only copy, inside the HNSW graph's element blocks in the type's encoding, and its graph "
             "figure is the links and labels; binary has no graph (a flat Hamming pass over 1 bit per dimension, "
             "rescored from float16). Batched = one client, "
             f"{res['batch']} queries per call; concurrent = {res['clients']} client threads, one query per call; "
             "p99 is theirs. Serial = one client, one query at a time, the latency VectorDBBench reports beside its "
             "QPS (the Milvus anchor's p99 is its serial p99).", ""]
    for s in res["sets"]:
        lines += render_set(s, res["target"])
    lines += [*(f"- {note}" for note in res["notes"]), END, ""]
    return "\n".join(lines)


def write_results(res: dict[str, Any], args: argparse.Namespace) -> None:
    """The json and the BENCHMARKS.md section, as they stand."""
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(res, indent=1, default=str) + "\n")
    write_section(render(res), args.out, BEGIN, END)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every data set, then write the json and the section."""
    args = parse_args(argv)
    if args.render_only:
        write_section(render(json.loads(args.results.read_text())), args.out, BEGIN, END)
        return 0
    started = time.time()
    res: dict[str, Any] = {"command": "python -m bench.scale " + shlex.join(argv or sys.argv[1:]),
                           "machine": machine_facts(REPO), "load": load_average(), "target": args.target,
                           "batch": args.batch, "clients": args.clients, "sets": [], "notes": []}

    def save(current: dict[str, Any]) -> None:
        sets = [x for x in res["sets"] if x["label"] != current["label"]] + [current]
        write_results({**res, "sets": sets, "seconds": round(time.time() - started)}, args)

    if not args.skip_synthetic:
        data = make_dataset(DataSpec(n=args.n, queries=args.queries, dim=args.dim, seed=args.seed))
        res["sets"].append(run_set("synthetic clustered", data.vectors, data.queries, args, save))
        del data
    if not args.skip_real:
        real = real_set(args)
        if real is None:
            note = (f"real-embedding table skipped: no cached {args.corpus_model} vectors in {args.corpus_cache} "
                    "(python -m bench.corpus_cache fills it)")
            print(note, file=sys.stderr)
            res["notes"].append(note)
        else:
            docs, queries, source = real
            res["notes"].append(f"real-embedding vectors: {source}")
            res["sets"].append(run_set(f"Debian corpus, {args.corpus_model} (held-out documents as queries)",
                                       docs, queries, args, save))
    res["seconds"] = round(time.time() - started)
    write_results(res, args)
    print(render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
