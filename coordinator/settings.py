"""Settings of the coordinator, from flags and SHOAL_* environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from coordinator.catalog import DEFAULT_TOMBSTONE_THRESHOLD
from protos.serving import EVENT_LOOPS
from protos.tls import ClientTLS, ServerTLSSettings
from shard_node.settings import DEFAULT_MAX_MESSAGE_BYTES

DEFAULT_PORT = 50051
MAX_K = 10_000          # largest k a search may ask for
MAX_EF = 10_000         # largest ef a search may ask for
MAX_BATCH = 100_000     # most documents or queries in one request
MAX_DIM = 65_536
MAX_SHARDS = 256
MAX_ID_BYTES = 512
MAX_REPLICATION = 5
MAX_QUERY_DEPTH = 32    # deepest query tree (AND/OR/NOT nesting) a search may send
# Each AND/OR level is two protobuf message levels and the protobuf runtime refuses 100: a deeper
# max_query_depth could never be reached by a query tree, and a parsed string that deep could not reach a shard.
QUERY_DEPTH_CEILING = 40
DEFAULT_DEADLINE_S = 300.0    # a request that sets no deadline gets this one
MAX_DEADLINE_S = 3600.0       # longer deadlines are cut to this (Compact with wait may take rebuild_timeout_s)
MAX_CONCURRENT_PER_CLIENT = 64
# Replication (coordinator/replicas.py, repair.py, breaker.py).
WRITE_STRAGGLER_MS = 250.0    # once W replicas acked, the others get this long before they count as behind
# Reads of one key (coordinator/coalesce.py) on the nodes at once; more wait and leave as one batch.
COALESCE_IN_FLIGHT = 2
HEDGE_AFTER_MS = 150.0        # a read replica that has not answered by then is hedged and marked suspect
REPAIR_INTERVAL_S = 1.0
REPAIR_CALL_TIMEOUT_S = 5.0   # one catch-up call (Stats, ReadLog, ApplyLog); a copy gets shard_timeout_s
PROBE_INTERVAL_S = 0.5        # suspect nodes are probed this often
PROBE_TIMEOUT_S = 1.0
CHECKSUM_INTERVAL_S = 10.0    # a shard's replicas compare content checksums at most this often
# Exit status of a coordinator that lost its Ray cluster (EX_TEMPFAIL): its supervisor starts it again.
RAY_LOST_EXIT_CODE = 75


@dataclass(frozen=True)
class CoordinatorSettings(ServerTLSSettings):
    """Coordinator settings."""

    host: str = field(default="127.0.0.1", metadata={"help": "address the public gRPC server binds"})
    port: int = field(default=DEFAULT_PORT, metadata={"help": "port of the public gRPC server (0 = any)"})
    data_dir: str = field(default=".shoal-data", metadata={
        "help": "where the catalogue and (on a single machine) shard data live"})
    ray_address: str = field(default="", metadata={
        "help": "Ray cluster to join (host:port, or ray://host:10001 as a Ray Client, as on Kubernetes); "
                "empty starts a local Ray instance in this process"})
    ray_namespace: str = field(default="shoal", metadata={
        "help": "Ray namespace of this deployment's shard actors (one per coordinator catalogue)"})
    default_shards: int = field(default=3, metadata={"help": "shards of a collection that names none"})
    hnsw_m: int = field(default=16, metadata={"help": "default HNSW M"})
    hnsw_ef_construction: int = field(default=200, metadata={"help": "default HNSW ef_construction"})
    hnsw_ef_search: int = field(default=128, metadata={"help": "default HNSW ef at search time"})
    max_k: int = field(default=MAX_K, metadata={"help": "largest k a search may ask for"})
    max_ef: int = field(default=MAX_EF, metadata={"help": "largest ef a search may ask for"})
    max_batch: int = field(default=MAX_BATCH, metadata={"help": "most documents or queries per request"})
    max_message_bytes: int = field(default=DEFAULT_MAX_MESSAGE_BYTES, metadata={
        "help": "largest gRPC message accepted or sent"})
    max_query_depth: int = field(default=MAX_QUERY_DEPTH, metadata={
        "help": "deepest nesting of AND/OR/NOT (and parentheses) in a query tree or query string"})
    default_deadline_s: float = field(default=DEFAULT_DEADLINE_S, metadata={
        "help": "deadline of a request that sets none; work past it is cancelled (DEADLINE_EXCEEDED)"})
    max_deadline_s: float = field(default=MAX_DEADLINE_S, metadata={
        "help": "longer request deadlines are cut to this"})
    max_concurrent_per_client: int = field(default=MAX_CONCURRENT_PER_CLIENT, metadata={
        "help": "requests one client (API key, else peer host) may have in flight; more get RESOURCE_EXHAUSTED "
                "(0 = no limit)"})
    shard_timeout_s: float = field(default=30.0, metadata={"help": "deadline of one call to a shard"})
    shard_restart_wait_s: float = field(default=60.0, metadata={
        "help": "how long to wait for a restarting shard actor before answering UNAVAILABLE"})
    shard_bind_host: str = field(default="127.0.0.1", metadata={
        "help": "address shard actors bind (0.0.0.0 on a multi-node Ray cluster)"})
    shard_data_dir: str = field(default="", metadata={
        "help": "root of shard data on the nodes (default: <data_dir>/collections)"})
    shard_ray_resource: str = field(default="", metadata={
        "help": "custom Ray resource each shard actor takes one unit of, so shards run only on Ray nodes that "
                "offer it (Kubernetes: the shard worker group); empty = any node"})
    ray_check_interval_s: float = field(default=5.0, metadata={
        "help": "how often the coordinator checks that its Ray cluster answers (0 = never)"})
    ray_lost_after_s: float = field(default=30.0, metadata={
        "help": "a Ray cluster that does not answer for this long is lost (a head restarted without GCS fault "
                f"tolerance): the coordinator exits with code {RAY_LOST_EXIT_CODE} so that its supervisor restarts "
                "it, and the new one re-creates the shard nodes, which reopen their partitions from disk"})
    rebalance_interval_s: float = field(default=30.0, metadata={
        "help": "how often the coordinator looks for a Ray node running no shard node while another runs several "
                "(a machine that joined or came back) and moves one there (0 = never)"})
    shard_metrics: bool = field(default=True, metadata={"help": "shard nodes serve Prometheus metrics"})
    blas_threads: int = field(default=1, metadata={
        "help": "BLAS threads of the coordinator process (0 = the library's default)"})
    event_loop: str = field(default="uvloop", metadata={
        "help": "event loop of the coordinator and its shard nodes: uvloop or asyncio", "choices": EVENT_LOOPS})
    shard_nodes: int = field(default=0, metadata={
        "help": "shard node actors to run (0 = one per unit of shard_ray_resource, else one per CPU of the Ray "
                "cluster; at least 1)"})
    embedder_address: str = field(default="", metadata={
        "help": "host:port of the embedder service (empty: no models; collections take bare vectors only)"})
    embedder_timeout_s: float = field(default=120.0, metadata={"help": "deadline of one call to the embedder"})
    metrics_port: int = field(default=-1, metadata={
        "help": "Prometheus metrics port of the coordinator (0 = any free port, -1 = off)"})
    metrics_sd_file: str = field(default="", metadata={
        "help": "write the shard actors' metrics endpoints here as Prometheus file-SD JSON (empty = do not)"})
    partial_wait_s: float = field(default=1.0, metadata={
        "help": "how long a request that allows partial results waits for a shard that does not answer"})
    write_straggler_ms: float = field(default=WRITE_STRAGGLER_MS, metadata={
        "help": "once a write has its write consistency, how long it still waits for the other up-to-date replicas "
                "before they count as behind (the repair loop catches them up)"})
    coalesce_in_flight: int = field(default=COALESCE_IN_FLIGHT, metadata={
        "help": "concurrent searches of one collection with the same k, ef and filter on the shard nodes at once; "
                "further ones wait and are sent together as one batch when one finishes (0 = never batch)"})
    hedge_after_ms: float = field(default=HEDGE_AFTER_MS, metadata={
        "help": "a read replica that has not answered within this is hedged (a peer is asked too, first answer "
                "wins) and its node marked suspect until it answers a health probe"})
    repair_interval_s: float = field(default=REPAIR_INTERVAL_S, metadata={
        "help": "how often the repair loop compares replicas' LSNs and catches up those behind (0 = off)"})
    repair_call_timeout_s: float = field(default=REPAIR_CALL_TIMEOUT_S, metadata={
        "help": "deadline of one catch-up call of the repair loop"})
    probe_interval_s: float = field(default=PROBE_INTERVAL_S, metadata={
        "help": "how often shard nodes marked suspect are probed"})
    probe_timeout_s: float = field(default=PROBE_TIMEOUT_S, metadata={"help": "deadline of one probe"})
    checksum_interval_s: float = field(default=CHECKSUM_INTERVAL_S, metadata={
        "help": "replicas of a shard at one LSN compare content checksums at most this often (0 = never)"})
    compaction_interval_s: float = field(default=10.0, metadata={
        "help": "how often the scheduler reads the shards' figures to start rebuilds (0 = no automatic ones)"})
    max_concurrent_rebuilds: int = field(default=1, metadata={
        "help": "most index rebuilds running at a time across the cluster"})
    compaction_min_tombstones: int = field(default=1000, metadata={
        "help": "a shard with fewer tombstones is not rebuilt for its tombstone ratio alone"})
    compaction_full_ratio: float = field(default=0.9, metadata={
        "help": "rebuild a shard holding tombstones once this share of its index capacity is used"})
    default_tombstone_threshold: float = field(default=DEFAULT_TOMBSTONE_THRESHOLD, metadata={
        "help": "tombstone ratio past which a shard is rebuilt, for collections that set none"})
    rebuild_timeout_s: float = field(default=3600.0, metadata={"help": "longest wait for one shard's rebuild"})
    # Security (README, "Security: TLS and API keys"); the public server's own tls_* come from ServerTLSSettings.
    internal_tls_ca: str = field(default="", metadata={
        "help": "PEM CA that signed the shard and embedder server certificates; set = dial them over TLS"})
    internal_tls_cert: str = field(default="", metadata={
        "help": "PEM client certificate the coordinator presents to shards and the embedder (mutual TLS)"})
    internal_tls_key: str = field(default="", metadata={"help": "PEM private key of internal_tls_cert"})
    internal_tls_server_name: str = field(default="", metadata={
        "help": "name checked in shard and embedder certificates (empty: the dialled host)"})
    shard_tls_cert: str = field(default="", metadata={
        "help": "PEM certificate the shard servers use (a path on every Ray node; empty: shards plaintext)"})
    shard_tls_key: str = field(default="", metadata={"help": "PEM private key of shard_tls_cert"})
    shard_tls_client_ca: str = field(default="", metadata={
        "help": "PEM CA; set = shards accept only clients with a certificate it signed (the coordinator's)"})
    api_keys_file: str = field(default="", metadata={
        "help": "file of '<read-only|read-write> <key>' lines; with it or env SHOAL_API_KEYS set, calls need a key"})

    def internal_tls(self) -> ClientTLS:
        """How the coordinator dials its shards and the embedder."""
        return ClientTLS(self.internal_tls_ca, self.internal_tls_cert, self.internal_tls_key,
                         self.internal_tls_server_name)
