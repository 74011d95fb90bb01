"""Prometheus metrics of a shard node, defined once."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from shard_node.disk import DISK_OPERATIONS, FAULT_KINDS
from shard_node.store import ShardFigures, StoreObservers

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REBUILD_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0)
REBUILD_OUTCOMES = ("ok", "error", "cancelled")


class _BeforeScrape:
    """A collector that exports nothing and runs callbacks first: registered before the gauges, it refreshes
    them on every scrape (the registry collects in registration order). One callback per hosted partition."""

    def __init__(self) -> None:
        self.callbacks: dict[tuple[str, str, str], Callable[[], None]] = {}

    def collect(self) -> Iterable[Metric]:
        for callback in list(self.callbacks.values()):
            callback()
        return []


class ShardMetrics:
    """The metric families one shard node exports, labelled by the partition (collection, shard, replica)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._before_scrape = _BeforeScrape()
        self.registry.register(self._before_scrape)
        labels = ("collection", "shard", "replica")
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
        self.tombstone_ratio = Gauge("shoal_shard_tombstone_ratio", "Tombstones / (live + tombstones)", labels,
                                     registry=self.registry)
        self.capacity = Gauge("shoal_shard_capacity", "Elements the index holds before it grows", labels,
                              registry=self.registry)
        self.memory_bytes = Gauge("shoal_shard_index_memory_bytes", "Estimated size of the partition in memory",
                                  labels, registry=self.registry)
        self.disk_bytes = Gauge("shoal_shard_index_disk_bytes", "Snapshot and WAL bytes on disk", labels,
                                registry=self.registry)
        self.memory_part_bytes = Gauge("shoal_shard_memory_bytes", "Estimated bytes in memory, by part "
                                       "(vectors, graph, payloads, text)", (*labels, "part"), registry=self.registry)
        self.disk_part_bytes = Gauge("shoal_shard_disk_bytes", "Snapshot bytes on disk, by part (vectors, graph, "
                                     "payloads; the WAL is shoal_shard_wal_bytes)", (*labels, "part"),
                                     registry=self.registry)
        self.rebuilds_running = Gauge("shoal_shard_rebuilds_running", "Index rebuilds under way (0 or 1)", labels,
                                      registry=self.registry)
        self.rebuild_progress = Gauge("shoal_shard_rebuild_progress", "Share of the running rebuild done", labels,
                                      registry=self.registry)
        self.last_rebuild_time = Gauge("shoal_shard_last_rebuild_timestamp_seconds",
                                       "When the last index rebuild finished (unix time, 0 = never)", labels,
                                       registry=self.registry)
        self.last_rebuild_seconds = Gauge("shoal_shard_last_rebuild_duration_seconds",
                                          "How long the last index rebuild took", labels, registry=self.registry)
        self.rebuilds_total = Gauge("shoal_shard_rebuilds_finished", "Index rebuilds finished by this process",
                                    labels, registry=self.registry)
        self.rebuilds_started = Counter("shoal_shard_rebuilds_started_total", "Index rebuilds started, by reason",
                                        (*labels, "reason"), registry=self.registry)
        self.rebuild_seconds = Histogram("shoal_shard_rebuild_seconds", "Duration of index rebuilds, by outcome",
                                         (*labels, "outcome"), buckets=REBUILD_BUCKETS, registry=self.registry)
        self.rebuild_elapsed = Gauge("shoal_shard_rebuild_elapsed_seconds",
                                     "Seconds the running index rebuild has taken so far (0 when idle)", labels,
                                     registry=self.registry)
        self.wal_fsync = Histogram("shoal_shard_wal_fsync_seconds", "Time to fsync one WAL record", labels,
                                   buckets=FSYNC_BUCKETS, registry=self.registry)
        self.wal_appended = Counter("shoal_shard_wal_appended_bytes", "Bytes appended to the write-ahead log",
                                    labels, registry=self.registry)
        self.disk_errors = Counter("shoal_shard_disk_errors_total",
                                   "Disk faults met (no space, read-only), by what the shard was writing",
                                   (*labels, "operation", "kind"), registry=self.registry)
        self.plans = Counter("shoal_shard_planner_plans_total", "Queries answered, by the plan the planner chose",
                             (*labels, "strategy"), registry=self.registry)

    def observers(self, labels: tuple[str, str, str]) -> StoreObservers:
        """Callbacks that feed a store's WAL fsync and rebuild timings into these metrics."""
        for outcome in REBUILD_OUTCOMES:  # every outcome exported from the start, so rates and alerts see 0
            self.rebuild_seconds.labels(*labels, outcome)
        for operation in DISK_OPERATIONS:  # likewise every disk fault: its alert compares increases with 0
            for kind in FAULT_KINDS:
                self.disk_errors.labels(*labels, operation, kind)
        fsync, appended = self.wal_fsync.labels(*labels), self.wal_appended.labels(*labels)

        def wal_fsync(seconds: float, nbytes: int) -> None:
            fsync.observe(seconds)
            appended.inc(nbytes)

        def rebuild_end(outcome: str, seconds: float) -> None:
            self.rebuild_seconds.labels(*labels, outcome).observe(seconds)

        def disk_error(operation: str, kind: str) -> None:
            self.disk_errors.labels(*labels, operation, kind).inc()

        return StoreObservers(wal_fsync=wal_fsync, rebuild_end=rebuild_end, disk_error=disk_error)

    def refresh_on_scrape(self, labels: tuple[str, str, str], figures: Callable[[], ShardFigures]) -> None:
        """Set the figure gauges from `figures()` at every scrape, so they are current even without writes or
        Stats calls (a rebuild's elapsed time keeps growing while it runs)."""
        self._before_scrape.callbacks[labels] = lambda: self.observe_figures(labels, figures())

    def forget(self, labels: tuple[str, str, str]) -> None:
        """Drop every series of a partition the node no longer hosts."""
        self._before_scrape.callbacks.pop(labels, None)
        extra = {id(self.requests): ("method", "code"), id(self.latency): ("method",),
                 id(self.rebuilds_started): ("reason",), id(self.rebuild_seconds): ("outcome",),
                 id(self.plans): ("strategy",), id(self.disk_errors): ("operation", "kind"),
                 id(self.memory_part_bytes): ("part",), id(self.disk_part_bytes): ("part",)}
        for family in (v for v in vars(self).values() if isinstance(v, MetricWrapperBase)):
            names = ("collection", "shard", "replica", *extra.get(id(family), ()))
            found = {tuple(sample.labels[n] for n in names) for metric in family.collect()
                     for sample in metric.samples if all(n in sample.labels for n in names)}
            for values in found:
                if values[:3] == labels:
                    with contextlib.suppress(KeyError):
                        family.remove(*values)

    def observe_figures(self, labels: tuple[str, str, str], f: ShardFigures) -> None:
        """Set the gauges from a shard's figures."""
        r = f.rebuild
        for gauge, value in ((self.vectors, f.live), (self.tombstones, f.tombstones),
                             (self.wal_bytes, f.wal_bytes), (self.tombstone_ratio, f.tombstone_ratio),
                             (self.capacity, f.capacity), (self.memory_bytes, f.memory_bytes),
                             (self.disk_bytes, f.disk_bytes), (self.rebuilds_running, int(r.running)),
                             (self.rebuild_progress, r.progress), (self.last_rebuild_time, r.last_finished_at),
                             (self.last_rebuild_seconds, r.last_seconds), (self.rebuilds_total, r.total),
                             (self.rebuild_elapsed, r.elapsed)):
            gauge.labels(*labels).set(value)
        for family, figures in ((self.memory_part_bytes, f.memory), (self.disk_part_bytes, f.disk)):
            for part, value in dataclasses.asdict(figures).items():
                family.labels(*labels, part).set(value)
