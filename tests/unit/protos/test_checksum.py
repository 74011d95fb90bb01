"""The content checksum: independent of order, changed by any id, vector or payload byte, additive over shards."""

from __future__ import annotations

import numpy as np

from protos.checksum import combine_checksums, content_checksum
from protos.wire import pack_vector, payload_to_proto


def entries(n: int) -> tuple[list[str], list[bytes], list]:
    """n documents as checksum input."""
    rng = np.random.default_rng(0)
    return ([f"id{i}" for i in range(n)], [pack_vector(v) for v in rng.standard_normal((n, 4))],
            [payload_to_proto({"n": i, "tag": "x"}) for i in range(n)])


def test_order_does_not_matter_and_any_change_does() -> None:
    ids, vectors, payloads = entries(50)
    base = content_checksum(ids, vectors, payloads)
    order = np.random.default_rng(1).permutation(50)
    assert content_checksum([ids[i] for i in order], [vectors[i] for i in order],
                            [payloads[i] for i in order]) == base
    changed = list(vectors)
    changed[3] = pack_vector(np.frombuffer(vectors[3], np.float32) + np.float32(1e-6))
    assert content_checksum(ids, changed, payloads) != base
    assert content_checksum(ids, vectors, [*payloads[:-1], payload_to_proto({"n": 49, "tag": "y"})]) != base
    assert content_checksum(["id0x", *ids[1:]], vectors, payloads) != base
    assert content_checksum(ids[:-1], vectors[:-1], payloads[:-1]) != base
    assert content_checksum([], [], []) == "0" * 32


def test_shards_combine_to_the_whole() -> None:
    ids, vectors, payloads = entries(30)
    parts = [content_checksum(ids[a:b], vectors[a:b], payloads[a:b]) for a, b in ((0, 7), (7, 20), (20, 30))]
    assert combine_checksums(parts) == content_checksum(ids, vectors, payloads)
