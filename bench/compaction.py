"""`python -m bench.compaction`: what tombstones cost a shard and what a background rebuild gives back.

One shard store (the shard's own code: WAL, partition, rebuild thread, swap) is filled, half of it deleted,
then measured before compaction, while it rebuilds, after the swap, and against an index built fresh from the
same live set. Writes its section of BENCHMARKS.md (with the soak counts of tests/fault/test_soak.py when
bench/out/soak.json exists) and bench/out/compaction.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.data import DataSpec, make_dataset
from bench.machine import load_average, machine_facts
from bench.report import write_section
from shard_node.partition import Partition, exact_distances, top_k_rows
from shard_node.rebuild import build_partition
from shard_node.settings import PartitionSpec, ShardSettings
from shard_node.store import ShardStore

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "BENCHMARKS.md"
RESULTS = REPO / "bench" / "out" / "compaction.json"
SOAK = REPO / "bench" / "out" / "soak.json"
BEGIN, END = "<!-- bench:compaction:begin -->", "<!-- bench:compaction:end -->"
SEED = 20_240_602
K = 10
M, EF_CONSTRUCTION, EF_SEARCH = 16, 200, 128
INGEST_BATCH = 1000
REPEATS = 3                 # timed passes of the query set per ef; the fastest counts
WRITER_PAUSE_S = 0.02       # background writes during both latency runs: 10 live documents replaced per pause
CHURN_NOISE = 1e-3          # replacements move a vector this little, so the live set's exact answers stay put
TRUTH_CHUNK = 250


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m bench.compaction", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="documents written before the deletes")
    p.add_argument("--dim", type=int, default=128, help="vector dimension")
    p.add_argument("--queries", type=int, default=1000, help="query vectors")
    p.add_argument("--delete-share", type=float, default=0.5, help="share of the documents deleted")
    p.add_argument("--ef", type=int, nargs="+", default=[32, 64, 128], help="ef values measured")
    p.add_argument("--baseline-seconds", type=float, default=60.0, help="latency run without a rebuild")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--render-only", action="store_true",
                   help=f"measure nothing: rewrite the section from {RESULTS.name} and the latest soak counts")
    return p.parse_args(argv)


def exact_ids(metric: str, queries: np.ndarray, ids: list[str], vectors: np.ndarray) -> list[set[str]]:
    """Each query's exact top-k ids over the given documents."""
    out = []
    for start in range(0, len(queries), TRUTH_CHUNK):
        cols, _ = top_k_rows(exact_distances(metric, queries[start:start + TRUTH_CHUNK], vectors), K)
        out.extend({ids[c] for c in row} for row in cols.tolist())
    return out


def measure(indexes: dict[str, tuple[Partition, list[set[str]]]], queries: np.ndarray, efs: Sequence[int]
            ) -> dict[str, list[dict[str, Any]]]:
    """recall@10 and batched QPS (one hnswlib thread, as a shard serves) of every index at each ef.

    The indexes take turns within each pass, so a change in the machine's load hits them all alike."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in indexes}
    for ef in efs:
        best = dict.fromkeys(indexes, float("inf"))
        found: dict[str, np.ndarray] = {}
        for part, _ in indexes.values():
            part.search_matrix(queries[:50], K, ef)  # warm-up
        for _ in range(REPEATS):
            for name, (part, _) in indexes.items():
                start = time.perf_counter()
                found[name], _ = part.search_matrix(queries, K, ef)
                best[name] = min(best[name], time.perf_counter() - start)
        for name, (_, truth) in indexes.items():
            recall = float(np.mean([len(set(r) & t) / K for r, t in zip(found[name].tolist(), truth, strict=True)]))
            rows[name].append({"ef": ef, "recall": round(recall, 4), "qps": round(len(queries) / best[name], 1)})
    return rows


def state_of(part: Partition) -> dict[str, Any]:
    """Size figures of a partition."""
    return {"live": part.live, "tombstones": part.tombstones, "graph": part.slots_used, "capacity": part.capacity,
            "memory_mib": round(part.memory_bytes() / 2**20, 1)}


class Churn(threading.Thread):
    """Writes all the time, as a live shard gets written: 10 live documents replaced per pause (durably, through
    the WAL), each by a vector moved a hair, so the live set and its exact answers stay the same."""

    def __init__(self, store: ShardStore, live: tuple[list[str], np.ndarray], seed: int) -> None:
        super().__init__(daemon=True)
        self.store, (self.ids, self.vectors) = store, live
        self.rng = np.random.default_rng(seed)
        self.stop = threading.Event()
        self.n = 0

    def run(self) -> None:
        while not self.stop.is_set():
            rows = self.rng.choice(len(self.ids), size=10, replace=False)
            noise = self.rng.standard_normal((10, self.vectors.shape[1])).astype(np.float32) * CHURN_NOISE
            self.store.upsert([self.ids[r] for r in rows], self.vectors[rows] + noise)
            self.n += 10
            self.stop.wait(WRITER_PAUSE_S)


def latency_run(store: ShardStore, queries: np.ndarray, until: Any, live: tuple[list[str], np.ndarray],
                seed: int) -> dict[str, Any]:
    """Single-query searches, one after another, while `until()` is false, with background writes."""
    churn = Churn(store, live, seed)
    churn.start()
    lat, ends = [], []
    i = 0
    while not until():
        q = queries[i % len(queries)][None, :]
        start = time.perf_counter()
        store.partition.search_matrix(q, K)  # the partition serving now, as the shard's servicer takes it
        end = time.perf_counter()
        lat.append(end - start)
        ends.append(end)
        i += 1
    churn.stop.set()
    churn.join()
    ms = np.asarray(lat) * 1000
    gaps = np.diff(ends) * 1000 if len(ends) > 1 else np.zeros(1)
    return {"searches": len(lat), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(ms.max()), 2),
            "longest_gap_ms": round(float(gaps.max()), 2), "writes": churn.n}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement; returns the results."""
    data = make_dataset(DataSpec(n=args.n, queries=args.queries, dim=args.dim, seed=args.seed))
    spec = PartitionSpec(dim=args.dim, metric="cosine", m=M, ef_construction=EF_CONSTRUCTION, ef_search=EF_SEARCH)
    settings = ShardSettings(snapshot_every_ops=10**9, snapshot_wal_bytes=10**13)
    ids = [f"d{i}" for i in range(args.n)]
    res: dict[str, Any] = {"machine": machine_facts(REPO), "args": {k: str(v) for k, v in vars(args).items()},
                           "phases_s": {}}
    phases = res["phases_s"]
    with tempfile.TemporaryDirectory(prefix="shoal-compaction-") as tmp:
        store = ShardStore(Path(tmp) / "shard", spec, settings)
        start = time.perf_counter()
        for s in tqdm(range(0, args.n, INGEST_BATCH), desc="ingest", unit="batch", file=sys.stderr):
            store.upsert(ids[s:s + INGEST_BATCH], data.vectors[s:s + INGEST_BATCH])
        phases["ingest"] = round(time.perf_counter() - start, 1)
        gone = np.random.default_rng(args.seed).permutation(args.n)[: int(args.n * args.delete_share)]
        for s in tqdm(range(0, len(gone), INGEST_BATCH), desc="delete", unit="batch", file=sys.stderr):
            store.delete([ids[i] for i in gone[s:s + INGEST_BATCH]])

        live_ids, live_vecs, _ = store.partition.live_documents()
        before_truth = exact_ids("cosine", data.queries, live_ids, live_vecs)
        old = store.partition  # kept after the swap, to be measured side by side with the new index
        res["before"] = state_of(old)

        deadline = time.monotonic() + args.baseline_seconds
        live = (live_ids, live_vecs)
        res["latency_without"] = latency_run(store, data.queries, lambda: time.monotonic() > deadline, live, 1)
        tqdm.write(f"latency without a rebuild: {res['latency_without']}", file=sys.stderr)
        assert store.rebuild(reason="bench")
        res["latency_during"] = latency_run(store, data.queries, lambda: not store.rebuilder.running, live, 2)
        figures = store.figures().rebuild
        if figures.last_error:
            raise SystemExit(f"rebuild failed: {figures.last_error}")
        res["rebuild_seconds"] = round(figures.last_seconds, 1)
        tqdm.write(f"latency during the rebuild ({figures.last_seconds:.1f} s): {res['latency_during']}",
                   file=sys.stderr)

        live_ids, live_vecs, payloads = store.partition.live_documents()
        truth = exact_ids("cosine", data.queries, live_ids, live_vecs)
        res["after"] = state_of(store.partition)
        start = time.perf_counter()
        fresh = build_partition(spec, live_ids, live_vecs, payloads, 1, settings.rebuild_threads,
                                lambda _: None, lambda: False)
        res["fresh_build_seconds"] = round(time.perf_counter() - start, 1)
        res["fresh"] = state_of(fresh)
        rows = measure({"before": (old, before_truth), "after": (store.partition, truth), "fresh": (fresh, truth)},
                       data.queries, args.ef)
        for name, measured in rows.items():
            res[name]["rows"] = measured
            tqdm.write(f"{name}: {res[name]}", file=sys.stderr)
        store.close()
    res["load_average_end"] = load_average()
    return res


def render(res: dict[str, Any], command: str, soak: dict[str, Any] | None) -> str:
    """The BENCHMARKS.md section."""
    m = res["machine"]
    a = res["args"]
    lines = [BEGIN, "## Compaction: tombstones, background rebuild, and reads during it", "",
             f"Command: `{command}` (git {m['git']}; ingest {res['phases_s']['ingest']:.0f} s, rebuild "
             f"{res['rebuild_seconds']:.1f} s on 1 thread, fresh build of the same live set "
             f"{res['fresh_build_seconds']:.1f} s).", "",
             f"Machine: {m['nproc']} CPUs, CPU `{m['cpu_model']}`, Python {m['python']}, hnswlib "
             f"{m['versions'].get('hnswlib')}. Load average at start {m['load_average_start']}, at end "
             f"{res['load_average_end']} (other work shared the machine).", "",
             f"Setup: one shard store (WAL, partition, rebuild thread and swap: the shard's own code, in one "
             f"process, no network), {int(a['n']):,} documents of the synthetic cosine mixture of the cluster "
             f"section at dim {a['dim']}, M={M}, ef_construction={EF_CONSTRUCTION}; then {float(a['delete_share']):.0%}"
             f" deleted at random. {int(a['queries']):,} held-out queries, k={K}; recall@10 against numpy brute "
             f"force over the live set at that moment; batched QPS = the whole query set in one call on one hnswlib "
             f"thread (as a shard serves), fastest of {REPEATS} passes, the three indexes taking turns in each "
             f"pass (the tombstoned one is kept in memory after the swap for this).", "",
             "### Recall and throughput: tombstoned, compacted, and built fresh from the live set", "",
             "| index | live | tombstones | capacity | memory (MiB, est.) | ef | recall@10 | QPS |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    states = (("before compaction", "before"), ("after compaction", "after"), ("fresh from live set", "fresh"))
    for label, key in states:
        st = res[key]
        for row in st["rows"]:
            lines.append(f"| {label} | {st['live']:,} | {st['tombstones']:,} | {st['capacity']:,} | "
                         f"{st['memory_mib']} | {row['ef']} | {row['recall']:.4f} | {row['qps']:,.0f} |")
    before = {r["ef"]: r for r in res["before"]["rows"]}
    after = {r["ef"]: r for r in res["after"]["rows"]}
    fresh = {r["ef"]: r for r in res["fresh"]["rows"]}
    lines += ["", "Side by side, same run: " + "; ".join(
        f"ef={ef}: QPS after/before {after[ef]['qps'] / before[ef]['qps']:.2f}, after/fresh "
        f"{after[ef]['qps'] / fresh[ef]['qps']:.2f}" for ef in sorted(before)) + ".", "",
        "### Search latency during a rebuild vs without one", "",
        f"Single queries one after another (ef={EF_SEARCH}) from one thread while a writer replaces 10 live "
        f"documents every {WRITER_PAUSE_S * 1000:.0f} ms (WAL, index update; the new vector moves by "
        f"{CHURN_NOISE:g} per axis, so the live set and its exact answers stay the same); 'during' covers the whole "
        "rebuild, the catch-up of those writes, the new snapshot and the swap.", "",
        "| condition | searches | p50 ms | p99 ms | max ms | longest gap between answers ms | writes meanwhile |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, key in (("without a rebuild", "latency_without"), ("during a rebuild", "latency_during")):
        lt = res[key]
        lines.append(f"| {label} | {lt['searches']:,} | {lt['p50_ms']} | {lt['p99_ms']} | {lt['max_ms']} | "
                     f"{lt['longest_gap_ms']} | {lt['writes']:,} |")
    ratio = res["latency_during"]["p99_ms"] / res["latency_without"]["p99_ms"]
    lines += ["", f"p99 during / without: {ratio:.2f}."]
    if soak is not None:
        lines += ["", "### Soak under kills (tests/fault/test_soak.py)", "",
                  "Command: `SHOAL_SOAK_COUNTS=bench/out/soak.json python -m pytest -q -s tests/fault/test_soak.py`"
                  " (its counts land in bench/out/soak.json;"
                  " this section copies them). A writer upserts and deletes, a reader searches, the scheduler "
                  "rebuilds shards past their tombstone threshold, and a chaos loop kills shard actors (ray.kill or"
                  f" SIGKILL) for {soak['seconds']} s. `soak-r1`: 3 shards, 1 replica, reads allow partial results;"
                  " `soak-r2`: 2 shards, 2 replicas, reads do not.", "",
                  f"- Kills: {json.dumps(soak['kills'])}; rebuilds started by the scheduler: "
                  f"{json.dumps(soak['rebuilds_scheduled'])}."]
        for name in ("soak-r1", "soak-r2"):
            c = soak[name]
            lines.append(f"- `{name}`: writes {json.dumps(c['writes'])}, ids left unsure by a failed call "
                         f"{c['unsure_ids']}, reads {json.dumps(c['reads'])}, final live set {c['final_live']:,}, "
                         f"recall@10 {c['recall_at_10']}; every acknowledged write present with its last value, "
                         "every acknowledged delete absent.")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run, then write results.json and the BENCHMARKS.md section."""
    args = parse_args(argv)
    if args.render_only:
        res = json.loads(RESULTS.read_text())
    else:
        res = run(args)
        res["command"] = shlex.join(["python", "-m", "bench.compaction",
                                     *(argv if argv is not None else sys.argv[1:])])
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    soak = json.loads(SOAK.read_text()) if SOAK.exists() else None
    write_section(render(res, res.get("command", "python -m bench.compaction"), soak), args.out, BEGIN, END)
    print(f"wrote {args.out}" + ("" if args.render_only else f" and {RESULTS}"), file=sys.stderr)


if __name__ == "__main__":
    main()
