"""Settings of a shard node (a process hosting many partitions), from flags and SHOAL_* environment."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from protos.serving import EVENT_LOOPS
from protos.tls import ServerTLSSettings

# Defaults live here, once.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_SNAPSHOT_EVERY_OPS = 20_000  # bounds WAL replay at start-up to seconds
DEFAULT_SNAPSHOT_WAL_BYTES = 512 * 1024 * 1024
DEFAULT_INITIAL_CAPACITY = 1024
MAX_M = 256  # largest HNSW M a collection or a rebuild may ask for
# A NodeSearch of at most this many (partitions x queries x beam) runs on the server's event loop, its partitions
# one after another: the thread hand-offs (loop -> handler thread -> one search thread per partition -> back) cost
# more CPU than such searches (measured: 0.6 ms of node CPU per 2-partition search at 5k x 128, ef 128); a bigger
# one goes to threads, partitions side by side, so health checks never wait on it.
INLINE_SEARCH_BUDGET = 4096
DEFAULT_ALLOWED_CACHE_MB = 64  # per partition: filters' allowed sets and their gathered rows (shard_node/allowed.py)

# Query planner (see shard_node/planner.py; calibrated by `make bench-filter`).
PLAN_EXACT_ALWAYS = 1024      # allowed sets this small are always scanned exactly
PLAN_OVERSAMPLE = 2.0         # post-filtered HNSW asks for k / selectivity * this many neighbours
PLAN_EF_PER_WANT = 2          # ef of a post-filtered round: this many times the neighbours it asks for
PLAN_ANTI_CORRELATED = 0.25   # a round keeping under this share of the expected hits switches to filtered HNSW
PLAN_MAX_EF = 8192            # largest beam a post-filtered round uses (past it the set is scanned exactly)
PLAN_GROWTH = 4               # and this many times more in each deeper round
PLAN_EXACT_PER_HNSW_EF = 12   # an exact scan of this many vectors costs about one unit of HNSW ef
PLAN_SMALL_SORT = 512       # an exact scan of at most this many gathered rows sorts them all (one numpy call)
PLAN_EXCLUSION_DEPTH = 64     # an exact scan checks NOT near exclusions on this many best candidates first
# An exact scan too large for the rows cache decodes every row when the allowed set is at least 1/this of the
# partition, else gathers the allowed ones (20k x 384, one query: all rows 3.4-3.8 ms decoded whole against
# 5.0-5.6 gathered; half of them 3.3-3.6 against 2.5-2.9).
PLAN_FULL_SCAN_SHARE = 1.5
HYBRID_DEPTH = 100            # each ranking's depth fused by RRF
# Exact top-K scans (rank-form NOT) of partitions with at least this many live rows narrow their candidates
# through the int8 sketch (shard_node/sketch.py) first; a full float32 scan when the sketch keeps more than
# 1 / SKETCH_MAX_SHARE of the rows (gathering that many costs about what reading them all in order does).
SKETCH_MIN_ROWS = 4096
SKETCH_MAX_SHARE = 4

# Binary storage (shard_node/storage.py): the Hamming pass keeps max(k * oversample, MIN_RESCORE) candidates,
# rescored exactly from the float16 copy. On the demo's real e5 vectors (4,223 docs, 200 held-out queries)
# recall@10 was 0.94 / 0.96 / 0.98 / 0.99 at oversample 16 / 32 / 64 / 128 (tests/unit/shard_node/test_storage.py).
DEFAULT_OVERSAMPLE = 64
MIN_RESCORE = 200
MAX_OVERSAMPLE = 1024


@dataclass(frozen=True)
class ShardSettings(ServerTLSSettings):
    """Shard node settings."""

    bind_host: str = field(default="127.0.0.1", metadata={"help": "address the Shard gRPC server binds"})
    advertise_host: str = field(default="", metadata={
        "help": "host others use to reach this shard (default: bind host, or this host's IP for 0.0.0.0)"})
    port: int = field(default=0, metadata={"help": "port of the Shard gRPC server (0 = any free port)"})
    grpc_workers: int = field(default=8, metadata={"help": "threads serving gRPC calls"})
    search_workers: int = field(default=4, metadata={
        "help": "threads one node searches the partitions of a request on, side by side"})
    search_threads: int = field(default=1, metadata={
        "help": "hnswlib threads per batched search call (calls already run in parallel)"})
    max_message_bytes: int = field(default=DEFAULT_MAX_MESSAGE_BYTES, metadata={
        "help": "largest gRPC message accepted or sent"})
    snapshot_every_ops: int = field(default=DEFAULT_SNAPSHOT_EVERY_OPS, metadata={
        "help": "write a snapshot after this many documents written since the last one"})
    snapshot_wal_bytes: int = field(default=DEFAULT_SNAPSHOT_WAL_BYTES, metadata={
        "help": "write a snapshot once the WAL holds this many bytes"})
    initial_capacity: int = field(default=DEFAULT_INITIAL_CAPACITY, metadata={
        "help": "starting HNSW capacity; the index doubles as it fills"})
    rebuild_threads: int = field(default=1, metadata={
        "help": "hnswlib threads a background index rebuild uses (the rest of the CPUs keep serving)"})
    allowed_cache_mb: int = field(default=DEFAULT_ALLOWED_CACHE_MB, metadata={
        "help": "MiB per partition kept of filters' allowed sets and their gathered vectors (LRU, per version)"})
    metrics_port: int = field(default=-1, metadata={
        "help": "Prometheus metrics port (0 = any free port, -1 = off)"})
    blas_threads: int = field(default=1, metadata={
        "help": "BLAS threads per node process (0 = the library's default); searches run on their own threads"})
    event_loop: str = field(default="uvloop", metadata={
        "help": "event loop of the node's gRPC server: uvloop or asyncio", "choices": EVENT_LOOPS})

    def to_dict(self) -> dict[str, object]:
        """Plain dict, to hand the settings to a shard actor."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PartitionSpec:
    """What a shard's partition is: fixed when its collection is created."""

    dim: int
    metric: str  # "cosine" | "l2" | "ip"
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 128
    fields: dict[str, str] = field(default_factory=dict)  # indexed payload fields: name -> type
    storage: str = "float32"  # how the partition keeps its vectors (shard_node/storage.py)

    def to_dict(self) -> dict[str, object]:
        """Plain dict (JSON, Ray arguments)."""
        return dataclasses.asdict(self)
