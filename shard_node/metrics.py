"""Prometheus metrics of a shard node, defined once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ShardMetrics:
    """The metric families one shard process exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ("collection", "shard")
        self.requests = Counter("shoal_shard_requests_total", "Shard RPCs by method and status code",
                                (*labels, "method", "code"), registry=self.registry)
        self.latency = Histogram("shoal_shard_request_seconds", "Shard RPC latency",
                                 (*labels, "method"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.vectors = Gauge("shoal_shard_vectors", "Live vectors in the partition", labels,
                             registry=self.registry)
        self.tombstones = Gauge("shoal_shard_tombstones", "Deleted vectors still in the graph", labels,
                                registry=self.registry)
        self.wal_bytes = Gauge("shoal_shard_wal_bytes", "Bytes in the write-ahead log", labels,
                               registry=self.registry)
