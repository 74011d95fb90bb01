"""`python -m bench.run`: Shoal (2 and 4 shards) vs in-process hnswlib vs PostgreSQL + pgvector vs brute force on
one synthetic data set, with the latency floor, 16 concurrent clients and the memory of many small collections.

Systems take turns within each of --passes passes; the best pass counts. Writes its section of BENCHMARKS.md,
bench/recall_qps.png and bench/out/results.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

import shoal
from bench.concurrency import Opener, fastest_concurrent, run_concurrent
from bench.data import DataSpec, make_dataset
from bench.machine import load_average, machine_facts
from bench.measure import (
    CurvePoint,
    cheapest_ef_reaching,
    fastest_latency,
    fastest_points,
    measure_curve,
    measure_ingest,
    measure_latency,
    run_batched,
)
from bench.memory import MIB, fill_collections, memory_of, process_tree
from bench.pgvector_peer import PgServer, PgVector
from bench.report import (
    BRUTE,
    HNSWLIB,
    HNSWLIB_1T,
    PGVECTOR,
    RPC_COORDINATOR,
    Results,
    partition_role,
    plot_curves,
    render_section,
    rpc_node_role,
    shoal_role,
    write_json,
    write_section,
)
from bench.systems import BruteForce, Hnswlib, RpcFloor, Shoal
from shoal.serve import LocalCluster

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "BENCHMARKS.md"
DEFAULT_PLOT = REPO / "bench" / "recall_qps.png"
DEFAULT_RESULTS = REPO / "bench" / "out" / "results.json"
DEFAULT_SHARDS = (2, 4)
DEFAULT_EFS = (16, 32, 64, 128, 256)
# Shoal merges several shards' candidates, so it reaches higher recall than one index at the same ef;
# these extra hnswlib points stretch its curve far enough to compare the two at equal recall.
# They are cheap in-process, and a finer curve lets "the cheapest ef reaching Shoal's recall" land close to it.
DEFAULT_HNSWLIB_EXTRA_EFS = (24, 48, 96, 192, 384, 512, 1024)
# Up to where pgvector reaches Shoal's recall at ef 128 (it needs a larger ef than a merge of shards).
DEFAULT_PG_EFS = (16, 24, 32, 40, 48, 64, 96, 128, 192, 256, 384, 512)
SEED = 20_240_601
K = 10
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
EF_SEARCH_DEFAULT = 128
FLOOR_EF = 128
CONCURRENCY_EFS = [64, 128]   # the concurrent-client runs: the peer figure (ef 64) and the floor's ef
CLIENTS = 16
CLIENT_QUERIES = 200            # single searches per concurrent client and pass
PASSES = 3
SEARCH_BATCH = 500
INGEST_BATCH = 1000
BRUTE_LATENCY_QUERIES = 200     # exact single queries scan every vector: a sample is enough for percentiles
MEMORY_COLLECTIONS = 100
MEMORY_SHARDS = 3
MEMORY_VECTORS = 1000
MEMORY_CAP_GB = 6.0
COLLECTION = "bench"
CLIENT_TIMEOUT_S = 300.0        # one upsert or search_batch on a busy 2-CPU machine can take a while
LOG_TAIL_LINES = 40
PEER_PACKAGES = ("pgserver", "psycopg", "pgvector")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="vectors indexed")
    p.add_argument("--dim", type=int, default=384, help="vector dimension")
    p.add_argument("--queries", type=int, default=1000, help="query vectors (not in the index)")
    p.add_argument("--shards", type=int, nargs="+", default=list(DEFAULT_SHARDS),
                   help="shard counts: one Shoal collection each, all in one cluster")
    p.add_argument("--ef", type=int, nargs="+", default=list(DEFAULT_EFS),
                   help="ef values of the batched recall/QPS curve and of the single-query sweep")
    p.add_argument("--hnswlib-extra-ef", type=int, nargs="*", default=list(DEFAULT_HNSWLIB_EXTRA_EFS),
                   help="further ef values measured for hnswlib only (to cover Shoal's recall range)")
    p.add_argument("--pg-ef", type=int, nargs="+", default=list(DEFAULT_PG_EFS),
                   help="hnsw.ef_search values of pgvector's single-query sweep")
    p.add_argument("--floor-ef", type=int, default=FLOOR_EF,
                   help="ef of the floor comparison (Shoal p50 vs RPC hops + one partition's search)")
    p.add_argument("--latency-queries", type=int, default=0,
                   help="single queries timed per system and ef (0 = all queries)")
    p.add_argument("--batch", type=int, default=SEARCH_BATCH, help="queries per batched search call")
    p.add_argument("--passes", type=int, default=PASSES,
                   help="passes over every measurement, systems taking turns; the best pass counts")
    p.add_argument("--clients", type=int, default=CLIENTS, help="concurrent clients (threads, one connection each)")
    p.add_argument("--client-queries", type=int, default=CLIENT_QUERIES,
                   help="single searches per concurrent client and pass")
    p.add_argument("--client-processes", action="store_true",
                   help="concurrent clients as processes of their own (default: threads of the benchmark process)")
    p.add_argument("--concurrency-ef", type=int, nargs="+", default=CONCURRENCY_EFS,
                   help="ef values of the concurrent-client runs")
    p.add_argument("--ingest-batch", type=int, default=INGEST_BATCH, help="vectors per upsert / add_items call")
    p.add_argument("--m", type=int, default=HNSW_M, help="HNSW M (every system)")
    p.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION,
                   help="HNSW ef_construction (every system)")
    p.add_argument("--seed", type=int, default=SEED, help="seed of the synthetic data")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="hnswlib threads for batched search and ingest; pgvector's parallel index build")
    p.add_argument("--memory-collections", type=int, default=MEMORY_COLLECTIONS,
                   help="collections of the memory run (0 = skip it)")
    p.add_argument("--memory-shards", type=int, default=MEMORY_SHARDS, help="shards per memory-run collection")
    p.add_argument("--memory-vectors", type=int, default=MEMORY_VECTORS, help="vectors per memory-run collection")
    p.add_argument("--memory-cap-gb", type=float, default=MEMORY_CAP_GB,
                   help="stop creating memory-run collections once the Shoal processes' RSS would pass this")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="BENCHMARKS.md to write the section into")
    p.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="recall/QPS plot (PNG)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="raw results (JSON)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="parent of the temporary data dirs (clusters, PostgreSQL; default: the system temp dir)")
    p.add_argument("--keep-data", action="store_true", help="keep the data dirs instead of deleting them")
    args = p.parse_args(argv)
    sizes = (args.n, args.dim, args.queries, args.batch, args.ingest_batch, args.passes, args.clients,
             args.client_queries, *args.shards)
    if min(sizes) < 1 or args.n < K or min(args.memory_collections, args.memory_vectors) < 0:
        p.error(f"--n must be at least {K}, and sizes, shards, passes, clients and batches positive")
    if min([*args.ef, *args.hnswlib_extra_ef, *args.pg_ef, args.floor_ef, *args.concurrency_ef]) < K:
        p.error(f"every ef must be at least k={K}")
    if args.memory_collections and (args.memory_shards < 1 or args.memory_vectors < args.memory_shards):
        p.error("--memory-shards must be positive and --memory-vectors at least that")
    return args


@contextmanager
def phase(name: str, phases: dict[str, float]) -> Iterator[None]:
    """Record a phase's wall time and announce it on stderr."""
    tqdm.write(f"== {name} (load {load_average()})", file=sys.stderr)
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = round(time.perf_counter() - start, 2)
        tqdm.write(f"== {name}: {phases[name]:.1f} s", file=sys.stderr)


def print_log_tail(data_dir: Path) -> None:
    """Show the end of the coordinator's log on stderr (why a cluster run failed)."""
    log = data_dir / "logs" / "coordinator.log"
    if log.exists():
        tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        print(f"--- last lines of {log}:", *tail, sep="\n", file=sys.stderr)


@contextmanager
def temp_dir(prefix: str, args: argparse.Namespace) -> Iterator[Path]:
    """A fresh directory, deleted afterwards unless --keep-data."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=args.data_dir))
    try:
        yield path
    finally:
        if args.keep_data:
            print(f"data kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def local_cluster(data_dir: Path) -> Iterator[LocalCluster]:
    """A LocalCluster without the embedder (the benchmark sends raw vectors); logs shown if it fails."""
    cluster = LocalCluster(data_dir, embedder=False)
    try:
        cluster.start()
        yield cluster
    except BaseException:
        print_log_tail(data_dir)
        raise
    finally:
        cluster.stop()


class Bench:
    """Every system of the main comparison, built once, then measured pass after pass."""

    def __init__(self, args: argparse.Namespace, vectors: np.ndarray, queries: np.ndarray, res: Results) -> None:
        self.args = args
        self.vectors = vectors
        self.queries = queries
        self.res = res
        self.lat_q = queries if args.latency_queries <= 0 else queries[:args.latency_queries]
        self.sweep = sorted(set(args.ef) | {args.floor_ef})
        self.truth = np.empty((0, K), dtype=np.int64)
        self.curve_passes: dict[str, list[list[CurvePoint]]] = {}
        self.latency_passes: dict[tuple[str, int], list] = {}
        self.concurrent_passes: dict[tuple[str, int], list] = {}
        self.brute = BruteForce()
        self.hnsw = Hnswlib(args.dim, args.m, args.ef_construction, args.threads)
        self.partitions: dict[int, Hnswlib] = {}
        self.pg: PgVector | None = None
        self.pg_server: PgServer | None = None
        self.cluster: LocalCluster | None = None
        self.shoal: dict[int, Shoal] = {}
        self.floors: dict[str, RpcFloor] = {}
        self.pg_concurrency_efs: list[int] = []
        self.hnsw_single_efs: list[int] = []

    # ---- building ---------------------------------------------------------------------------------------
    def build_baselines(self) -> None:
        """Brute force (and the ground truth), hnswlib over everything and one partition per shard count."""
        res, args = self.res, self.args
        for role, system in ((BRUTE, self.brute), (HNSWLIB, self.hnsw)):
            res.names[role] = system.name
        with phase("ground truth", res.phases_s):
            self.brute.ingest(self.vectors, args.ingest_batch)
            with tqdm(total=len(self.queries), desc="ground truth", unit="q", leave=False) as bar:
                self.truth, _ = run_batched(self.brute, self.queries, K, 0, args.batch, bar)
        with phase("hnswlib build", res.phases_s):
            res.ingest[HNSWLIB] = measure_ingest(self.hnsw, self.vectors, args.ingest_batch)
            for shards in args.shards:
                rows = len(self.vectors) // shards
                part = Hnswlib(args.dim, args.m, args.ef_construction, args.threads,
                               name=f"one partition, in-process hnswlib ({rows:,} vectors = 1/{shards})")
                part.ingest(self.vectors[:rows], args.ingest_batch)
                self.partitions[shards] = part
                res.names[partition_role(shards)] = part.name

    def build_pgvector(self, stack: ExitStack) -> None:
        """Start PostgreSQL, COPY the vectors in and build its HNSW index."""
        res, args = self.res, self.args
        with phase("pgvector build", res.phases_s):
            server = PgServer(stack.enter_context(temp_dir("shoal-bench-pg-", args)) / "pgdata")
            uri = server.start()
            stack.callback(server.stop)
            self.pg_server = server
            self.pg = PgVector(uri, args.dim, args.m, args.ef_construction, args.threads)
            stack.callback(self.pg.close)
            res.names[PGVECTOR] = self.pg.name
            res.ingest[PGVECTOR] = measure_ingest(self.pg, self.vectors, args.ingest_batch)
            res.notes["pgvector_index_build_s"] = round(self.pg.build_seconds, 2)
            res.machine["versions"].update(self.pg.versions())

    def build_shoal(self, stack: ExitStack) -> None:
        """One cluster, one collection per shard count, each filled through the SDK."""
        res, args = self.res, self.args
        with phase("cluster start", res.phases_s):
            self.cluster = stack.enter_context(local_cluster(stack.enter_context(temp_dir("shoal-bench-", args))))
        floor = RpcFloor(self.cluster.address, "client → coordinator: empty RPC (Health.Check)")
        stack.callback(floor.close)
        self.floors[RPC_COORDINATOR] = floor
        res.names[RPC_COORDINATOR] = floor.name
        for shards in args.shards:
            with phase(f"Shoal {shards} shards ingest", res.phases_s):
                client = stack.enter_context(shoal.Client(self.cluster.address, timeout=CLIENT_TIMEOUT_S))
                name = f"{COLLECTION}{shards}"
                client.create_collection(name, args.dim, "cosine", shards=shards, m=args.m,
                                         ef_construction=args.ef_construction, ef_search=EF_SEARCH_DEFAULT)
                system = Shoal(client, name, shards)
                res.names[shoal_role(shards)] = system.name
                res.ingest[shoal_role(shards)] = measure_ingest(system, self.vectors, args.ingest_batch)
                self.shoal[shards] = system
                address = client.describe_collection(name).shard_info[0]["address"]
                if address:
                    node = RpcFloor(address, f"client → shard of the {shards}-shard collection: empty RPC "
                                             "(Health.Check)")
                    stack.callback(node.close)
                    self.floors[rpc_node_role(shards)] = node
                    res.names[rpc_node_role(shards)] = node.name
                    res.notes[f"shard_address_{shards}"] = address
                else:
                    res.notes[f"shard_address_{shards}"] = "DescribeCollection reported no shard address"

    def record_memory(self) -> None:
        """RSS of the Shoal processes holding every collection, and of PostgreSQL holding its table and index."""
        assert self.cluster is not None and self.pg_server is not None
        for key, roots in (("shoal", self.cluster.process_ids()), ("postgresql", self.pg_server.pids())):
            use = memory_of(process_tree(roots))
            self.res.notes[f"{key}_rss_mib"] = round(use.rss_bytes / MIB)
            self.res.notes[f"{key}_pss_mib"] = round(use.pss_bytes / MIB)
            self.res.notes[f"{key}_processes"] = use.processes

    # ---- one pass -----------------------------------------------------------------------------------------
    def batched(self) -> None:
        """Recall/QPS curves of the systems with a batched search call."""
        args = self.args
        runs: list[tuple[str, object, list[int]]] = [
            *((shoal_role(s), self.shoal[s], args.ef) for s in args.shards),
            (HNSWLIB, self.hnsw, sorted(set(args.ef) | set(args.hnswlib_extra_ef))),
        ]
        for role, system, efs in runs:
            self.curve_passes.setdefault(role, []).append(
                measure_curve(system, self.queries, self.truth, efs, args.batch, 1))
        with tqdm(total=len(self.queries), desc="brute force batched", unit="q", leave=False) as bar:
            _, seconds = run_batched(self.brute, self.queries, K, 0, args.batch, bar)
        self.curve_passes.setdefault(BRUTE, []).append(
            [CurvePoint(self.brute.name, 0, 1.0, len(self.queries) / seconds, seconds, len(self.queries),
                        args.batch, [seconds])])

    def single(self) -> None:
        """Single-query latency (with recall) of every system at its efs, then the floor's parts."""
        args = self.args
        runs: list[tuple[str, object, list[int], np.ndarray, bool]] = [
            *((shoal_role(s), self.shoal[s], self.sweep, self.lat_q, True) for s in args.shards),
            (HNSWLIB, self.hnsw, self.sweep, self.lat_q, True),
            (PGVECTOR, self.pg, args.pg_ef, self.lat_q, True),
            (BRUTE, self.brute, [0], self.lat_q[:BRUTE_LATENCY_QUERIES], False),
            *((partition_role(s), self.partitions[s], [args.floor_ef], self.lat_q, False) for s in args.shards),
            *((role, floor, [0], self.lat_q, False) for role, floor in self.floors.items()),
        ]
        for role, system, efs, queries, with_recall in runs:
            for ef in efs:
                x = measure_latency(system, queries, K, ef, self.truth if with_recall else None)
                self.latency_passes.setdefault((role, ef), []).append(x)

    def concurrent(self) -> None:
        """Many clients at once: Shoal at each concurrency ef; pgvector there and at Shoal's recalls; and
        hnswlib's single-thread QPS at Shoal's recall."""
        args = self.args
        assert self.cluster is not None and self.pg is not None
        for shards in args.shards:
            opener = Opener(Shoal.connect, (self.cluster.address, self.shoal[shards].collection, shards,
                                            CLIENT_TIMEOUT_S))
            for ef in args.concurrency_ef:
                self._concurrent(shoal_role(shards), opener, ef)
        if not self.pg_concurrency_efs:   # the first pass picks the efs that match Shoal's recall
            self._pick_matching_efs()
        for ef in self.pg_concurrency_efs:
            self._concurrent(PGVECTOR, self.pg.opener(), ef)
        single = self.hnsw.with_threads(1, "hnswlib (in-process, 1 thread)")
        self.res.names[HNSWLIB_1T] = single.name
        self.curve_passes.setdefault(HNSWLIB_1T, []).append(
            measure_curve(single, self.queries, self.truth, self.hnsw_single_efs, args.batch, 1))

    def _concurrent(self, role: str, opener: Opener, ef: int) -> None:
        args = self.args
        tqdm.write(f"   {args.clients} concurrent clients ({self.res.client_mode}): {self.res.names[role]}, ef={ef}",
                   file=sys.stderr)
        x = run_concurrent(opener, self.res.names[role], self.queries, self.truth, K, ef, args.clients,
                           args.client_queries, args.client_processes)
        self.concurrent_passes.setdefault((role, ef), []).append(x)

    def _pick_matching_efs(self) -> None:
        """pgvector at the concurrency efs and at the cheapest ef reaching each Shoal run's recall; hnswlib
        (one thread) likewise, from recall measured in this pass."""
        args = self.args
        shoal_recalls = [self.concurrent_passes[(shoal_role(s), ef)][0].recall
                         for s in args.shards for ef in args.concurrency_ef]
        pg_recall = {ef: self.latency_passes[(PGVECTOR, ef)][0].recall for ef in args.pg_ef}
        hnsw_recall = {p.ef: p.recall for p in self.curve_passes[HNSWLIB][0]}
        pg_efs = set(args.concurrency_ef)
        hnsw_efs = set()
        for recall in shoal_recalls:
            pg_efs.add(cheapest_ef_reaching(pg_recall, recall) or max(pg_recall))
            hnsw_efs.add(cheapest_ef_reaching(hnsw_recall, recall) or max(hnsw_recall))
        self.pg_concurrency_efs, self.hnsw_single_efs = sorted(pg_efs), sorted(hnsw_efs)

    def finish(self) -> None:
        """Keep the best pass of every measurement."""
        res = self.res
        res.curves = {role: fastest_points(passes) for role, passes in self.curve_passes.items()}
        for (role, _), runs in self.latency_passes.items():
            res.latency.setdefault(role, []).append(fastest_latency(runs))
        for (role, _), runs in self.concurrent_passes.items():
            res.concurrent.setdefault(role, []).append(fastest_concurrent(runs))


def run_main(args: argparse.Namespace, vectors: np.ndarray, queries: np.ndarray, res: Results) -> None:
    """Build every system, then run the passes; every process started is stopped."""
    bench = Bench(args, vectors, queries, res)
    with ExitStack() as stack:
        bench.build_baselines()
        bench.build_pgvector(stack)
        bench.build_shoal(stack)
        bench.record_memory()
        for i in range(args.passes):
            with phase(f"pass {i + 1}/{args.passes}", res.phases_s):
                res.machine.setdefault("load_average_per_pass", []).append(load_average())
                bench.batched()
                bench.single()
                bench.concurrent()
        bench.finish()


def run_memory(args: argparse.Namespace, res: Results) -> None:
    """A fresh cluster filled with many small collections, its processes' RSS watched (capped)."""
    if args.memory_collections <= 0:
        return
    spec = DataSpec(n=args.memory_vectors, queries=1, dim=args.dim, seed=args.seed + 1)
    vectors = make_dataset(spec).vectors
    with phase("memory", res.phases_s), temp_dir("shoal-bench-mem-", args) as data_dir, \
            local_cluster(data_dir) as cluster, shoal.Client(cluster.address, timeout=CLIENT_TIMEOUT_S) as client:
        res.memory = fill_collections(client, cluster.process_ids(), args.memory_collections, args.memory_shards,
                                      vectors, int(args.memory_cap_gb * 2**30))


def check_peer_packages() -> None:
    """Exit with the install command when the pgvector peer's packages are missing (imported only when used)."""
    missing = [name for name in PEER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(f"bench.run needs {', '.join(missing)}: pip install -e '.[bench]' (or make install)")


def main(argv: Sequence[str] | None = None) -> None:
    """Run every measurement, then write BENCHMARKS.md's section, the plot and results.json."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    check_peer_packages()
    spec = DataSpec(n=args.n, queries=args.queries, dim=args.dim, seed=args.seed)
    res = Results(command=shlex.join(["python", "-m", "bench.run", *argv]), machine=machine_facts(REPO),
                  data=spec, shards=args.shards, m=args.m, ef_construction=args.ef_construction,
                  ef_search_default=EF_SEARCH_DEFAULT, k=K, batch=args.batch, ingest_batch=args.ingest_batch,
                  threads=args.threads, passes=args.passes, clients=args.clients,
                  client_queries=args.client_queries, concurrency_efs=args.concurrency_ef, floor_ef=args.floor_ef,
                  client_mode="processes" if args.client_processes else "threads")
    # The harness's own numpy work (ground truth, recall) must not spread over the cores the servers use.
    with threadpool_limits(limits=1):
        with phase("data", res.phases_s):
            ds = make_dataset(spec)
        run_main(args, ds.vectors, ds.queries, res)
        run_memory(args, res)
    res.machine["load_average_end"] = load_average()
    section = render_section(res, args.plot.resolve(), args.out.resolve())
    write_section(section, args.out)
    plot_curves(res, args.plot)
    write_json(res, args.results)
    print(section)
    print(f"wrote {args.out}, {args.plot}, {args.results}", file=sys.stderr)


if __name__ == "__main__":
    main()
