"""Prometheus metrics of the coordinator, defined once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
        self.shard_latency = Histogram("shoal_coordinator_shard_call_seconds", "Latency of one shard call",
                                       ("method",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.fanout_width = Histogram("shoal_coordinator_fanout_width", "Shards one request went to",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
