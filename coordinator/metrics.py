"""Prometheus metrics of the coordinator, defined once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from protos import shard_pb2
from shard_node.rebuild import tombstone_ratio

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CoordinatorMetrics:
    """The metric families the coordinator exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("shoal_coordinator_requests_total", "Public RPCs by method and status code",
                                ("method", "code"), registry=self.registry)
        self.latency = Histogram("shoal_coordinator_request_seconds", "Public RPC latency, end to end",
                                 ("method",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.shard_calls = Counter("shoal_coordinator_shard_calls_total", "Calls to shards by outcome",
                                   ("outcome",), registry=self.registry)
        # Per shard (not per replica or caller): collections x shards x methods stays small and bounded.
        self.shard_latency = Histogram("shoal_coordinator_shard_call_seconds",
                                       "Latency of one successful shard call, per collection and shard",
                                       ("collection", "shard", "method"), buckets=LATENCY_BUCKETS,
                                       registry=self.registry)
        self.node_latency = Histogram("shoal_coordinator_node_call_seconds",
                                      "Latency of one successful call to a shard node, per node",
                                      ("node", "method"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.fanout_width = Histogram("shoal_coordinator_fanout_width", "Shards one request went to",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.partial_answers = Counter("shoal_coordinator_partial_answers_total",
                                       "Reads answered without some shards (the request allowed it)",
                                       registry=self.registry)
        self.rebuilds_running = Gauge("shoal_coordinator_rebuilds_running",
                                      "Shard index rebuilds under way across the cluster", registry=self.registry)
        self.rebuilds_scheduled = Counter("shoal_coordinator_rebuilds_scheduled_total",
                                          "Shard index rebuilds the scheduler started, by reason", ("reason",),
                                          registry=self.registry)
        self.rebuilds_failed = Counter("shoal_coordinator_rebuilds_failed_total",
                                       "Shard index rebuilds the scheduler started that failed, by reason", ("reason",),
                                       registry=self.registry)
        self.replicas_behind = Gauge("shoal_coordinator_replicas_behind",
                                     "Shard replicas not known to hold every acknowledged write of their shard",
                                     registry=self.registry)
        self.catchups = Counter("shoal_coordinator_catchups_total",
                                "Replicas brought up to date by the repair loop, by how (log, copy)", ("how",),
                                registry=self.registry)
        self.divergences = Counter("shoal_coordinator_divergences_total",
                                   "Replicas found at the same LSN with other content (replaced by a copy)",
                                   registry=self.registry)
        self.coalesced_reads = Counter("shoal_coordinator_coalesced_reads_total",
                                       "Searches sent to the shard nodes in one batch with other concurrent ones",
                                       registry=self.registry)
        self.hedged_reads = Counter("shoal_coordinator_hedged_reads_total",
                                    "Reads sent to a second replica because the first was slow", registry=self.registry)
        self.suspect_nodes = Gauge("shoal_coordinator_suspect_nodes",
                                   "Shard nodes the circuit breaker keeps out of reads until a probe answers",
                                   registry=self.registry)
        shard = ("collection", "shard", "replica")
        self.shard_up = Gauge("shoal_coordinator_shard_up",
                              "1 when a shard replica answered the scheduler's last figures poll, else 0", shard,
                              registry=self.registry)
        self.shard_targets = Gauge("shoal_coordinator_shard_metrics_targets",
                                   "Shard node metrics endpoints in the service-discovery list", registry=self.registry)
        self.shard_figures = {
            name: Gauge(f"shoal_coordinator_shard_{name}", help_, shard, registry=self.registry)
            for name, help_ in (
                ("live_documents", "Live documents of a shard replica, as last read by the scheduler"),
                ("tombstone_count", "Deleted documents still in a shard replica's graph"),
                ("tombstone_fraction", "Tombstones / (live + tombstones) of a shard replica"),
                ("memory_bytes", "Estimated in-memory size of a shard replica's partition"),
                ("disk_bytes", "Snapshot + WAL bytes of a shard replica"),
                ("rebuild_running", "1 while a shard replica rebuilds its index"),
                ("last_rebuild_timestamp", "When a shard replica's last rebuild finished (unix seconds)"),
                ("last_rebuild_seconds", "How long a shard replica's last rebuild took"),
            )
        }

    def count_refusal(self, method: str, code: str) -> None:
        """Count a request refused before it ran (API key, admission) like any answered status."""
        self.requests.labels(method, code).inc()

    def observe_shard(self, collection: str, index: int, replica: int, s: shard_pb2.ShardStats | None) -> None:
        """Record one shard replica's figures (None: it did not answer)."""
        labels = (collection, str(index), str(replica))
        self.shard_up.labels(*labels).set(0 if s is None else 1)
        if s is None:
            return
        values = {"live_documents": s.live, "tombstone_count": s.tombstones,
                  "tombstone_fraction": tombstone_ratio(s.live, s.tombstones),
                  "memory_bytes": s.memory_bytes, "disk_bytes": s.disk_bytes,
                  "rebuild_running": int(s.rebuild.running), "last_rebuild_timestamp": s.rebuild.last_finished_at,
                  "last_rebuild_seconds": s.rebuild.last_seconds}
        for name, value in values.items():
            self.shard_figures[name].labels(*labels).set(value)

    def forget_collection(self, collection: str) -> None:
        """Drop the per-shard series of a dropped collection."""
        shard = ("collection", "shard", "replica")
        families = [(f, shard) for f in (self.shard_up, *self.shard_figures.values())]
        families.append((self.shard_latency, ("collection", "shard", "method")))
        for family, names in families:
            for labels in _label_sets(family, names):
                if labels[0] == collection:
                    family.remove(*labels)


def _label_sets(family: MetricWrapperBase, names: tuple[str, ...]) -> set[tuple[str, ...]]:
    """The label values of every child of a family, read through its public samples."""
    return {tuple(sample.labels[n] for n in names)
            for metric in family.collect() for sample in metric.samples if all(n in sample.labels for n in names)}
