"""Async client of one shard's gRPC service, used by the coordinator; failures come back as domain errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import numpy as np

from protos import common_pb2, shard_pb2, shard_pb2_grpc
from protos.errors import raise_from
from protos.serving import grpc_options
from protos.tls import ClientTLS, open_aio_channel
from protos.wire import unpack_floats


@dataclass
class LocalHits:
    """Every query's local top-k from one shard: one row per query, best first."""

    ids: np.ndarray                          # (queries, hits) object array of str
    distances: np.ndarray                    # (queries, hits) float32
    payloads: Sequence[common_pb2.Payload]   # flat, row-major, when asked for


class ShardClient:
    """Calls one shard at one address."""

    def __init__(self, address: str, max_message_bytes: int, tls: ClientTLS | None = None) -> None:
        self.address = address
        self._channel = open_aio_channel(address, grpc_options(max_message_bytes), tls)
        self._stub = shard_pb2_grpc.ShardStub(self._channel)

    async def upsert(self, ids: Sequence[str], vectors: common_pb2.FloatMatrix,
                     payloads: Sequence[common_pb2.Payload], timeout: float) -> int:
        """Durably upsert; returns how many documents were written."""
        req = shard_pb2.ShardUpsertRequest(ids=ids, vectors=vectors, payloads=payloads)
        try:
            return (await self._stub.Upsert(req, timeout=timeout)).affected
        except grpc.RpcError as err:
            raise_from(err)

    async def delete(self, ids: Sequence[str], timeout: float) -> int:
        """Durably delete; returns how many of the ids existed."""
        try:
            return (await self._stub.Delete(shard_pb2.ShardDeleteRequest(ids=ids), timeout=timeout)).affected
        except grpc.RpcError as err:
            raise_from(err)

    async def get(self, ids: Sequence[str], with_vectors: bool, timeout: float
                  ) -> Sequence[common_pb2.Document]:
        """Documents that exist among ids."""
        try:
            resp = await self._stub.Get(shard_pb2.ShardGetRequest(ids=ids, with_vectors=with_vectors),
                                        timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)
        return resp.documents

    async def search(self, queries: common_pb2.FloatMatrix, k: int, ef: int, with_payload: bool,
                     timeout: float) -> LocalHits:
        """Local top-k of every query row."""
        req = shard_pb2.ShardSearchRequest(queries=queries, k=k, ef=ef, with_payload=with_payload)
        try:
            resp = await self._stub.Search(req, timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)
        rows, per = int(queries.rows), int(resp.hits_per_query)
        ids = np.empty(rows * per, dtype=object)
        ids[:] = list(resp.ids)
        return LocalHits(ids.reshape(rows, per), unpack_floats(resp.distances).reshape(rows, per), resp.payloads)

    async def query(self, req: shard_pb2.ShardQueryRequest, timeout: float) -> shard_pb2.ShardQueryResponse:
        """One filtered / full-text / hybrid query's local rankings."""
        try:
            return await self._stub.Query(req, timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)

    async def stats(self, timeout: float) -> shard_pb2.ShardStats:
        """The shard's figures."""
        try:
            return await self._stub.Stats(shard_pb2.ShardStatsRequest(), timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)

    async def rebuild(self, m: int, ef_construction: int, reason: str, wait: bool, timeout: float
                      ) -> shard_pb2.ShardStats:
        """Start (with wait: run to the end) a background rebuild of the shard's index; returns its figures."""
        req = shard_pb2.ShardRebuildRequest(m=m, ef_construction=ef_construction, reason=reason, wait=wait)
        try:
            return await self._stub.Rebuild(req, timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()
