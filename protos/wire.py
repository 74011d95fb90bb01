"""Conversions between wire messages and plain Python/numpy values, used once per side."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from protos import common_pb2
from protos.errors import InvalidArgument

PayloadDict = dict[str, Any]
_F32 = np.dtype("<f4")

# Metric names inside Shoal, and their wire enum.
METRICS = ("cosine", "l2", "ip")
# Separates a document id from the number of one of its extra chunks ("doc\x1f2"); refused in user ids.
CHUNK_SEP = "\x1f"
_METRIC_ENUM = {"cosine": common_pb2.COSINE, "l2": common_pb2.L2, "ip": common_pb2.IP}


def metric_to_proto(metric: str) -> int:
    """Metric name -> shoal.v1.Metric value."""
    return _METRIC_ENUM[metric]


def metric_from_proto(value: int) -> str:
    """shoal.v1.Metric value -> metric name ('' for METRIC_UNSPECIFIED)."""
    for name, enum in _METRIC_ENUM.items():
        if enum == value:
            return name
    if value == common_pb2.METRIC_UNSPECIFIED:
        return ""
    raise InvalidArgument(f"unknown metric enum value {value}; use COSINE, L2 or IP")


def check_vectors(vectors: np.ndarray, dim: int, what: str = "vector", metric: str = "") -> None:
    """Refuse vectors of the wrong dimension, with NaN/Inf, or all-zero under cosine, naming the first bad row."""
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        got = vectors.shape[1] if vectors.ndim == 2 else vectors.shape
        raise InvalidArgument(f"{what} dimension is {got}, but this collection has dimension {dim}")
    if len(vectors) == 1:
        # One query (the common search): one dot product vets it; anything odd gets the full diagnosis below.
        row = vectors[0].astype(np.float32, copy=False)
        square = float(row @ row)
        if math.isfinite(square) and (square > 0.0 or metric != "cosine"):
            return
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InvalidArgument(f"{what} {row} contains NaN or Inf; every component must be a finite number")
    if metric == "cosine":
        # float32 norms that underflow to 0 are as directionless to hnswlib as exact zeros.
        as_f32 = vectors.astype(np.float32, copy=False)
        zero = np.einsum("ij,ij->i", as_f32, as_f32) == 0
        if zero.any():
            row = int(np.flatnonzero(zero)[0])
            raise InvalidArgument(f"{what} {row} is all zeros, which has no direction under the cosine metric")


def pack_matrix(vectors: Any) -> common_pb2.FloatMatrix:
    """Pack a 2-D array-like of floats as little-endian float32 bytes."""
    arr = np.asarray(vectors, dtype=_F32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidArgument(f"vectors must be a 2-D array (rows x dim), got {arr.ndim} dimensions")
    arr = np.ascontiguousarray(arr)
    return common_pb2.FloatMatrix(data=arr.tobytes(), rows=arr.shape[0], dim=arr.shape[1])


def unpack_matrix(msg: common_pb2.FloatMatrix, what: str = "vectors") -> np.ndarray:
    """Unpack a FloatMatrix into a (rows, dim) float32 array, checking its size."""
    expected = int(msg.rows) * int(msg.dim) * 4
    if len(msg.data) != expected:
        raise InvalidArgument(
            f"{what}: {len(msg.data)} bytes do not hold {msg.rows} rows x {msg.dim} float32 "
            f"(expected {expected} bytes)"
        )
    return np.frombuffer(msg.data, dtype=_F32).reshape(int(msg.rows), int(msg.dim))


def pack_vector(vector: np.ndarray) -> bytes:
    """One vector as little-endian float32 bytes."""
    return np.ascontiguousarray(vector, dtype=_F32).tobytes()


def unpack_vector(data: bytes) -> np.ndarray:
    """Inverse of pack_vector; bytes that are not whole float32 values are InvalidArgument."""
    if len(data) % 4:
        raise InvalidArgument(f"a vector of {len(data)} bytes is not a whole number of float32 values (4 bytes each)")
    return np.frombuffer(data, dtype=_F32)


def pack_floats(values: np.ndarray) -> bytes:
    """A 1-D float32 array (distances) as little-endian bytes."""
    return np.ascontiguousarray(values, dtype=_F32).tobytes()


def unpack_floats(data: bytes) -> np.ndarray:
    """Inverse of pack_floats."""
    return np.frombuffer(data, dtype=_F32)


def value_to_proto(value: Any, key: str) -> common_pb2.Value:
    """A str/int/float/bool (or a list of those) as a Value; `key` names it in errors."""
    # bool before int: bool is a subclass of int in Python.
    if isinstance(value, (bool, np.bool_)):
        return common_pb2.Value(bool_value=bool(value))
    if isinstance(value, (int, np.integer)):
        if not -(2**63) <= int(value) < 2**63:
            raise InvalidArgument(f"payload field {key!r}: integer {value} does not fit in 64 bits")
        return common_pb2.Value(int_value=int(value))
    if isinstance(value, (float, np.floating)):
        return common_pb2.Value(float_value=float(value))
    if isinstance(value, str):
        return common_pb2.Value(string_value=value)
    if isinstance(value, (list, tuple)):
        items = [value_to_proto(v, key) for v in value]
        return common_pb2.Value(list_value=common_pb2.ValueList(values=items))
    raise InvalidArgument(
        f"payload field {key!r}: unsupported value type {type(value).__name__} "
        "(use str, int, float, bool or a list of those)"
    )


def value_from_proto(value: common_pb2.Value) -> Any:
    """Inverse of value_to_proto (None for an empty Value)."""
    kind = value.WhichOneof("kind")
    if kind == "list_value":
        return [value_from_proto(v) for v in value.list_value.values]
    if kind is None:
        return None
    return getattr(value, kind)


def payload_to_proto(payload: Mapping[str, Any] | None, into: common_pb2.Payload | None = None
                     ) -> common_pb2.Payload:
    """A dict of str -> str/int/float/bool/list as a Payload message (written into `into`, when given, so a map
    entry of a reply is filled in place instead of copied)."""
    msg = common_pb2.Payload() if into is None else into
    for key, value in (payload or {}).items():
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"payload keys must be non-empty strings, got {key!r}")
        msg.fields[key].CopyFrom(value_to_proto(value, key))
    return msg


def payload_from_proto(msg: common_pb2.Payload) -> PayloadDict:
    """Inverse of payload_to_proto."""
    return {key: value_from_proto(value) for key, value in msg.fields.items()}


def payloads_to_proto(payloads: Iterable[Mapping[str, Any] | None]) -> list[common_pb2.Payload]:
    """payload_to_proto over a sequence."""
    return [payload_to_proto(p) for p in payloads]


def payloads_from_proto(msgs: Sequence[common_pb2.Payload]) -> list[PayloadDict]:
    """payload_from_proto over a sequence."""
    return [payload_from_proto(m) for m in msgs]
