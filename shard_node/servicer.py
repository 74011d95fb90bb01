"""The Shard gRPC service: proto in, ShardStore calls, proto out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from protos import common_pb2, shard_pb2, shard_pb2_grpc
from protos.errors import InvalidArgument, rpc_edge
from protos.serving import observe
from protos.wire import check_vectors, pack_floats, pack_vector, payload_to_proto, unpack_matrix
from shard_node.metrics import ShardMetrics
from shard_node.query import run_query
from shard_node.settings import MAX_M
from shard_node.store import ShardFigures, ShardStore


def figures_to_proto(f: ShardFigures) -> shard_pb2.ShardStats:
    """ShardFigures as a ShardStats message."""
    r = f.rebuild
    return shard_pb2.ShardStats(
        live=f.live, tombstones=f.tombstones, capacity=f.capacity, last_lsn=f.last_lsn,
        snapshot_lsn=f.snapshot_lsn, wal_bytes=f.wal_bytes, documents=f.documents, slots_used=f.slots_used,
        m=f.m, ef_construction=f.ef_construction, memory_bytes=f.memory_bytes, disk_bytes=f.disk_bytes,
        rebuild=common_pb2.RebuildStatus(
            running=r.running, phase=r.phase, progress=r.progress, total=r.total,
            last_finished_at=r.last_finished_at, last_seconds=r.last_seconds, last_reason=r.last_reason,
            last_error=r.last_error))


class ShardServicer(shard_pb2_grpc.ShardServicer):
    """Serves one ShardStore."""

    def __init__(self, store: ShardStore, metrics: ShardMetrics, labels: tuple[str, str]) -> None:
        self._store = store
        self._metrics = metrics
        self._labels = labels

    def _observed(self, method: str, fn: Callable[[], Any]) -> Any:
        with observe(self._metrics.requests, self._metrics.latency, self._labels, method):
            return fn()

    def _update_gauges(self) -> ShardFigures:
        f = self._store.figures()
        self._metrics.observe_figures(self._labels, f)
        return f

    @rpc_edge
    def Upsert(self, request: shard_pb2.ShardUpsertRequest, context: grpc.ServicerContext
               ) -> shard_pb2.ShardWriteResponse:
        def run() -> shard_pb2.ShardWriteResponse:
            lsn, n = self._store.upsert_request(request)
            self._update_gauges()
            return shard_pb2.ShardWriteResponse(lsn=lsn, affected=n)

        return self._observed("Upsert", run)

    @rpc_edge
    def Delete(self, request: shard_pb2.ShardDeleteRequest, context: grpc.ServicerContext
               ) -> shard_pb2.ShardWriteResponse:
        def run() -> shard_pb2.ShardWriteResponse:
            lsn, n = self._store.delete(list(request.ids))
            self._update_gauges()
            return shard_pb2.ShardWriteResponse(lsn=lsn, affected=n)

        return self._observed("Delete", run)

    @rpc_edge
    def Get(self, request: shard_pb2.ShardGetRequest, context: grpc.ServicerContext
            ) -> shard_pb2.ShardGetResponse:
        def run() -> shard_pb2.ShardGetResponse:
            docs = self._store.partition.get(list(request.ids), request.with_vectors)
            return shard_pb2.ShardGetResponse(documents=[
                common_pb2.Document(id=doc_id, vector=pack_vector(vec) if vec is not None else b"",
                                    payload=payload_to_proto(payload))
                for doc_id, vec, payload in docs
            ])

        return self._observed("Get", run)

    @rpc_edge
    def Search(self, request: shard_pb2.ShardSearchRequest, context: grpc.ServicerContext
               ) -> shard_pb2.ShardSearchResponse:
        def run() -> shard_pb2.ShardSearchResponse:
            queries = unpack_matrix(request.queries, "queries")
            check_vectors(queries, self._store.spec.dim, "query vector", self._store.spec.metric)
            if request.k == 0:
                raise InvalidArgument("k must be at least 1")
            part = self._store.partition
            ids, dists = part.search_matrix(queries, int(request.k), int(request.ef) or None)
            flat_ids = ids.ravel().tolist()
            payloads = [payload_to_proto(p) for p in part.payloads_of(flat_ids)] if request.with_payload else []
            return shard_pb2.ShardSearchResponse(hits_per_query=ids.shape[1], ids=flat_ids,
                                                 distances=pack_floats(dists.ravel()), payloads=payloads)

        return self._observed("Search", run)

    @rpc_edge
    def Query(self, request: shard_pb2.ShardQueryRequest, context: grpc.ServicerContext
              ) -> shard_pb2.ShardQueryResponse:
        def run() -> shard_pb2.ShardQueryResponse:
            resp = run_query(self._store.partition, request, int(self._labels[1]))
            self._metrics.plans.labels(*self._labels, resp.plan.strategy).inc()
            return resp

        return self._observed("Query", run)

    @rpc_edge
    def Stats(self, request: shard_pb2.ShardStatsRequest, context: grpc.ServicerContext
              ) -> shard_pb2.ShardStats:
        return figures_to_proto(self._update_gauges())

    @rpc_edge
    def Snapshot(self, request: shard_pb2.ShardSnapshotRequest, context: grpc.ServicerContext
                 ) -> shard_pb2.ShardStats:
        self._store.snapshot()
        return figures_to_proto(self._update_gauges())

    @rpc_edge
    def Rebuild(self, request: shard_pb2.ShardRebuildRequest, context: grpc.ServicerContext
                ) -> shard_pb2.ShardStats:
        def run() -> shard_pb2.ShardStats:
            if request.m and not 2 <= request.m <= MAX_M:
                raise InvalidArgument(f"hnsw m must be between 2 and {MAX_M}, got {request.m}")
            rebuilder = self._store.rebuilder
            started = self._store.rebuild(request.m, request.ef_construction, request.reason or "request")
            if started:
                self._metrics.rebuilds_started.labels(*self._labels, request.reason or "request").inc()
            if request.wait:
                # Wait in slices so a caller that gave up (deadline, cancel) frees this thread.
                while not rebuilder.wait(0.5):
                    if not context.is_active():
                        break
            return figures_to_proto(self._update_gauges())

        return self._observed("Rebuild", run)
