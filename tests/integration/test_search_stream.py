"""The coordinator's SearchStream on a real cluster: answers in order, each equal to the unary Search's (and to
numpy's exact top-k); a failed search answers with the unary call's status and message and the stream goes on;
each search's timeout_s is its deadline."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

import shoal
from protos import coordinator_pb2, coordinator_pb2_grpc
from protos.wire import pack_matrix
from shoal.serve import LocalCluster
from tests.support.data import random_vectors

DIM, N, K = 8, 300, 5
NAME = "streamed"


@pytest.fixture(scope="module")
def stub(cluster: LocalCluster) -> Iterator[coordinator_pb2_grpc.CoordinatorStub]:
    """A raw stub of the shared cluster's coordinator, with a small flat collection."""
    with shoal.Client(cluster.address) as client:
        client.create_collection(NAME, dim=DIM, shards=2, metric="l2")
        client.upsert(NAME, [f"d{i}" for i in range(N)], random_vectors(N, DIM, seed=21))
        channel = grpc.insecure_channel(cluster.address)
        try:
            yield coordinator_pb2_grpc.CoordinatorStub(channel)
        finally:
            channel.close()
            client.drop_collection(NAME)


def _request(vector: np.ndarray, collection: str = NAME, timeout_s: float = 0.0) -> coordinator_pb2.SearchRequest:
    return coordinator_pb2.SearchRequest(collection=collection, vectors=pack_matrix(vector.reshape(1, -1)), k=K,
                                         ef=200, columns=True, timeout_s=timeout_s)


def test_answers_in_order_equal_to_unary_search_and_errors_in_place(stub: coordinator_pb2_grpc.CoordinatorStub
                                                                   ) -> None:
    docs = random_vectors(N, DIM, seed=21)
    queries = random_vectors(3, DIM, seed=22)
    requests = [_request(queries[0]), _request(queries[1], collection="no-such-collection"),
                _request(np.ones(DIM + 1, np.float32)), _request(queries[2])]
    answers = list(stub.SearchStream(iter(requests), timeout=30))
    assert len(answers) == 4
    for i, answer in ((0, answers[0]), (2, answers[3])):
        exact = [f"d{j}" for j in np.argsort(((docs - queries[i]) ** 2).sum(axis=1))[:K]]
        assert list(answer.columns.ids) == exact
        assert answer.error_code == 0
        unary = stub.Search(_request(queries[i]), timeout=30)
        assert list(unary.columns.ids) == list(answer.columns.ids)
    for request, answer in ((requests[1], answers[1]), (requests[2], answers[2])):
        with pytest.raises(grpc.RpcError) as err:
            stub.Search(request, timeout=30)
        assert answer.error_code == err.value.code().value[0]
        assert answer.error == err.value.details()
        assert not answer.columns.ids
    assert answers[1].error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert answers[2].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_timeout_s_is_each_searchs_deadline(stub: coordinator_pb2_grpc.CoordinatorStub) -> None:
    query = random_vectors(1, DIM, seed=23)[0]
    answers = list(stub.SearchStream(iter([_request(query, timeout_s=1e-6), _request(query)]), timeout=30))
    assert answers[0].error_code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert "deadline" in answers[0].error or "did not finish within" in answers[0].error
    assert answers[1].error_code == 0 and len(answers[1].columns.ids) == K
