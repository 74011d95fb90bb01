"""`python -m bench.run`: Shoal vs in-process hnswlib vs numpy brute force on one synthetic data set.

Writes its section of BENCHMARKS.md, bench/recall_qps.png and bench/out/results.json.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

import shoal
from bench.data import DataSpec, make_dataset
from bench.machine import load_average, machine_facts
from bench.measure import CurvePoint, measure_curve, measure_ingest, measure_latency, run_batched
from bench.report import (
    BRUTE,
    HNSWLIB,
    ONE_SHARD,
    RPC_FLOOR,
    SHOAL,
    Results,
    plot_curves,
    render_section,
    write_json,
    write_section,
)
from bench.systems import BruteForce, Hnswlib, OneShard, RpcFloor, Shoal
from shoal.serve import LocalCluster

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "BENCHMARKS.md"
DEFAULT_PLOT = REPO / "bench" / "recall_qps.png"
DEFAULT_RESULTS = REPO / "bench" / "out" / "results.json"
DEFAULT_EFS = (16, 32, 64, 128, 256)
DEFAULT_LATENCY_EFS = (128,)
# Shoal merges several shards' candidates, so it reaches higher recall than one index at the same ef;
# these extra hnswlib points stretch its curve far enough to compare the two at equal recall.
DEFAULT_HNSWLIB_EXTRA_EFS = (512, 1024)
SEED = 20_240_601
K = 10
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
EF_SEARCH_DEFAULT = 128
SEARCH_BATCH = 500
SEARCH_REPEATS = 3             # timed passes per ef; the fastest counts (as ann-benchmarks does)
INGEST_BATCH = 1000
BRUTE_LATENCY_QUERIES = 200    # exact single queries scan every vector: a sample is enough for percentiles
COLLECTION = "bench"
CLIENT_TIMEOUT_S = 300.0       # one upsert or search_batch on a busy 2-CPU machine can take a while
LOG_TAIL_LINES = 40


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="vectors indexed")
    p.add_argument("--dim", type=int, default=384, help="vector dimension")
    p.add_argument("--queries", type=int, default=1000, help="query vectors (not in the index)")
    p.add_argument("--shards", type=int, default=4, help="shards of the Shoal collection")
    p.add_argument("--ef", type=int, nargs="+", default=list(DEFAULT_EFS), help="ef values of the recall/QPS curve")
    p.add_argument("--hnswlib-extra-ef", type=int, nargs="*", default=list(DEFAULT_HNSWLIB_EXTRA_EFS),
                   help="further ef values measured for hnswlib only (to cover Shoal's recall range)")
    p.add_argument("--latency-ef", type=int, nargs="+", default=list(DEFAULT_LATENCY_EFS),
                   help="ef values of the single-query latency runs")
    p.add_argument("--latency-queries", type=int, default=0,
                   help="single queries timed per system and ef (0 = all queries)")
    p.add_argument("--batch", type=int, default=SEARCH_BATCH, help="queries per batched search call")
    p.add_argument("--repeats", type=int, default=SEARCH_REPEATS,
                   help="timed batched-search passes per ef (the fastest counts)")
    p.add_argument("--ingest-batch", type=int, default=INGEST_BATCH, help="vectors per upsert / add_items call")
    p.add_argument("--m", type=int, default=HNSW_M, help="HNSW M (both systems)")
    p.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION,
                   help="HNSW ef_construction (both systems)")
    p.add_argument("--seed", type=int, default=SEED, help="seed of the synthetic data")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="hnswlib threads for batched search and ingest")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="BENCHMARKS.md to write the section into")
    p.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="recall/QPS plot (PNG)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="raw results (JSON)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="parent of the cluster's temporary data dir (default: the system temp dir)")
    p.add_argument("--keep-data", action="store_true", help="keep the cluster's data dir instead of deleting it")
    args = p.parse_args(argv)
    if min(args.n, args.dim, args.queries, args.shards, args.batch, args.ingest_batch, args.repeats) < 1 or args.n < K:
        p.error(f"--n must be at least {K}, and sizes, shards and batches positive")
    if min([*args.ef, *args.hnswlib_extra_ef, *args.latency_ef]) < K:
        p.error(f"every ef must be at least k={K}")
    return args


@contextmanager
def phase(name: str, phases: dict[str, float]) -> Iterator[None]:
    """Record a phase's wall time and announce it on stderr."""
    tqdm.write(f"== {name}", file=sys.stderr)
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = round(time.perf_counter() - start, 2)
        tqdm.write(f"== {name}: {phases[name]:.1f} s", file=sys.stderr)


def ground_truth(brute: BruteForce, queries: np.ndarray, batch: int) -> tuple[np.ndarray, CurvePoint]:
    """Exact top-k of every query, timed as brute force's batched throughput (after an untimed warm-up)."""
    brute.search(queries[:batch], K, 0)
    with tqdm(total=len(queries), desc=f"{brute.name} ground truth", unit="q") as bar:
        truth, seconds = run_batched(brute, queries, K, 0, batch, bar)
    return truth, CurvePoint(brute.name, 0, 1.0, len(queries) / seconds, seconds, len(queries), batch)


def latency_sample(queries: np.ndarray, wanted: int) -> np.ndarray:
    """The first `wanted` queries (all when 0)."""
    return queries if wanted <= 0 else queries[:wanted]


def run_baselines(args: argparse.Namespace, vectors: np.ndarray, queries: np.ndarray, res: Results
                  ) -> np.ndarray:
    """Brute force and hnswlib, before any cluster process exists; returns the ground truth."""
    brute = BruteForce()
    res.names[BRUTE] = brute.name
    brute.ingest(vectors, args.ingest_batch)
    with phase("brute force", res.phases_s):
        truth, point = ground_truth(brute, queries, args.batch)
        res.curves[BRUTE] = [point]
        res.latency[BRUTE] = [measure_latency(brute, latency_sample(queries, BRUTE_LATENCY_QUERIES), K, 0)]
    hnsw = Hnswlib(args.dim, args.m, args.ef_construction, args.threads)
    res.names[HNSWLIB] = hnsw.name
    with phase("hnswlib", res.phases_s):
        res.ingest[HNSWLIB] = measure_ingest(hnsw, vectors, args.ingest_batch)
        efs = sorted(set(args.ef) | set(args.hnswlib_extra_ef))
        res.curves[HNSWLIB] = measure_curve(hnsw, queries, truth, efs, args.batch, args.repeats)
        lat_q = latency_sample(queries, args.latency_queries)
        res.latency[HNSWLIB] = [measure_latency(hnsw, lat_q, K, ef) for ef in args.latency_ef]
    return truth


def print_log_tail(data_dir: Path) -> None:
    """Show the end of the coordinator's log on stderr (why a cluster run failed)."""
    log = data_dir / "logs" / "coordinator.log"
    if log.exists():
        tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        print(f"--- last lines of {log}:", *tail, sep="\n", file=sys.stderr)


def run_shoal(args: argparse.Namespace, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
              res: Results) -> None:
    """Start a local cluster in a temporary dir, measure Shoal through the SDK, always stop and clean up."""
    data_dir = Path(tempfile.mkdtemp(prefix="shoal-bench-", dir=args.data_dir))
    cluster = LocalCluster(data_dir)
    ok = False
    try:
        with phase("cluster start", res.phases_s):
            cluster.start()
        with phase("Shoal", res.phases_s), shoal.Client(cluster.address, timeout=CLIENT_TIMEOUT_S) as client:
            client.create_collection(COLLECTION, args.dim, "cosine", shards=args.shards, m=args.m,
                                     ef_construction=args.ef_construction, ef_search=EF_SEARCH_DEFAULT)
            system = Shoal(client, COLLECTION, args.shards)
            res.names[SHOAL] = system.name
            res.ingest[SHOAL] = measure_ingest(system, vectors, args.ingest_batch)
            res.curves[SHOAL] = measure_curve(system, queries, truth, args.ef, args.batch, args.repeats)
            lat_q = latency_sample(queries, args.latency_queries)
            res.latency[SHOAL] = [measure_latency(system, lat_q, K, ef) for ef in args.latency_ef]
            shard_address = client.describe_collection(COLLECTION).shard_info[0]["address"]
            for role, floor in ((ONE_SHARD, OneShard(shard_address)), (RPC_FLOOR, RpcFloor(cluster.address))):
                res.names[role] = floor.name
                res.latency[role] = [measure_latency(floor, lat_q, K, ef) for ef in args.latency_ef[:1]]
        ok = True
    finally:
        if not ok:
            print_log_tail(data_dir)
        cluster.stop()
        if args.keep_data:
            print(f"cluster data kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run every measurement, then write BENCHMARKS.md's section, the plot and results.json."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    spec = DataSpec(n=args.n, queries=args.queries, dim=args.dim, seed=args.seed)
    res = Results(command=shlex.join(["python", "-m", "bench.run", *argv]), machine=machine_facts(REPO),
                  data=spec, shards=args.shards, m=args.m, ef_construction=args.ef_construction,
                  ef_search_default=EF_SEARCH_DEFAULT, k=K, batch=args.batch, ingest_batch=args.ingest_batch,
                  threads=args.threads, repeats=args.repeats)
    with phase("data", res.phases_s):
        ds = make_dataset(spec)
    truth = run_baselines(args, ds.vectors, ds.queries, res)
    run_shoal(args, ds.vectors, ds.queries, truth, res)
    res.machine["load_average_end"] = load_average()
    section = render_section(res, args.plot.resolve(), args.out.resolve())
    write_section(section, args.out)
    plot_curves(res, args.plot)
    write_json(res, args.results)
    print(section)
    print(f"wrote {args.out}, {args.plot}, {args.results}", file=sys.stderr)


if __name__ == "__main__":
    main()
