"""The Shard gRPC service of a shard node: proto in, the named partition's ShardStore calls, proto out."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import grpc

from protos import common_pb2, shard_pb2, shard_pb2_grpc
from protos.errors import InvalidArgument, rpc_edge
from protos.serving import observe
from protos.wire import METRICS, pack_vector, payload_to_proto
from shard_node.metrics import ShardMetrics
from shard_node.node import PartitionPlace, ShardNode
from shard_node.node_search import node_search
from shard_node.partition import MemoryFigures
from shard_node.settings import MAX_M, PartitionSpec
from shard_node.storage import check_storage
from shard_node.store import ShardFigures, ShardStore


def _bytes(m: MemoryFigures) -> common_pb2.StorageBytes:
    return common_pb2.StorageBytes(vectors=m.vectors, graph=m.graph, payloads=m.payloads, text=m.text)


def figures_to_proto(f: ShardFigures) -> shard_pb2.ShardStats:
    """ShardFigures as a ShardStats message."""
    r = f.rebuild
    return shard_pb2.ShardStats(
        live=f.live, tombstones=f.tombstones, capacity=f.capacity, last_lsn=f.last_lsn,
        snapshot_lsn=f.snapshot_lsn, wal_bytes=f.wal_bytes, documents=f.documents, slots_used=f.slots_used,
        m=f.m, ef_construction=f.ef_construction, memory_bytes=f.memory_bytes, disk_bytes=f.disk_bytes,
        storage=f.storage, memory=_bytes(f.memory), disk=_bytes(f.disk),
        rebuild=common_pb2.RebuildStatus(
            running=r.running, phase=r.phase, progress=r.progress, total=r.total,
            last_finished_at=r.last_finished_at, last_seconds=r.last_seconds, last_reason=r.last_reason,
            last_error=r.last_error))


def spec_from_json(text: str) -> PartitionSpec:
    """A PartitionSpec from its JSON form, or InvalidArgument saying what is wrong with it."""
    try:
        raw = json.loads(text)
        spec = PartitionSpec(**raw) if isinstance(raw, dict) else None
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"spec_json is not a partition spec ({exc})") from None
    if spec is None or not isinstance(spec.dim, int) or spec.dim < 1 or spec.metric not in METRICS:
        raise InvalidArgument(f"spec_json needs a positive integer dim and a metric among {', '.join(METRICS)}")
    problem = check_storage(spec.storage)
    if problem:
        raise InvalidArgument(problem)
    return spec


class ShardServicer(shard_pb2_grpc.ShardServicer):
    """Serves every partition a ShardNode hosts."""

    def __init__(self, node: ShardNode, metrics: ShardMetrics, executor: Executor | None = None) -> None:
        self._node = node
        self._metrics = metrics
        self._executor = executor

    @rpc_edge
    def NodeSearch(self, request: shard_pb2.NodeSearchRequest, context: grpc.ServicerContext
                   ) -> shard_pb2.NodeSearchResponse:
        if not request.partitions:
            raise InvalidArgument("NodeSearch needs at least one partition")
        hosted = [self._node.hosted(key) for key in request.partitions]
        places = [h.place for h in hosted]
        stores = [(h.store, h.place.shard) for h in hosted]
        labels = {p.shard: p.labels for p in places}

        def plan(shard: int, strategy: str) -> None:
            self._metrics.plans.labels(*labels[shard], strategy).inc()

        with contextlib.ExitStack() as stack:
            for p in places:
                stack.enter_context(observe(self._metrics.requests, self._metrics.latency, p.labels, "NodeSearch"))
            return node_search(stores, request, self._executor, plan)

    def _observed(self, partition: str, method: str, fn: Callable[[ShardStore, tuple[str, str, str]], Any]) -> Any:
        hosted = self._node.hosted(partition)
        store, labels = hosted.store, hosted.place.labels
        with observe(self._metrics.requests, self._metrics.latency, labels, method):
            return fn(store, labels)

    def _update_gauges(self, store: ShardStore, labels: tuple[str, str, str]) -> ShardFigures:
        f = store.figures()
        self._metrics.observe_figures(labels, f)
        return f

    @rpc_edge
    def OpenPartition(self, request: shard_pb2.OpenPartitionRequest, context: grpc.ServicerContext
                      ) -> shard_pb2.ShardStats:
        if not request.partition or not os.path.isabs(request.data_dir):
            raise InvalidArgument("OpenPartition needs a partition key and an absolute data directory")
        spec = spec_from_json(request.spec_json)
        place = PartitionPlace(request.collection, request.shard, request.replica, spec.to_dict(), request.data_dir)
        store = self._node.open(request.partition, place)
        return figures_to_proto(self._update_gauges(store, place.labels))

    @rpc_edge
    def ClosePartition(self, request: shard_pb2.ClosePartitionRequest, context: grpc.ServicerContext
                       ) -> shard_pb2.ClosePartitionResponse:
        return shard_pb2.ClosePartitionResponse(existed=self._node.close(request.partition, request.delete_data))

    @rpc_edge
    def ListPartitions(self, request: shard_pb2.ListPartitionsRequest, context: grpc.ServicerContext
                       ) -> shard_pb2.ListPartitionsResponse:
        return shard_pb2.ListPartitionsResponse(partitions=self._node.keys())

    @rpc_edge
    def Upsert(self, request: shard_pb2.ShardUpsertRequest, context: grpc.ServicerContext
               ) -> shard_pb2.ShardWriteResponse:
        def run(store: ShardStore, labels: tuple[str, str, str]) -> shard_pb2.ShardWriteResponse:
            request.ClearField("partition")  # the WAL logs this very message; the key is the node's business
            lsn, n = store.upsert_request(request)
            self._update_gauges(store, labels)
            return shard_pb2.ShardWriteResponse(lsn=lsn, affected=n)

        return self._observed(request.partition, "Upsert", run)

    @rpc_edge
    def Delete(self, request: shard_pb2.ShardDeleteRequest, context: grpc.ServicerContext
               ) -> shard_pb2.ShardWriteResponse:
        def run(store: ShardStore, labels: tuple[str, str, str]) -> shard_pb2.ShardWriteResponse:
            lsn, n = store.delete(list(request.ids))
            self._update_gauges(store, labels)
            return shard_pb2.ShardWriteResponse(lsn=lsn, affected=n)

        return self._observed(request.partition, "Delete", run)

    @rpc_edge
    def Get(self, request: shard_pb2.ShardGetRequest, context: grpc.ServicerContext
            ) -> shard_pb2.ShardGetResponse:
        def run(store: ShardStore, _: tuple[str, str, str]) -> shard_pb2.ShardGetResponse:
            docs = store.partition.get(list(request.ids), request.with_vectors)
            return shard_pb2.ShardGetResponse(documents=[
                common_pb2.Document(id=doc_id, vector=pack_vector(vec) if vec is not None else b"",
                                    payload=payload_to_proto(payload))
                for doc_id, vec, payload in docs
            ])

        return self._observed(request.partition, "Get", run)

    @rpc_edge
    def Stats(self, request: shard_pb2.ShardStatsRequest, context: grpc.ServicerContext
              ) -> shard_pb2.ShardStats:
        hosted = self._node.hosted(request.partition)
        return figures_to_proto(self._update_gauges(hosted.store, hosted.place.labels))

    @rpc_edge
    def Snapshot(self, request: shard_pb2.ShardSnapshotRequest, context: grpc.ServicerContext
                 ) -> shard_pb2.ShardStats:
        hosted = self._node.hosted(request.partition)
        hosted.store.snapshot()
        return figures_to_proto(self._update_gauges(hosted.store, hosted.place.labels))

    @rpc_edge
    def Rebuild(self, request: shard_pb2.ShardRebuildRequest, context: grpc.ServicerContext
                ) -> shard_pb2.ShardStats:
        def run(store: ShardStore, labels: tuple[str, str, str]) -> shard_pb2.ShardStats:
            if request.m and not 2 <= request.m <= MAX_M:
                raise InvalidArgument(f"hnsw m must be between 2 and {MAX_M}, got {request.m}")
            rebuilder = store.rebuilder
            started = store.rebuild(request.m, request.ef_construction, request.reason or "request")
            if started:
                self._metrics.rebuilds_started.labels(*labels, request.reason or "request").inc()
            if request.wait:
                # Wait in slices so a caller that gave up (deadline, cancel) frees this thread.
                while not rebuilder.wait(0.5):
                    if not context.is_active():
                        break
            return figures_to_proto(self._update_gauges(store, labels))

        return self._observed(request.partition, "Rebuild", run)
