"""Prometheus metrics of the embedder, defined once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class EmbedderMetrics:
    """The metric families the embedder exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("shoal_embedder_requests_total", "RPCs by method and status code",
                                ("method", "code"), registry=self.registry)
        self.latency = Histogram("shoal_embedder_request_seconds", "RPC latency, end to end",
                                 ("method",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.items = Counter("shoal_embedder_items_total", "Texts and images embedded", ("model", "input"),
                             registry=self.registry)
        self.batch_size = Histogram("shoal_embedder_batch_size", "Items encoded together in one batch",
                                    ("model", "input"), buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_latency = Histogram("shoal_embedder_batch_seconds", "Time to encode one batch",
                                       ("model", "input"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.models_loaded = Gauge("shoal_embedder_models_loaded", "Models loaded in memory", registry=self.registry)
