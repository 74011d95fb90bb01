"""Document routing: a pinned, deterministic, roughly uniform hash of the id."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.router import group_by_shard, shard_of


def expected_shard(doc_id: str, shards: int) -> int:
    """The documented formula: blake2b(utf-8 document id, digest_size=8) read little-endian, mod shards."""
    digest = hashlib.blake2b(doc_id.split("\x1f", 1)[0].encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


# Pinned values: if these change, every existing collection's documents are on the wrong shard.
PINNED = {
    ("doc-0", 8): 5, ("doc-1", 8): 6, ("alpha", 8): 3, ("ünïcode-日本", 8): 1, ("", 8): 4, ("42", 8): 7,
    ("doc-0", 7): 5, ("doc-1", 7): 4, ("alpha", 7): 6, ("ünïcode-日本", 7): 2,
    ("doc-0", 64): 37, ("alpha", 64): 19, ("ünïcode-日本", 64): 41, ("42", 3): 0, ("doc-0", 1): 0,
}


@pytest.mark.parametrize(("doc_id", "shards"), sorted(PINNED))
def test_pinned_values(doc_id: str, shards: int) -> None:
    assert expected_shard(doc_id, shards) == PINNED[doc_id, shards]
    assert int(shard_of([doc_id], shards)[0]) == PINNED[doc_id, shards]


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.text(max_size=20)), shards=st.integers(1, 1000))
def test_matches_formula(ids: list[str], shards: int) -> None:
    got = shard_of(ids, shards)
    assert got.dtype == np.int64 and got.shape == (len(ids),)
    assert got.tolist() == [expected_shard(i, shards) for i in ids]
    assert shard_of(ids, shards).tolist() == got.tolist()


def test_large_shard_count_uses_all_64_bits() -> None:
    shards = 2**62 + 7
    ids = [f"id-{i}" for i in range(50)]
    assert shard_of(ids, shards).tolist() == [expected_shard(i, shards) for i in ids]


@pytest.mark.parametrize("shards", [2, 5, 16])
def test_roughly_uniform(shards: int) -> None:
    n = 100_000
    counts = np.bincount(shard_of([f"doc-{i}" for i in range(n)], shards), minlength=shards)
    assert counts.sum() == n
    # expected n/shards each, std about sqrt(n/shards); allow a generous 3%
    assert np.all(np.abs(counts - n / shards) < 0.03 * n / shards), counts


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.text(alphabet="abc", max_size=3), max_size=60), shards=st.integers(1, 9))
def test_group_by_shard_partitions_positions(ids: list[str], shards: int) -> None:
    groups = group_by_shard(ids, shards)
    owner = [expected_shard(i, shards) for i in ids]
    assert set(groups) == set(owner)
    for s, positions in groups.items():
        assert len(positions) > 0
        assert positions.tolist() == sorted(positions.tolist()), "positions keep request order"
        assert all(owner[p] == s for p in positions)
    everything = np.concatenate(list(groups.values())) if groups else np.empty(0, dtype=np.int64)
    assert sorted(everything.tolist()) == list(range(len(ids)))


def test_group_by_shard_empty() -> None:
    assert group_by_shard([], 4) == {}
    assert shard_of([], 4).tolist() == []


def test_chunk_entries_route_with_their_document() -> None:
    """All of a chunked document lives on its shard: `doc` U+001F `n` hashes as `doc` (DESIGN)."""
    ids = [f"doc-{d}" for d in range(200)]
    for shards in (2, 3, 7):
        whole = shard_of(ids, shards)
        for n in (1, 2, 17):
            chunks = shard_of([f"{i}\x1f{n}" for i in ids], shards)
            assert (chunks == whole).all()
        assert len(set(whole.tolist())) == shards  # and documents still spread over every shard
