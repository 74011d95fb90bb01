"""Search quality through the real cluster, against a numpy oracle and a single in-process hnswlib index."""

from __future__ import annotations

import hnswlib
import numpy as np

import shoal
from tests.support.data import clustered
from tests.support.oracle import exact_top_k, recall_at_k, same_set_up_to_ties

N_DOCS = 20_000
N_QUERIES = 500
K = 10
EF = 128
M = 16
EF_CONSTRUCTION = 200
BATCH = 2_500


def test_cluster_recall_and_agreement_with_single_hnswlib(client: shoal.Client, collection_name: str) -> None:
    """recall@10 >= 0.98 at ef=128 on 20k 384-d vectors over 3 shards; same top-k as one hnswlib index."""
    vectors, queries = clustered(N_DOCS, N_QUERIES)
    ids = [f"v{i}" for i in range(N_DOCS)]
    client.create_collection(collection_name, dim=vectors.shape[1], metric="cosine", shards=3, m=M,
                             ef_construction=EF_CONSTRUCTION, ef_search=EF)
    for start in range(0, N_DOCS, BATCH):
        client.upsert(collection_name, ids[start:start + BATCH], vectors[start:start + BATCH])
    assert client.count(collection_name) == N_DOCS

    results = client.search_batch(collection_name, queries, k=K, ef=EF, with_payload=False)
    assert all(len(r) == K for r in results)
    _, true_d = exact_top_k("cosine", queries, vectors, K)
    shoal_recall = recall_at_k([np.array([h.distance for h in r]) for r in results], true_d)

    single = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    single.init_index(max_elements=N_DOCS, M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
    single.add_items(vectors, np.arange(N_DOCS))
    single.set_ef(EF)
    labels, dists = single.knn_query(queries, k=K)
    agree = np.mean([
        same_set_up_to_ties([h.id for h in r], np.array([h.distance for h in r]),
                            [ids[i] for i in labels[q]], dists[q])
        for q, r in enumerate(results)
    ])
    print(f"\nrecall@{K} through Shoal at ef={EF}: {shoal_recall:.4f}; "
          f"same top-{K} as single hnswlib index for {agree:.1%} of {N_QUERIES} queries")
    assert shoal_recall >= 0.98
    assert agree >= 0.95
