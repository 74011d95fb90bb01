"""The Shard gRPC service of a shard node: proto in, the named partition's ShardStore calls, proto out."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from protos import common_pb2, shard_pb2, shard_pb2_grpc
from protos.errors import FailedPrecondition, InvalidArgument, ShoalError, error_fields, rpc_edge, stream_edge
from protos.file_stream import CHUNK_BYTES, FileSink, file_chunks
from protos.serving import observe
from protos.wire import METRICS, pack_matrix, pack_vector, payload_to_proto, payloads_from_proto, unpack_matrix
from shard_node.metrics import ShardMetrics
from shard_node.node import Hosted, PartitionPlace, ShardNode
from shard_node.node_search import node_search
from shard_node.partition import MemoryFigures
from shard_node.settings import INLINE_SEARCH_BUDGET, MAX_M, PartitionSpec
from shard_node.storage import check_storage
from shard_node.store import ShardFigures, ShardStore

READ_LOG_BYTES = 4 * 1024 * 1024  # records per ReadLog answer, about (well under the message limit)
COPY_BATCH_DOCS = 1000            # documents per PartitionChunk of a copy


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
            last_error=r.last_error),
        disk_error=f.disk_error)


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


def _small(request: shard_pb2.NodeSearchRequest) -> bool:
    """Whether a search of all its partitions is cheap enough to run on the event loop (INLINE_SEARCH_BUDGET)."""
    return (not request.match.field and not request.exclude
            and len(request.partitions) * max(request.queries.rows, 1) * max(request.ef, request.k)
            <= INLINE_SEARCH_BUDGET)


def _failed(exc: BaseException) -> shard_pb2.NodeSearchResponse:
    """The answer of a search that failed: its status in the answer's error fields."""
    code, message, kind = error_fields(exc)
    return shard_pb2.NodeSearchResponse(error_code=code, error=message, error_kind=kind)


class ShardServicer(shard_pb2_grpc.ShardServicer):
    """Serves every partition a ShardNode hosts."""

    def __init__(self, node: ShardNode, metrics: ShardMetrics, search_pool: Executor | None = None,
                 handler_pool: Executor | None = None) -> None:
        self._node = node
        self._metrics = metrics
        self._search_pool = search_pool
        self._handler_pool = handler_pool

    async def NodeSearchStream(self, requests: AsyncIterator[shard_pb2.NodeSearchRequest],
                               context: grpc.aio.ServicerContext) -> None:
        """Answer every search of the stream, each with its `call`; a failed search answers with its status."""
        writing = asyncio.Lock()  # one write at a time on the stream: small answers and big ones interleave
        running: set[asyncio.Task[None]] = set()

        async def reply(resp: shard_pb2.NodeSearchResponse) -> None:
            async with writing:
                await context.write(resp)

        async def big(request: shard_pb2.NodeSearchRequest) -> None:
            await reply(await self._answer(request, small=False))

        try:
            async for request in requests:
                if _small(request):  # on the loop, one partition after another: a hand-off costs more
                    await reply(await self._answer(request, small=True))
                    continue
                task = asyncio.ensure_future(big(request))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
        except ShoalError as exc:  # a message that does not parse: the stream itself is wrong
            await context.abort(exc.code, str(exc))
        finally:
            for task in running:
                task.cancel()

    async def _answer(self, request: shard_pb2.NodeSearchRequest, small: bool) -> shard_pb2.NodeSearchResponse:
        """One search's answer, numbered as asked: a small one on the loop, a big one off it (its partitions side
        by side on the search pool); a failure answers with its status."""
        try:
            hosted = self._hosted(request)
            resp = (self._node_search(hosted, request, None) if small else
                    await asyncio.get_running_loop().run_in_executor(self._handler_pool, self._node_search,
                                                                     hosted, request, self._search_pool))
        except Exception as exc:  # noqa: BLE001 - every failure answers its own search
            resp = _failed(exc)
        resp.call = request.call
        return resp

    def _hosted(self, request: shard_pb2.NodeSearchRequest) -> list[Hosted]:
        if not request.partitions:
            raise InvalidArgument("NodeSearch needs at least one partition")
        return [self._node.hosted(key) for key in request.partitions]

    def _node_search(self, hosted: list[Hosted], request: shard_pb2.NodeSearchRequest, pool: Executor | None
                     ) -> shard_pb2.NodeSearchResponse:
        places = [h.place for h in hosted]
        stores = [(h.store, h.place.shard) for h in hosted]
        labels = {p.shard: p.labels for p in places}

        def plan(shard: int, strategy: str) -> None:
            self._metrics.plans.labels(*labels[shard], strategy).inc()

        with observe(self._metrics.requests, self._metrics.latency, places[0].labels, "NodeSearch",
                     others=[p.labels for p in places[1:]]):
            return node_search(stores, request, pool, plan)

    def _observed(self, partition: str, method: str, fn: Callable[[ShardStore, tuple[str, str, str]], Any]) -> Any:
        hosted = self._node.hosted(partition)
        store, labels = hosted.store, hosted.place.labels
        with observe(self._metrics.requests, self._metrics.latency, labels, method):
            return fn(store, labels)

    def _update_gauges(self, store: ShardStore, labels: tuple[str, str, str]) -> ShardFigures:
        f = store.figures()
        self._metrics.observe_figures(labels, f)
        return f

    @staticmethod
    def _place_of(request: shard_pb2.OpenPartitionRequest) -> PartitionPlace:
        if not request.partition or not os.path.isabs(request.data_dir):
            raise InvalidArgument("OpenPartition needs a partition key and an absolute data directory")
        spec = spec_from_json(request.spec_json)
        return PartitionPlace(request.collection, request.shard, request.replica, spec.to_dict(), request.data_dir)

    @rpc_edge
    def OpenPartition(self, request: shard_pb2.OpenPartitionRequest, context: grpc.ServicerContext
                      ) -> shard_pb2.ShardStats:
        place = self._place_of(request)
        store = self._node.open(request.partition, place)
        return figures_to_proto(self._update_gauges(store, place.labels))

    @stream_edge
    def BackupPartition(self, request: shard_pb2.BackupPartitionRequest, context: grpc.ServicerContext
                        ) -> Iterator[shard_pb2.BackupChunk]:
        hosted = self._node.hosted(request.partition)
        store = hosted.store
        with store.backup_point() as point:  # held until the last chunk is sent (or the caller goes away)
            files = [(rel, path.stat().st_size) for rel, path in point.files]
            yield shard_pb2.BackupChunk(header=shard_pb2.BackupHeader(
                lsn=point.lsn, entries=point.entries, documents=point.documents, checksum=point.checksum,
                files=[shard_pb2.BackupFile(path=rel, size=size) for rel, size in files]))
            yield from file_chunks(store.data_dir, files, request.chunk_bytes or CHUNK_BYTES)

    @rpc_edge
    def RestorePartition(self, request_iterator: Iterator[shard_pb2.BackupChunk], context: grpc.ServicerContext
                         ) -> shard_pb2.ShardStats:
        first = next(request_iterator, None)
        if first is None or not first.header.HasField("open"):
            raise InvalidArgument("RestorePartition's first message must be a header with the partition to open")
        header = first.header
        place = self._place_of(header.open)
        target = Path(place.data_dir)
        if target.exists() and any(target.iterdir()):
            raise FailedPrecondition(f"cannot restore {place.describe()} into {target}: the directory is not empty")
        target.mkdir(parents=True, exist_ok=True)
        sink = FileSink(target)
        try:
            for chunk in request_iterator:
                sink.write(chunk)
            sink.close((f.path, f.size) for f in header.files)
        except BaseException:
            sink.abort()
            shutil.rmtree(target, ignore_errors=True)
            raise
        store = self._node.open(header.open.partition, place)
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
            lsn, n = store.upsert_request(request)  # request.lsn, when set, must follow the partition's last
            self._update_gauges(store, labels)
            return shard_pb2.ShardWriteResponse(lsn=lsn, affected=n)

        return self._observed(request.partition, "Upsert", run)

    @rpc_edge
    def Delete(self, request: shard_pb2.ShardDeleteRequest, context: grpc.ServicerContext
               ) -> shard_pb2.ShardWriteResponse:
        def run(store: ShardStore, labels: tuple[str, str, str]) -> shard_pb2.ShardWriteResponse:
            lsn, n = store.delete(list(request.ids), request.lsn)
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
        stats = figures_to_proto(self._update_gauges(hosted.store, hosted.place.labels))
        if request.checksum:
            c = hosted.store.checksum()
            stats.checksum, stats.checksum_lsn, stats.checksum_live = c.value, c.lsn, c.live
        return stats

    @rpc_edge
    def ReadLog(self, request: shard_pb2.ReadLogRequest, context: grpc.ServicerContext
                ) -> shard_pb2.ReadLogResponse:
        def run(store: ShardStore, _: tuple[str, str, str]) -> shard_pb2.ReadLogResponse:
            records, last = store.read_log(request.after_lsn, request.max_bytes or READ_LOG_BYTES)
            return shard_pb2.ReadLogResponse(records=records or [], last_lsn=last, truncated=records is None)

        return self._observed(request.partition, "ReadLog", run)

    @rpc_edge
    def ApplyLog(self, request: shard_pb2.ApplyLogRequest, context: grpc.ServicerContext) -> shard_pb2.ShardStats:
        def run(store: ShardStore, labels: tuple[str, str, str]) -> shard_pb2.ShardStats:
            store.apply_log(list(request.records))
            return figures_to_proto(self._update_gauges(store, labels))

        return self._observed(request.partition, "ApplyLog", run)

    @rpc_edge
    def CopyPartition(self, request: shard_pb2.CopyPartitionRequest, context: grpc.ServicerContext
                      ) -> Iterator[shard_pb2.PartitionChunk]:
        # The copy is taken here, eagerly (one consistent state); only its sending is streamed.
        lsn, ids, vectors, payloads = self._node.hosted(request.partition).store.copy_documents()
        step = request.batch_docs or COPY_BATCH_DOCS
        chunks = [shard_pb2.PartitionChunk(lsn=lsn, upsert=shard_pb2.ShardUpsertRequest(
            ids=ids[i:i + step], vectors=pack_matrix(vectors[i:i + step]),
            payloads=[payload_to_proto(p) for p in payloads[i:i + step]])) for i in range(0, len(ids), step)]
        return iter(chunks or [shard_pb2.PartitionChunk(lsn=lsn)])

    @rpc_edge
    def InstallPartition(self, request_iterator: Iterator[shard_pb2.PartitionChunk], context: grpc.ServicerContext
                         ) -> shard_pb2.ShardStats:
        key, lsn, ids, parts, payloads = "", 0, [], [], []
        for chunk in request_iterator:
            key, lsn = key or chunk.partition, chunk.lsn
            if chunk.upsert.ids:
                ids.extend(chunk.upsert.ids)
                parts.append(unpack_matrix(chunk.upsert.vectors))
                payloads.extend(payloads_from_proto(chunk.upsert.payloads))
        hosted = self._node.hosted(key)
        dim = hosted.store.spec.dim
        vectors = parts[0] if len(parts) == 1 else (np.concatenate(parts) if parts else np.zeros((0, dim), np.float32))
        hosted.store.install(lsn, ids, vectors, payloads)
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
                # Wait in slices so a caller whose deadline passed frees this thread.
                while not rebuilder.wait(0.5):
                    left = context.time_remaining()
                    if left is not None and left <= 0:
                        break
            return figures_to_proto(self._update_gauges(store, labels))

        return self._observed(request.partition, "Rebuild", run)
