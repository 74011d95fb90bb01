"""Wire conversions: float matrices, payload values and the metric enum."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protos import common_pb2
from protos.errors import InvalidArgument
from protos.wire import (
    METRICS,
    check_vectors,
    metric_from_proto,
    metric_to_proto,
    pack_floats,
    pack_matrix,
    pack_vector,
    payload_from_proto,
    payload_to_proto,
    payloads_from_proto,
    payloads_to_proto,
    unpack_floats,
    unpack_matrix,
    unpack_vector,
)


def over_the_wire(msg: Any) -> Any:
    """Serialize and parse a message, as a real call would."""
    return type(msg).FromString(msg.SerializeToString())


# ---- matrices -------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=9),
                  elements=st.floats(width=32, allow_nan=False)))
def test_matrix_roundtrip(arr: np.ndarray) -> None:
    msg = over_the_wire(pack_matrix(arr))
    assert (msg.rows, msg.dim) == arr.shape
    out = unpack_matrix(msg)
    assert out.dtype == np.float32 and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_matrix_bytes_are_little_endian_float32_row_major() -> None:
    arr = np.array([[1.0, -2.5], [3.25, 0.0]])  # float64 input is converted
    msg = pack_matrix(arr)
    assert msg.data == struct.pack("<4f", 1.0, -2.5, 3.25, 0.0)
    big_endian = np.array([[1.0, 2.0]], dtype=">f8")
    assert pack_matrix(big_endian).data == struct.pack("<2f", 1.0, 2.0)
    non_contiguous = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    np.testing.assert_array_equal(unpack_matrix(pack_matrix(non_contiguous)), non_contiguous)


def test_one_vector_becomes_one_row() -> None:
    msg = pack_matrix([1.0, 2.0, 3.0])
    assert (msg.rows, msg.dim) == (1, 3)


def test_three_dimensional_array_refused() -> None:
    with pytest.raises(InvalidArgument, match="2-D"):
        pack_matrix(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("delta", [-4, -1, 1, 4])
def test_wrong_byte_count_names_sizes(delta: int) -> None:
    msg = pack_matrix(np.ones((3, 5), np.float32))
    msg.data = msg.data[:delta] if delta < 0 else msg.data + b"\x00" * delta
    got = len(msg.data)
    with pytest.raises(InvalidArgument) as info:
        unpack_matrix(msg, what="queries")
    text = str(info.value)
    assert text.startswith("queries")
    assert f"{got} bytes" in text and "3 rows x 5" in text and "expected 60 bytes" in text


def test_vector_and_float_helpers() -> None:
    v = np.array([0.5, -1.0, 7.0], dtype=np.float64)
    assert pack_vector(v) == struct.pack("<3f", 0.5, -1.0, 7.0)
    np.testing.assert_array_equal(unpack_vector(pack_vector(v)), v.astype(np.float32))
    d = np.array([0.0, 1.5], dtype=np.float32)
    np.testing.assert_array_equal(unpack_floats(pack_floats(d)), d)
    assert unpack_floats(b"").shape == (0,)


def test_check_vectors() -> None:
    check_vectors(np.zeros((3, 4), np.float32), 4)
    check_vectors(np.zeros((0, 4), np.float32), 4)
    with pytest.raises(InvalidArgument, match="dimension is 5, but this collection has dimension 4"):
        check_vectors(np.zeros((1, 5)), 4)
    with pytest.raises(InvalidArgument, match="dimension"):
        check_vectors(np.zeros(4), 4)
    bad = np.zeros((4, 4))
    bad[2, 1] = np.inf
    bad[3, 0] = np.nan
    with pytest.raises(InvalidArgument, match="query 2 contains NaN or Inf"):
        check_vectors(bad, 4, what="query")


def test_check_vectors_zero_rows_only_refused_under_cosine() -> None:
    vecs = np.ones((3, 4), np.float32)
    vecs[1] = 0.0
    for metric in ("", "l2", "ip"):
        check_vectors(vecs, 4, metric=metric)
    with pytest.raises(InvalidArgument, match="vector 1 is all zeros"):
        check_vectors(vecs, 4, metric="cosine")
    vecs[1, 3] = -0.5
    check_vectors(vecs, 4, metric="cosine")


# ---- payloads -------------------------------------------------------------------------------------
def test_payload_roundtrip_keeps_types() -> None:
    payload = {
        "s": "text ünïcode", "empty": "", "i": -(2**63), "j": 2**63 - 1, "zero": 0, "f": 2.5, "whole": 3.0,
        "t": True, "no": False, "l": [1, "a", 2.5, False, [True, ["deep", 7]]], "none": [],
    }
    out = payload_from_proto(over_the_wire(payload_to_proto(payload)))
    assert out == payload
    for key in payload:
        assert type(out[key]) is type(payload[key]), key
    assert type(out["l"][3]) is bool and type(out["l"][0]) is int


def test_tuple_and_numpy_scalars_accepted() -> None:
    payload = {"t": (1, 2), "n": np.int64(5), "f": np.float32(0.5), "b": np.bool_(True), "u": np.uint8(7)}
    out = payload_from_proto(payload_to_proto(payload))
    assert out == {"t": [1, 2], "n": 5, "f": 0.5, "b": True, "u": 7}
    assert type(out["b"]) is bool and type(out["n"]) is int


def test_empty_payloads() -> None:
    assert payload_from_proto(payload_to_proto(None)) == {}
    assert payload_from_proto(payload_to_proto({})) == {}
    assert payload_from_proto(common_pb2.Payload(fields={"unset": common_pb2.Value()})) == {"unset": None}


def test_payload_lists() -> None:
    payloads = [{"a": 1}, None, {"b": ["x"]}]
    assert payloads_from_proto([over_the_wire(m) for m in payloads_to_proto(payloads)]) == [{"a": 1}, {}, {"b": ["x"]}]


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30, [1, 2**64]])
def test_too_large_int_refused(value: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"'big'.*64 bits"):
        payload_to_proto({"big": value})


@pytest.mark.parametrize("value", [None, {"nested": 1}, b"bytes", object(), {1, 2}, [1, None], 1j])
def test_unsupported_type_refused(value: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"'field'.*unsupported value type"):
        payload_to_proto({"field": value})


@pytest.mark.parametrize("key", ["", 1, None])
def test_bad_keys_refused(key: Any) -> None:
    with pytest.raises(InvalidArgument, match="non-empty strings"):
        payload_to_proto({key: 1})


# ---- metrics --------------------------------------------------------------------------------------
def test_metric_enum_mapping() -> None:
    assert METRICS == ("cosine", "l2", "ip")
    assert metric_to_proto("cosine") == common_pb2.COSINE
    assert metric_to_proto("l2") == common_pb2.L2
    assert metric_to_proto("ip") == common_pb2.IP
    for name in METRICS:
        assert metric_from_proto(metric_to_proto(name)) == name
    assert metric_from_proto(common_pb2.METRIC_UNSPECIFIED) == ""
    assert len({metric_to_proto(m) for m in METRICS}) == 3


def test_unknown_metric_enum_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown metric enum value 99"):
        metric_from_proto(99)


def test_check_vectors_refuses_norms_that_underflow_under_cosine() -> None:
    """A vector whose float32 squared norm is 0 has no direction for hnswlib either."""
    tiny = np.full((1, 4), 1e-30, np.float32)
    with pytest.raises(InvalidArgument, match="all zeros"):
        check_vectors(tiny, 4, metric="cosine")
    check_vectors(tiny, 4, metric="l2")


@pytest.mark.parametrize("size", [1, 3, 5, 33])
def test_vector_bytes_not_whole_floats_refused(size: int) -> None:
    """Regression (fuzzer): a shard Query whose vector had 1 byte answered INTERNAL (numpy ValueError)."""
    with pytest.raises(InvalidArgument, match=f"{size} bytes is not a whole number of float32"):
        unpack_vector(b"\0" * size)
