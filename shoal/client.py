"""The Python client of a Shoal cluster."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict
from typing_extensions import TypedDict  # typing's own is refused by pydantic (the gateway's schema) before 3.12

from protos import common_pb2, coordinator_pb2, coordinator_pb2_grpc, query_pb2
from protos.errors import InvalidArgument, error_from_fields, error_from_rpc
from protos.serving import grpc_options
from protos.tls import ClientTLS, open_aio_channel, open_channel
from protos.wire import (
    metric_from_proto,
    metric_to_proto,
    pack_matrix,
    payload_from_proto,
    payloads_to_proto,
    unpack_floats,
    unpack_vector,
)
from shoal.search_stream import AsyncSearchStreams, SearchStreams

DEFAULT_ADDRESS = "127.0.0.1:50051"
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_RETRY_CODES = (grpc.StatusCode.UNAVAILABLE,)
T = TypeVar("T")
QueryLike = str | query_pb2.QueryNode
_RANKINGS = {None: query_pb2.RANKING_AUTO, "vector": query_pb2.RANKING_VECTOR, "bm25": query_pb2.RANKING_BM25,
             "hybrid": query_pb2.RANKING_HYBRID}


@dataclass
class Hit:
    """One search result: cosine/ip score is a similarity (higher is better), l2 a squared distance."""

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)
    distance: float = 0.0


@dataclass
class Document:
    """A stored document."""

    id: str
    vector: np.ndarray | None
    payload: dict[str, Any]


class ShardBackup(TypedDict):
    """One shard replica's part of a backup."""

    index: int
    replica: int
    lsn: int
    documents: int
    entries: int
    checksum: str
    bytes: int


class Backup(TypedDict):
    """A finished backup: its directory and manifest, and each shard's figures."""

    directory: str
    manifest: str
    documents: int
    bytes: int
    seconds: float
    shards: list[ShardBackup]


@dataclass
class Collection:
    """A collection's settings (and, from describe, its size and shards)."""

    name: str
    dim: int
    metric: str
    shards: int
    m: int
    ef_construction: int
    ef_search: int
    created_at: str
    count: int = 0
    shard_info: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    model: str = ""          # bound embedding model (name@version), "" for bare vectors
    modality: str = ""
    chunk_words: int = 0
    chunk_overlap: int = 0
    embed_fields: list[str] = field(default_factory=list)  # payload fields embedded as further entries
    tombstone_threshold: float = 0.0
    replication_factor: int = 1
    write_consistency: int = 1   # replicas a write needs before it is acknowledged
    storage: str = "float32"
    # Bytes by part (vectors, graph, payloads, text): from describe, summed over the answering shard replicas.
    memory: dict[str, int] = field(default_factory=dict)
    disk: dict[str, int] = field(default_factory=dict)


class Hits(list):
    """One query's hits, best first; `missing_shards` lists the shards a partial answer left out."""

    missing_shards: list[int]

    def __init__(self, hits: Sequence[Hit] = (), missing_shards: Sequence[int] = ()) -> None:
        super().__init__(hits)
        self.missing_shards = list(missing_shards)


def _bytes(b: common_pb2.StorageBytes) -> dict[str, int]:
    return {"vectors": b.vectors, "graph": b.graph, "payloads": b.payloads, "text": b.text}


def _shard_info(s: coordinator_pb2.ShardInfo) -> dict[str, Any]:
    r = s.rebuild
    return {"index": s.index, "replica": s.replica, "available": s.available, "error": s.error,
            "address": s.address, "live": s.live, "tombstones": s.tombstones,
            "tombstone_ratio": s.tombstone_ratio, "capacity": s.capacity, "wal_bytes": s.wal_bytes,
            "memory_bytes": s.memory_bytes, "disk_bytes": s.disk_bytes, "m": s.m,
            "ef_construction": s.ef_construction, "last_lsn": s.last_lsn, "disk_error": s.disk_error,
            "up_to_date": s.up_to_date, "checksum": s.checksum, "checksum_lsn": s.checksum_lsn,
            "storage": s.storage, "memory": _bytes(s.memory), "disk": _bytes(s.disk),
            "rebuild": {"running": r.running, "phase": r.phase, "progress": r.progress, "total": r.total,
                        "last_finished_at": r.last_finished_at, "last_seconds": r.last_seconds,
                        "last_reason": r.last_reason, "last_error": r.last_error}}


def _collection(info: coordinator_pb2.CollectionInfo) -> Collection:
    return Collection(
        name=info.name, dim=info.dim, metric=metric_from_proto(info.metric), shards=info.shards,
        m=info.hnsw.m, ef_construction=info.hnsw.ef_construction, ef_search=info.hnsw.ef_search,
        created_at=info.created_at, count=info.count, shard_info=[_shard_info(s) for s in info.shard_info],
        fields=dict(info.fields),
        model=info.model, modality=info.modality, chunk_words=info.chunking.words,
        chunk_overlap=info.chunking.overlap, embed_fields=list(info.embed_fields),
        tombstone_threshold=info.tombstone_threshold, replication_factor=info.replication_factor or 1,
        write_consistency=info.write_consistency_factor or 1,
        storage=info.storage or "float32", memory=_bytes(info.memory), disk=_bytes(info.disk),
    )


def _hits_of(resp: coordinator_pb2.SearchResponse) -> list[Hits]:
    """Every query's hits from the reply's packed columns (no per-hit messages are built or parsed)."""
    cols = resp.columns
    offsets = list(cols.offsets)
    scores = unpack_floats(cols.scores).tolist()
    distances = unpack_floats(cols.distances).tolist()
    ids = list(cols.ids)
    payloads = [payload_from_proto(p) if p.fields else {} for p in cols.payloads] if cols.payloads else None
    out = []
    for q in range(max(len(offsets) - 1, 0)):
        lo, hi = offsets[q], offsets[q + 1]
        out.append(Hits([Hit(ids[j], scores[j], payloads[j] if payloads is not None else {}, distances[j])
                         for j in range(lo, hi)], resp.missing_shards))
    return out


def _search_request(name: str, vector: Any, k: int, ef: int | None, with_payload: bool,
                    filter: QueryLike | None, query: QueryLike | None, ranking: str | None,
                    weights: tuple[float, float], explain: bool, text: str | None, image: bytes | None,
                    vectors_model: str, allow_partial: bool) -> coordinator_pb2.SearchRequest:
    """The SearchRequest of one query (Client.explain's arguments); bad arguments raise InvalidArgument."""
    req = coordinator_pb2.SearchRequest(collection=name, k=k, ef=ef or 0, with_payload=with_payload,
                                        explain=explain, vector_weight=weights[0], text_weight=weights[1],
                                        allow_partial=allow_partial, columns=True,
                                        texts=[text] if text is not None else [],
                                        images=[image] if image is not None else [], vectors_model=vectors_model)
    if ranking not in _RANKINGS:
        raise InvalidArgument(f"ranking {ranking!r} is unknown; use vector, bm25 or hybrid")
    req.ranking = _RANKINGS[ranking]
    if vector is not None:
        arr = np.asarray(vector, dtype=np.float32)
        if arr.ndim != 1:
            raise InvalidArgument("search takes one vector; use search_batch for many")
        req.vectors.CopyFrom(pack_matrix(arr.reshape(1, -1)))
    elif query is None and text is None and image is None:
        raise InvalidArgument("search needs a vector, a text, an image or a query")
    for value, text_field, tree_field in ((filter, "filter", "filter_tree"), (query, "query", "query_tree")):
        if isinstance(value, str):
            setattr(req, text_field, value)
        elif tree_field == "filter_tree" and value is not None:
            req.filter_tree.CopyFrom(value)
        elif value is not None:
            req.query_tree.where.CopyFrom(value)
    return req


def _hits_and_plan(resp: coordinator_pb2.SearchResponse) -> tuple[Hits, dict[str, Any]]:
    """The one query's hits and its plan ({} without explain)."""
    plan = MessageToDict(resp.plans[0], preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True) if resp.plans else {}
    return _hits_of(resp)[0], plan


def _from_env(value: str | None, name: str) -> str:
    """An explicit argument wins ("" turns the feature off); None falls back to env SHOAL_<name>."""
    return os.environ.get(f"SHOAL_{name}", "") if value is None else value


class Client:
    """Talks to a coordinator. Idempotent calls are retried with backoff while the cluster is unavailable.

    `tls_ca` (a PEM file) switches to TLS and names the CA that signed the coordinator's certificate;
    `tls_server_name` is the name to expect in it (default: the address's host); `tls_cert`/`tls_key`
    are a client certificate for a coordinator that demands one. `api_key` is sent as
    `authorization: Bearer <key>`. Each of them left as None is read from env SHOAL_TLS_CA,
    SHOAL_TLS_SERVER_NAME, SHOAL_TLS_CERT, SHOAL_TLS_KEY, SHOAL_API_KEY."""

    def __init__(self, address: str = DEFAULT_ADDRESS, timeout: float = 60.0, retries: int = 5,
                 backoff: float = 0.2, *, tls_ca: str | None = None, api_key: str | None = None,
                 tls_server_name: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        tls = ClientTLS(_from_env(tls_ca, "TLS_CA"), _from_env(tls_cert, "TLS_CERT"), _from_env(tls_key, "TLS_KEY"),
                        _from_env(tls_server_name, "TLS_SERVER_NAME"))
        key = _from_env(api_key, "API_KEY")
        self._metadata = (("authorization", f"Bearer {key}"),) if key else ()
        self._tls = tls
        self._channel = open_channel(address, grpc_options(_MAX_MESSAGE_BYTES), tls)
        self._stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)
        self._aio_channel: grpc.aio.Channel | None = None   # the *_async calls' channel, bound to their loop
        self._aio_searches: AsyncSearchStreams | None = None
        self._aio_loop: asyncio.AbstractEventLoop | None = None
        self._searches = SearchStreams(self._stub, self._metadata)

    def close(self) -> None:
        """Close the connection."""
        self._searches.close()
        self._channel.close()
        if self._aio_searches is not None:
            self._aio_searches.close()
        aio, self._aio_channel, self._aio_searches = self._aio_channel, None, None
        if aio is not None:
            # Called from its loop (the gateway's): close there. With no loop running, that loop is gone already.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(aio.close())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retry_delay(self, code: grpc.StatusCode, attempt: int, idempotent: bool) -> float | None:
        """Seconds to wait before retrying a call that failed with `code`, or None: give up."""
        if idempotent and code in _RETRY_CODES and attempt < self.retries:
            return self.backoff * (2**attempt) * (0.5 + random.random())
        return None

    def _call(self, fn: Callable[..., T], request: Any, idempotent: bool = True, timeout: float | None = None) -> T:
        attempt = 0
        while True:
            try:
                return fn(request, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as err:
                delay = self._retry_delay(err.code(), attempt, idempotent)
                if delay is None:
                    raise error_from_rpc(err) from None
                time.sleep(delay)
                attempt += 1

    def _search(self, request: coordinator_pb2.SearchRequest) -> coordinator_pb2.SearchResponse:
        """A Search on this thread's search stream, retried as _call retries."""
        attempt = 0
        while True:
            try:
                outcome: coordinator_pb2.SearchResponse | grpc.RpcError = self._searches.search(request, self.timeout)
            except grpc.RpcError as err:
                outcome = err
            resp, delay = self._settle(outcome, attempt)
            if resp is not None:
                return resp
            time.sleep(delay)
            attempt += 1

    async def _search_async(self, request: coordinator_pb2.SearchRequest) -> coordinator_pb2.SearchResponse:
        """_search on the running loop's search streams (an asyncio channel opened on first use): the loop is not
        blocked and no thread is handed the call."""
        loop = asyncio.get_running_loop()
        if self._aio_searches is None or self._aio_loop is not loop:  # a grpc.aio channel serves one loop
            if self._aio_searches is not None:  # an earlier loop's idle streams would hold the server's side open
                self._aio_searches.close()
            self._aio_channel = open_aio_channel(self.address, grpc_options(_MAX_MESSAGE_BYTES), self._tls)
            self._aio_searches = AsyncSearchStreams(coordinator_pb2_grpc.CoordinatorStub(self._aio_channel),
                                                    self._metadata)
            self._aio_loop = loop
        attempt = 0
        while True:
            try:
                outcome: coordinator_pb2.SearchResponse | grpc.RpcError = await self._aio_searches.search(
                    request, self.timeout)
            except grpc.RpcError as err:
                outcome = err
            resp, delay = self._settle(outcome, attempt)
            if resp is not None:
                return resp
            await asyncio.sleep(delay)
            attempt += 1

    def _settle(self, outcome: coordinator_pb2.SearchResponse | grpc.RpcError, attempt: int
                ) -> tuple[coordinator_pb2.SearchResponse | None, float]:
        """A streamed search's answer, or the seconds before it is retried; raises its error when it is not (a
        failed search answers with its status inside the reply, a failed stream as an RpcError)."""
        if isinstance(outcome, grpc.RpcError):
            delay = self._retry_delay(outcome.code(), attempt, True)
            if delay is None:
                raise error_from_rpc(outcome) from None
            return None, delay
        if not outcome.error_code:
            return outcome, 0.0
        error = error_from_fields(outcome.error_code, outcome.error)
        delay = self._retry_delay(error.code, attempt, True)
        if delay is None:
            raise error
        return None, delay

    # ---- collections ---------------------------------------------------------------------
    def create_collection(self, name: str, dim: int = 0, metric: str = "cosine", shards: int = 0, m: int = 0,
                          ef_construction: int = 0, ef_search: int = 0, model: str = "", chunk_words: int = 0,
                          chunk_overlap: int = 0, tombstone_threshold: float = 0.0,
                          replication_factor: int = 0, fields: dict[str, str] | None = None,
                          write_consistency: int | None = None, embed_fields: Sequence[str] = (),
                          storage: str = "") -> Collection:
        """Create a collection (0 takes the server's default, also for the tombstone ratio that triggers a rebuild
        and the replication factor); with `model` (name@version) it embeds text/images. `write_consistency`:
        replicas a write needs before it is acknowledged (None: 1 up to 2 replicas, a majority above).

        `fields` indexes payload fields for filters and full text: name -> keyword | tags | int | float |
        datetime | bool | text. `embed_fields` (bound collections) names string payload fields embedded too, as
        further entries of each document (say a translation), grouped back to the document on search. `storage` is
        how vectors are kept: float32 (default), float16, int8 or binary."""
        req = coordinator_pb2.CreateCollectionRequest(
            name=name, dim=dim, metric=metric_to_proto(metric), shards=shards,
            hnsw=common_pb2.HnswParams(m=m, ef_construction=ef_construction, ef_search=ef_search), model=model,
            chunking=coordinator_pb2.Chunking(words=chunk_words, overlap=chunk_overlap),
            tombstone_threshold=tombstone_threshold, replication_factor=replication_factor, fields=fields or {},
            embed_fields=list(embed_fields), storage=storage)
        if write_consistency is not None:
            req.write_consistency_factor = write_consistency
        return _collection(self._call(self._stub.CreateCollection, req, idempotent=False))

    def update_collection(self, name: str, write_consistency: int | None = None) -> Collection:
        """Change a collection's write consistency (None keeps it); returns its settings."""
        req = coordinator_pb2.UpdateCollectionRequest(name=name)
        if write_consistency is not None:
            req.write_consistency_factor = write_consistency
        return _collection(self._call(self._stub.UpdateCollection, req))

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its data."""
        self._call(self._stub.DropCollection, coordinator_pb2.DropCollectionRequest(name=name), idempotent=False)

    def list_collections(self) -> list[Collection]:
        """Every collection."""
        resp = self._call(self._stub.ListCollections, coordinator_pb2.ListCollectionsRequest())
        return [_collection(c) for c in resp.collections]

    def describe_collection(self, name: str, allow_partial: bool = False, checksums: bool = False) -> Collection:
        """A collection's settings, live count and per-shard-replica figures (with allow_partial, replicas that
        are down are listed as unavailable instead of failing the call; with checksums, each replica's content
        checksum, a pass over its documents)."""
        return _collection(self._call(self._stub.DescribeCollection,
                                      coordinator_pb2.DescribeCollectionRequest(name=name, allow_partial=allow_partial,
                                                                                checksums=checksums)))

    def compact(self, name: str, shards: Sequence[int] | None = None, m: int = 0, ef_construction: int = 0,
                wait: bool = False) -> list[dict[str, Any]]:
        """Rebuild the HNSW index of a collection's shards (all, or those listed) in the background, optionally
        with a new M / ef_construction; with wait, return when done. Returns the shards' figures."""
        req = coordinator_pb2.CompactRequest(collection=name, shards=list(shards or []), wait=wait,
                                             hnsw=common_pb2.HnswParams(m=m, ef_construction=ef_construction))
        return [_shard_info(s) for s in self._call(self._stub.Compact, req).shard_info]

    # ---- backup and restore --------------------------------------------------------------
    def snapshot(self, name: str, directory: str, timeout: float = 3600.0) -> Backup:
        """Back a collection up, online, into `directory` on the coordinator's machine (absolute; absent or
        empty). Returns the manifest's path and each shard's LSN, counts, content checksum and bytes."""
        req = coordinator_pb2.SnapshotRequest(collection=name, directory=directory)
        r = self._call(self._stub.Snapshot, req, idempotent=False, timeout=timeout)
        return {"directory": r.directory, "manifest": r.manifest, "documents": r.documents, "bytes": r.bytes,
                "seconds": r.seconds,
                "shards": [{"index": s.index, "replica": s.replica, "lsn": s.lsn, "documents": s.documents,
                            "entries": s.entries, "checksum": s.checksum, "bytes": s.bytes} for s in r.shards]}

    def restore(self, directory: str, name: str = "", shards: int = 0, timeout: float = 3600.0) -> Collection:
        """Create a collection (named `name`, default the backed-up one's) from a backup directory on the
        coordinator's machine; a damaged file or another shard count is refused (FailedPrecondition)."""
        req = coordinator_pb2.RestoreRequest(directory=directory, name=name, shards=shards)
        return _collection(self._call(self._stub.Restore, req, idempotent=False, timeout=timeout))

    # ---- documents -----------------------------------------------------------------------
    def upsert(self, name: str, ids: Sequence[str], vectors: Any = None,
               payloads: Sequence[dict[str, Any] | None] | None = None, *, texts: Sequence[str] | None = None,
               images: Sequence[bytes] | None = None, vectors_model: str = "",
               vector_owners: Sequence[int] | None = None) -> int:
        """Insert or replace documents given as vectors, or (model-bound collections) texts and/or images.

        With precomputed vectors of a bound collection, `vector_owners[r]` is the position in `ids` of the document
        row r belongs to (several rows per document: its chunks, its embedded fields). Returns how many documents
        were written (all, or an error is raised)."""
        req = coordinator_pb2.UpsertRequest(collection=name, ids=list(ids), payloads=payloads_to_proto(payloads)
                                            if payloads is not None else [], texts=list(texts or []),
                                            images=list(images or []), vectors_model=vectors_model,
                                            vector_owners=list(vector_owners or []))
        if vectors is not None:
            req.vectors.CopyFrom(pack_matrix(vectors))
        return self._call(self._stub.Upsert, req).upserted

    def delete(self, name: str, ids: Sequence[str]) -> int:
        """Delete documents; returns how many of the ids existed."""
        return self._call(self._stub.Delete, coordinator_pb2.DeleteRequest(collection=name, ids=list(ids))).deleted

    def get(self, name: str, ids: Sequence[str], with_vectors: bool = True) -> list[Document]:
        """Stored documents among ids, in the order asked (missing ids are left out)."""
        resp = self._call(self._stub.Get, coordinator_pb2.GetRequest(collection=name, ids=list(ids),
                                                                     with_vectors=with_vectors))
        return [Document(d.id, unpack_vector(d.vector).copy() if d.vector else None, payload_from_proto(d.payload))
                for d in resp.documents]

    def count(self, name: str) -> int:
        """Live documents in a collection."""
        return self._call(self._stub.Count, coordinator_pb2.CountRequest(collection=name)).count

    # ---- search --------------------------------------------------------------------------
    def search(self, name: str, vector: Any = None, k: int = 10, ef: int | None = None,
               with_payload: bool = True, filter: QueryLike | None = None, query: QueryLike | None = None,
               ranking: str | None = None, weights: tuple[float, float] = (0.0, 0.0), *, text: str | None = None,
               image: bytes | None = None, vectors_model: str = "", allow_partial: bool = False) -> Hits:
        """The k best documents, best first: nearest to `vector` (or, model-bound collections, to a text or an
        image) among those passing `filter` (a query string or tree), or by a whole `query` (its bare near
        ranks by vector, its text clause by BM25, both together by reciprocal rank fusion with
        `weights` = (vector, text)).

        With allow_partial, shards that are down are left out instead of failing the call: see missing_shards."""
        if filter is not None or query is not None or ranking is not None:
            return self.explain(name, vector, k, ef, with_payload, filter, query, ranking, weights, explain=False,
                                text=text, image=image, vectors_model=vectors_model,
                                allow_partial=allow_partial)[0]
        if vector is not None:
            arr = np.asarray(vector, dtype=np.float32)
            if arr.ndim != 1:
                raise InvalidArgument("search takes one vector; use search_batch for many")
            vector = arr.reshape(1, -1)
        return self.search_batch(name, vector, k=k, ef=ef, with_payload=with_payload,
                                 texts=None if text is None else [text],
                                 images=None if image is None else [image], vectors_model=vectors_model,
                                 allow_partial=allow_partial)[0]

    def explain(self, name: str, vector: Any = None, k: int = 10, ef: int | None = None,
                with_payload: bool = True, filter: QueryLike | None = None, query: QueryLike | None = None,
                ranking: str | None = None, weights: tuple[float, float] = (0.0, 0.0),
                explain: bool = True, *, text: str | None = None, image: bytes | None = None,
                vectors_model: str = "", allow_partial: bool = False) -> tuple[Hits, dict[str, Any]]:
        """Like search, and the plan: per clause estimated and actual set sizes, each shard's strategy and
        latency."""
        req = _search_request(name, vector, k, ef, with_payload, filter, query, ranking, weights, explain, text,
                              image, vectors_model, allow_partial)
        return _hits_and_plan(self._search(req))

    async def explain_async(self, name: str, vector: Any = None, k: int = 10, ef: int | None = None,
                            with_payload: bool = True, filter: QueryLike | None = None,
                            query: QueryLike | None = None, ranking: str | None = None,
                            weights: tuple[float, float] = (0.0, 0.0), explain: bool = True, *,
                            text: str | None = None, image: bytes | None = None, vectors_model: str = "",
                            allow_partial: bool = False) -> tuple[Hits, dict[str, Any]]:
        """explain awaited on the running asyncio loop without blocking it (for servers such as the gateway)."""
        req = _search_request(name, vector, k, ef, with_payload, filter, query, ranking, weights, explain, text,
                              image, vectors_model, allow_partial)
        return _hits_and_plan(await self._search_async(req))

    def search_batch(self, name: str, vectors: Any = None, k: int = 10, ef: int | None = None,
                     with_payload: bool = True, filter: str | None = None, *, texts: Sequence[str] | None = None,
                     images: Sequence[bytes] | None = None, vectors_model: str = "",
                     allow_partial: bool = False, oversample: int = 0) -> list[Hits]:
        """The k nearest documents to each query (rows of vectors, or texts, or images), among those passing
        `filter`, in one call. `oversample`: binary storage's Hamming candidates per hit (0 = default)."""
        req = coordinator_pb2.SearchRequest(collection=name, k=k, ef=ef or 0, with_payload=with_payload,
                                            texts=list(texts or []), images=list(images or []),
                                            vectors_model=vectors_model, allow_partial=allow_partial,
                                            filter=filter or "", columns=True, oversample=oversample)
        if vectors is not None:
            req.vectors.CopyFrom(pack_matrix(vectors))
        resp = self._search(req)
        return _hits_of(resp)
