"""Every server (coordinator and each shard) answers the standard health service and server reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

import shoal
from shoal.serve import LocalCluster


def services_of(address: str) -> set[str]:
    """Service names a server lists through reflection, after checking it reports SERVING."""
    with grpc.insecure_channel(address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        return set(ProtoReflectionDescriptorDatabase(channel).get_services())


def test_coordinator_and_shards_serve_health_and_reflection(cluster: LocalCluster, client: shoal.Client,
                                                            collection_name: str) -> None:
    """A client in another language can discover the API: Coordinator on the front, Shard on each shard."""
    standard = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert services_of(cluster.address) == {"shoal.v1.Coordinator", *standard}
    client.create_collection(collection_name, dim=4, shards=2)
    for shard in client.describe_collection(collection_name).shard_info:
        assert services_of(shard["address"]) == {"shoal.v1.Shard", *standard}
    with grpc.insecure_channel(cluster.address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        search = db.FindFileContainingSymbol("shoal.v1.Coordinator")
        assert search.name == "protos/coordinator.proto"
