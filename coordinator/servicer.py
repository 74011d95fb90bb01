"""The public Coordinator gRPC service: proto in, Engine calls, proto out."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np

from coordinator.admission import Admission
from coordinator.catalog import CollectionSpec
from coordinator.documents import Documents
from coordinator.engine import Engine, SearchAnswer, ShardStatus
from coordinator.metrics import CoordinatorMetrics
from protos import common_pb2, coordinator_pb2, coordinator_pb2_grpc
from protos.errors import ShoalError, error_fields, rpc_edge
from protos.serving import observe
from protos.wire import metric_from_proto, metric_to_proto, pack_floats, unpack_matrix
from shard_node.rebuild import tombstone_ratio


def collection_to_proto(spec: CollectionSpec, shards: list[ShardStatus] | None = None
                        ) -> coordinator_pb2.CollectionInfo:
    """A CollectionSpec (and optionally its shards' figures) as CollectionInfo."""
    info = coordinator_pb2.CollectionInfo(
        name=spec.name, dim=spec.dim, metric=metric_to_proto(spec.metric), shards=spec.shards,
        hnsw=common_pb2.HnswParams(m=spec.m, ef_construction=spec.ef_construction, ef_search=spec.ef_search),
        created_at=spec.created_at, tombstone_threshold=spec.tombstone_threshold,
        replication_factor=spec.replication_factor, fields=spec.fields, write_consistency_factor=spec.write_quorum,
        storage=spec.storage,
    )
    if spec.model:
        info.model, info.modality = spec.model, spec.modality
        info.chunking.words, info.chunking.overlap = spec.chunk_words, spec.chunk_overlap
        info.embed_fields.extend(spec.embed_fields)
    counted: set[int] = set()
    for s in shards or []:
        info.shard_info.append(shard_to_proto(s))
        if s.stats is not None and s.index not in counted:  # one answering replica of each shard
            counted.add(s.index)
            info.count += s.stats.documents
        if s.stats is not None:
            add_bytes(info.memory, s.stats.memory)
            add_bytes(info.disk, s.stats.disk)
    return info


def add_bytes(total: common_pb2.StorageBytes, part: common_pb2.StorageBytes) -> None:
    """Add one replica's bytes by part into a running total."""
    total.vectors += part.vectors
    total.graph += part.graph
    total.payloads += part.payloads
    total.text += part.text


def shard_to_proto(s: ShardStatus) -> coordinator_pb2.ShardInfo:
    """One shard replica's figures as ShardInfo."""
    if s.stats is None:
        return coordinator_pb2.ShardInfo(index=s.index, replica=s.replica, available=False, error=s.error,
                                         up_to_date=s.up_to_date)
    f = s.stats
    return coordinator_pb2.ShardInfo(
        index=s.index, replica=s.replica, available=True, address=s.address, live=f.live, tombstones=f.tombstones,
        wal_bytes=f.wal_bytes, capacity=f.capacity, tombstone_ratio=tombstone_ratio(f.live, f.tombstones),
        memory_bytes=f.memory_bytes, disk_bytes=f.disk_bytes, m=f.m, ef_construction=f.ef_construction,
        rebuild=f.rebuild, last_lsn=f.last_lsn, disk_error=f.disk_error, up_to_date=s.up_to_date,
        checksum=f.checksum, checksum_lsn=f.checksum_lsn, storage=f.storage, memory=f.memory, disk=f.disk)


def _is_query(request: coordinator_pb2.SearchRequest) -> bool:
    """Whether a search asks for more than plain vector similarity."""
    return bool(request.filter or request.query or request.HasField("filter_tree") or request.HasField("query_tree")
                or request.ranking)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The float32 columns of every query, end to end (one query's as it is)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, np.float32)


def answer_to_proto(answer: SearchAnswer, columns: bool) -> coordinator_pb2.SearchResponse:
    """A SearchAnswer as the reply: packed columns when asked for, else one message per hit."""
    resp = coordinator_pb2.SearchResponse(plans=answer.plans, missing_shards=answer.missing_shards)
    if not columns:
        resp.results.extend(coordinator_pb2.QueryResult(hits=[
            common_pb2.Hit(id=h.id, score=h.score, distance=h.distance, payload=h.payload) for h in hits
        ]) for hits in answer.results)
        return resp
    cols = resp.columns
    columns = answer.columns
    cols.offsets.extend(itertools.accumulate((len(c) for c in columns), initial=0))
    for c in columns:
        cols.ids.extend(c.ids)
    cols.scores = pack_floats(_joined([c.scores for c in columns]))
    cols.distances = pack_floats(_joined([c.distances for c in columns]))
    if any(c.payloads is not None and any(p is not None for p in c.payloads) for c in columns):
        for c in columns:
            cols.payloads.extend(p or common_pb2.Payload() for p in (c.payloads or [None] * len(c)))
    return resp


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    """Serves the Engine over gRPC (asyncio)."""

    def __init__(self, engine: Engine, documents: Documents, metrics: CoordinatorMetrics, admission: Admission
                 ) -> None:
        self._engine = engine
        self._documents = documents
        self._metrics = metrics
        self._admission = admission  # the search stream admits each search as the interceptor admits a call

    def _observe(self, method: str) -> observe:
        return observe(self._metrics.requests, self._metrics.latency, (), method)

    @rpc_edge
    async def CreateCollection(self, request: coordinator_pb2.CreateCollectionRequest,
                               context: grpc.aio.ServicerContext) -> coordinator_pb2.CollectionInfo:
        with self._observe("CreateCollection"):
            spec = await self._documents.create_collection(
                request.name, request.dim, metric_from_proto(request.metric), request.shards,
                request.hnsw.m, request.hnsw.ef_construction, request.hnsw.ef_search, request.model,
                request.chunking.words, request.chunking.overlap, fields=dict(request.fields),
                embed_fields=list(request.embed_fields), storage=request.storage,
                tombstone_threshold=request.tombstone_threshold, replication_factor=request.replication_factor,
                write_consistency=(request.write_consistency_factor if request.HasField("write_consistency_factor")
                                   else None))
            return collection_to_proto(spec)

    @rpc_edge
    async def UpdateCollection(self, request: coordinator_pb2.UpdateCollectionRequest,
                               context: grpc.aio.ServicerContext) -> coordinator_pb2.CollectionInfo:
        with self._observe("UpdateCollection"):
            w = request.write_consistency_factor if request.HasField("write_consistency_factor") else None
            return collection_to_proto(self._engine.update_collection(request.name, write_consistency=w))

    @rpc_edge
    async def DropCollection(self, request: coordinator_pb2.DropCollectionRequest,
                             context: grpc.aio.ServicerContext) -> coordinator_pb2.DropCollectionResponse:
        with self._observe("DropCollection"):
            await self._engine.drop_collection(request.name)
            return coordinator_pb2.DropCollectionResponse()

    @rpc_edge
    async def ListCollections(self, request: coordinator_pb2.ListCollectionsRequest,
                              context: grpc.aio.ServicerContext) -> coordinator_pb2.ListCollectionsResponse:
        with self._observe("ListCollections"):
            return coordinator_pb2.ListCollectionsResponse(
                collections=[collection_to_proto(s) for s in self._engine.list_collections()])

    @rpc_edge
    async def DescribeCollection(self, request: coordinator_pb2.DescribeCollectionRequest,
                                 context: grpc.aio.ServicerContext) -> coordinator_pb2.CollectionInfo:
        with self._observe("DescribeCollection"):
            spec, shards = await self._engine.describe(request.name, request.allow_partial, request.checksums)
            return collection_to_proto(spec, shards)

    @rpc_edge
    async def Upsert(self, request: coordinator_pb2.UpsertRequest,
                     context: grpc.aio.ServicerContext) -> coordinator_pb2.UpsertResponse:
        with self._observe("Upsert"):
            n = await self._documents.upsert(request.collection, list(request.ids), unpack_matrix(request.vectors),
                                             request.vectors_model, list(request.texts), list(request.images),
                                             list(request.payloads), list(request.vector_owners))
            return coordinator_pb2.UpsertResponse(upserted=n)

    @rpc_edge
    async def Delete(self, request: coordinator_pb2.DeleteRequest,
                     context: grpc.aio.ServicerContext) -> coordinator_pb2.DeleteResponse:
        with self._observe("Delete"):
            n = await self._documents.delete(request.collection, list(request.ids))
            return coordinator_pb2.DeleteResponse(deleted=n)

    @rpc_edge
    async def Get(self, request: coordinator_pb2.GetRequest,
                  context: grpc.aio.ServicerContext) -> coordinator_pb2.GetResponse:
        with self._observe("Get"):
            docs = await self._documents.get(request.collection, list(request.ids), request.with_vectors)
            return coordinator_pb2.GetResponse(documents=docs)

    @rpc_edge
    async def Count(self, request: coordinator_pb2.CountRequest,
                    context: grpc.aio.ServicerContext) -> coordinator_pb2.CountResponse:
        with self._observe("Count"):
            return coordinator_pb2.CountResponse(count=await self._engine.count(request.collection))

    @rpc_edge
    async def Search(self, request: coordinator_pb2.SearchRequest,
                     context: grpc.aio.ServicerContext) -> coordinator_pb2.SearchResponse:
        return await self._search(request)

    async def SearchStream(self, requests: AsyncIterator[coordinator_pb2.SearchRequest],
                           context: grpc.aio.ServicerContext) -> None:
        """Answer the stream's searches in order, each admitted like a call of its own (its timeout_s the
        deadline); a search that fails answers with its status and the stream goes on."""
        key = self._admission.key_of(context.invocation_metadata(), context.peer())
        try:
            async for request in requests:
                try:
                    resp = await self._admission.run("Search", key, request.timeout_s or None,
                                                     functools.partial(self._search, request))
                except Exception as exc:  # noqa: BLE001 - every failure answers its own search
                    code, message, _ = error_fields(exc)
                    resp = coordinator_pb2.SearchResponse(error_code=code, error=message)
                await context.write(resp)
        except ShoalError as exc:  # a message that does not parse: the stream itself is wrong
            await context.abort(exc.code, str(exc))

    async def _search(self, request: coordinator_pb2.SearchRequest) -> coordinator_pb2.SearchResponse:
        with self._observe("Search"):
            vectors = unpack_matrix(request.vectors, "query vectors")
            if _is_query(request):
                t0 = time.perf_counter()
                vectors = await self._documents.query_vectors(request.collection, vectors, request.vectors_model,
                                                              list(request.texts), list(request.images))
                embed_ms = (time.perf_counter() - t0) * 1000.0
                answer = await self._engine.query(
                    request.collection, vectors, request.k, request.ef, request.with_payload,
                    filter_text=request.filter,
                    filter_tree=request.filter_tree if request.HasField("filter_tree") else None,
                    query_text=request.query, query_tree=request.query_tree if request.HasField("query_tree") else None,
                    ranking=request.ranking, vector_weight=request.vector_weight, text_weight=request.text_weight,
                    explain=request.explain, allow_partial=request.allow_partial,
                    embed=functools.partial(self._documents.embed_query_texts, request.collection))
                for plan in answer.plans[:1]:
                    plan.stage_ms["embed"] = plan.stage_ms["embed"] + embed_ms
            else:
                answer = await self._documents.search(
                    request.collection, vectors, request.vectors_model, list(request.texts), list(request.images),
                    request.k, request.ef, request.with_payload, request.allow_partial, request.explain,
                    request.oversample)
            t_reply = time.perf_counter()
            resp = answer_to_proto(answer, request.columns)
            for plan in resp.plans[:1]:
                plan.stage_ms["reply"] = (time.perf_counter() - t_reply) * 1000.0
            return resp

    @rpc_edge
    async def Compact(self, request: coordinator_pb2.CompactRequest,
                      context: grpc.aio.ServicerContext) -> coordinator_pb2.CompactResponse:
        with self._observe("Compact"):
            scheduled, shards = await self._engine.compact(request.collection, list(request.shards), request.hnsw.m,
                                                           request.hnsw.ef_construction, request.wait)
            return coordinator_pb2.CompactResponse(scheduled=scheduled, shard_info=[shard_to_proto(s) for s in shards])

    @rpc_edge
    async def Snapshot(self, request: coordinator_pb2.SnapshotRequest,
                       context: grpc.aio.ServicerContext) -> coordinator_pb2.SnapshotResponse:
        with self._observe("Snapshot"):
            manifest, copies, seconds = await self._engine.snapshot(request.collection, request.directory)
            shards = [coordinator_pb2.ShardBackup(index=c.index, replica=c.replica, lsn=c.lsn, documents=c.documents,
                                                  entries=c.entries, checksum=c.checksum, bytes=c.bytes)
                      for c in copies]
            return coordinator_pb2.SnapshotResponse(
                directory=str(manifest.parent), manifest=str(manifest), shards=shards,
                documents=sum(c.documents for c in copies), bytes=sum(c.bytes for c in copies), seconds=seconds)

    @rpc_edge
    async def Restore(self, request: coordinator_pb2.RestoreRequest,
                      context: grpc.aio.ServicerContext) -> coordinator_pb2.CollectionInfo:
        with self._observe("Restore"):
            spec = await self._engine.restore(request.directory, request.name, request.shards)
            return collection_to_proto(spec)
