"""Refusing payload values that do not fit the collection's field schema, before anything is written."""

from __future__ import annotations

from collections.abc import Sequence

from protos import common_pb2
from protos.errors import InvalidArgument
from protos.wire import value_from_proto
from shard_node.schema import FieldTypeError, values_of


def check_payloads(fields: dict[str, str], ids: Sequence[str], payloads: Sequence[common_pb2.Payload]) -> None:
    """InvalidArgument naming the document and field of the first value its field's type cannot hold."""
    if not fields:
        return
    for doc_id, payload in zip(ids, payloads, strict=True):
        for name, ftype in fields.items():
            if name not in payload.fields:
                continue
            try:
                values_of(ftype, value_from_proto(payload.fields[name]))
            except FieldTypeError as exc:
                raise InvalidArgument(f"document {doc_id!r}: payload field {name!r} is indexed as {ftype}: {exc}"
                                      ) from None
