"""Async clients of a shard node's gRPC service, used by the coordinator; failures come back as domain errors.

A NodeClient owns the channel to one node; a ShardClient is a view of it bound to one hosted partition."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

import grpc

from protos import common_pb2, shard_pb2, shard_pb2_grpc
from protos.errors import raise_from
from protos.serving import grpc_options
from protos.tls import ClientTLS, open_aio_channel
from shard_node.search_stream import SearchStream


class NodeClient:
    """The channel to one shard node, and the calls about the node itself."""

    def __init__(self, address: str, max_message_bytes: int, tls: ClientTLS | None = None) -> None:
        self.address = address
        self._channel = open_aio_channel(address, grpc_options(max_message_bytes), tls)
        self.stub = shard_pb2_grpc.ShardStub(self._channel)
        # Takes requests already serialised: the coordinator encodes a query batch once for every node.
        self._open_search = self._channel.stream_stream(
            "/shoal.v1.Shard/NodeSearchStream", request_serializer=None,
            response_deserializer=shard_pb2.NodeSearchResponse.FromString)
        self._searches: SearchStream | None = None

    async def node_search(self, request: bytes, timeout: float) -> shard_pb2.NodeSearchResponse:
        """The node's merged hits for a serialised NodeSearchRequest (sent on the node's search stream)."""
        if self._searches is None or self._searches.broken:
            self._searches = SearchStream(self._open_search, self.address)
        return await self._searches.search(request, timeout)

    def partition(self, key: str) -> ShardClient:
        """Calls to one partition this node hosts."""
        return ShardClient(self, key)

    async def open_partition(self, req: shard_pb2.OpenPartitionRequest, timeout: float) -> shard_pb2.ShardStats:
        """Make the node host a partition (idempotent); returns its figures."""
        try:
            return await self.stub.OpenPartition(req, timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)

    async def close_partition(self, key: str, delete_data: bool, timeout: float) -> bool:
        """Make the node stop hosting a partition; returns whether it did."""
        req = shard_pb2.ClosePartitionRequest(partition=key, delete_data=delete_data)
        try:
            return (await self.stub.ClosePartition(req, timeout=timeout)).existed
        except grpc.RpcError as err:
            raise_from(err)

    async def restore_partition(self, chunks: Iterable[shard_pb2.BackupChunk], timeout: float
                                ) -> shard_pb2.ShardStats:
        """Make the node host a new partition from a backup's files (a header first); returns its figures."""
        try:
            return await self.stub.RestorePartition(iter(chunks), timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)

    async def partitions(self, timeout: float) -> list[str]:
        """Keys of every partition the node hosts."""
        try:
            return list((await self.stub.ListPartitions(shard_pb2.ListPartitionsRequest(), timeout=timeout)).partitions)
        except grpc.RpcError as err:
            raise_from(err)

    async def close(self) -> None:
        """Close the search stream and the channel."""
        if self._searches is not None:
            await self._searches.close()
        await self._channel.close()


class ShardClient:
    """Calls one partition (shard replica) on its node."""

    def __init__(self, node: NodeClient, partition: str) -> None:
        self.node = node
        self.address = node.address
        self.partition = partition
        self._stub = node.stub

    async def upsert(self, ids: Sequence[str], vectors: common_pb2.FloatMatrix,
                     payloads: Sequence[common_pb2.Payload], timeout: float, lsn: int = 0) -> int:
        """Durably upsert as write `lsn` of the shard (0 = the partition's next); returns how many were written."""
        req = shard_pb2.ShardUpsertRequest(ids=ids, vectors=vectors, payloads=payloads, partition=self.partition,
                                           lsn=lsn)
        try:
            return (await self._stub.Upsert(req, timeout=timeout)).affected
        except grpc.RpcError as err:
            raise_from(err)

    async def delete(self, ids: Sequence[str], timeout: float, lsn: int = 0) -> int:
        """Durably delete as write `lsn` of the shard (0 = the partition's next); returns how many existed."""
        try:
            return (await self._stub.Delete(shard_pb2.ShardDeleteRequest(ids=ids, partition=self.partition, lsn=lsn),
                                           timeout=timeout)).affected
        except grpc.RpcError as err:
            raise_from(err)

    async def get(self, ids: Sequence[str], with_vectors: bool, timeout: float
                  ) -> Sequence[common_pb2.Document]:
        """Documents that exist among ids."""
        try:
            resp = await self._stub.Get(shard_pb2.ShardGetRequest(ids=ids, with_vectors=with_vectors,
                                                                  partition=self.partition),
                                        timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)
        return resp.documents

    async def stats(self, timeout: float, checksum: bool = False) -> shard_pb2.ShardStats:
        """The shard's figures (with checksum: its content checksum too)."""
        try:
            return await self._stub.Stats(shard_pb2.ShardStatsRequest(partition=self.partition, checksum=checksum),
                                          timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)

    async def read_log(self, after_lsn: int, timeout: float) -> shard_pb2.ReadLogResponse:
        """WAL records after an LSN (a batch of them; `truncated` when the WAL no longer holds them)."""
        try:
            return await self._stub.ReadLog(shard_pb2.ReadLogRequest(partition=self.partition, after_lsn=after_lsn),
                                            timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)

    async def apply_log(self, records: Sequence[shard_pb2.WalRecord], timeout: float) -> shard_pb2.ShardStats:
        """Append and apply a peer's records, which must follow this partition's last LSN."""
        try:
            return await self._stub.ApplyLog(shard_pb2.ApplyLogRequest(partition=self.partition, records=records),
                                             timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)

    def copy(self, timeout: float) -> AsyncIterator[shard_pb2.PartitionChunk]:
        """A consistent copy of this partition's live documents, as a stream of chunks."""
        return self._stub.CopyPartition(shard_pb2.CopyPartitionRequest(partition=self.partition), timeout=timeout)

    async def install(self, chunks: AsyncIterator[shard_pb2.PartitionChunk], timeout: float) -> shard_pb2.ShardStats:
        """Replace this partition's content by a peer's copy (chunks as CopyPartition streams them)."""
        async def addressed() -> AsyncIterator[shard_pb2.PartitionChunk]:
            try:
                async for chunk in chunks:
                    chunk.partition = self.partition
                    yield chunk
            except grpc.RpcError as err:
                raise_from(err)

        try:
            return await self._stub.InstallPartition(addressed(), timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)

    async def backup(self, timeout: float) -> AsyncIterator[shard_pb2.BackupChunk]:
        """The partition's backup stream: a header, then its files in chunks."""
        call = self._stub.BackupPartition(shard_pb2.BackupPartitionRequest(partition=self.partition), timeout=timeout)
        try:
            async for chunk in call:
                yield chunk
        except grpc.RpcError as err:
            raise_from(err)
        finally:
            call.cancel()

    async def rebuild(self, m: int, ef_construction: int, reason: str, wait: bool, timeout: float
                      ) -> shard_pb2.ShardStats:
        """Start (with wait: run to the end) a background rebuild of the shard's index; returns its figures."""
        req = shard_pb2.ShardRebuildRequest(m=m, ef_construction=ef_construction, reason=reason, wait=wait,
                                           partition=self.partition)
        try:
            return await self._stub.Rebuild(req, timeout=timeout)
        except grpc.RpcError as err:
            raise_from(err)
