"""Payload field types a collection can index, and how a payload value becomes an indexable value."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

# Field type names, as given at collection creation.
KEYWORD, TAGS, INT, FLOAT, DATETIME, BOOL, TEXT = "keyword", "tags", "int", "float", "datetime", "bool", "text"
FIELD_TYPES = (KEYWORD, TAGS, INT, FLOAT, DATETIME, BOOL, TEXT)
NUMERIC_TYPES = (INT, FLOAT, DATETIME)  # held as float64 columns with a sorted index
CODED_TYPES = (KEYWORD, BOOL)           # held as dictionary-coded columns
MAX_FIELDS = 64
# A text field's tokenizer, spelled after the type: "text:korean". Bare "text" is "text:english".
ENGLISH, KOREAN = "english", "korean"
TOKENIZERS = (ENGLISH, KOREAN)
DEFAULT_TOKENIZER = ENGLISH


class FieldTypeError(ValueError):
    """A value does not fit its field's type."""


def parse_datetime(value: Any) -> float:
    """RFC 3339 / ISO 8601 text (a bare date is midnight UTC) or epoch seconds -> epoch seconds."""
    if isinstance(value, bool):
        raise FieldTypeError(f"expected a date-time, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise FieldTypeError(f"expected a date-time string, got {type(value).__name__}")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise FieldTypeError(f"{value!r} is not an ISO 8601 date-time (e.g. 2024-05-01 or "
                             "2024-05-01T12:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def base_type(ftype: str) -> str:
    """A field type without its tokenizer: "text:korean" -> "text"."""
    return ftype.partition(":")[0]


def is_text(ftype: str) -> bool:
    """Whether a field type is full text, whatever its tokenizer."""
    return base_type(ftype) == TEXT


def tokenizer_of(ftype: str) -> str:
    """A text field's tokenizer name (the default when the type names none)."""
    return ftype.partition(":")[2] or DEFAULT_TOKENIZER


def scalar(ftype: str, value: Any) -> Any:
    """One value coerced to what field type `ftype` indexes: str, float or bool; FieldTypeError if it cannot be."""
    ftype = base_type(ftype)
    if ftype in (KEYWORD, TAGS, TEXT):
        if not isinstance(value, str):
            raise FieldTypeError(f"expected a string, got {type(value).__name__} {value!r}")
        return value
    if ftype == BOOL:
        if not isinstance(value, bool):
            raise FieldTypeError(f"expected true or false, got {value!r}")
        return value
    if ftype == DATETIME:
        return parse_datetime(value)
    if ftype == INT:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return value
            raise FieldTypeError(f"expected an integer, got {type(value).__name__} {value!r}")
        return float(value)
    if ftype == FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FieldTypeError(f"expected a finite number, got {value!r}")
        return float(value)
    raise FieldTypeError(f"unknown field type {ftype!r}")


def values_of(ftype: str, value: Any) -> list[Any]:
    """A payload value as the list of indexable values it holds (tags hold many, the others one)."""
    if value is None:
        return []
    ftype = base_type(ftype)
    if ftype == TAGS and isinstance(value, list):
        return [scalar(ftype, v) for v in value]
    if isinstance(value, list):
        raise FieldTypeError(f"expected one value, got a list ({ftype} fields hold one value; use 'tags' for lists)")
    return [scalar(ftype, value)]


def check_schema(fields: dict[str, str]) -> str | None:
    """Why a field schema is not valid, or None when it is."""
    if len(fields) > MAX_FIELDS:
        return f"{len(fields)} fields; a collection indexes at most {MAX_FIELDS}"
    for name, ftype in fields.items():
        if not name or not name.replace("_", "a").replace(".", "a").replace("-", "a").isalnum() or name[0].isdigit():
            return f"field name {name!r} is not valid: use letters, digits, '_', '.' or '-', not starting with a digit"
        if name in RESERVED_NAMES:
            return f"field name {name!r} is reserved in queries; choose another"
        kind, sep, tokenizer = ftype.partition(":")
        if kind not in FIELD_TYPES:
            return f"field {name!r} has unknown type {ftype!r}; use one of {', '.join(FIELD_TYPES)}"
        if sep and kind != TEXT:
            return f"field {name!r}: only text fields take a tokenizer ({ftype!r}); use {kind!r}"
        if sep and tokenizer not in TOKENIZERS:
            return (f"text field {name!r} has unknown tokenizer {tokenizer!r}; use one of "
                    f"{', '.join(f'text:{t}' for t in TOKENIZERS)} (bare 'text' is text:{DEFAULT_TOKENIZER})")
    return None


def check_schema_change(old: dict[str, str], new: dict[str, str]) -> str | None:
    """Why `new` cannot replace the schema `old` of existing data (a field's type or tokenizer changed), or None."""
    problem = check_schema(new)
    if problem:
        return problem
    for name in sorted(old.keys() & new.keys()):
        was, now = old[name], new[name]
        if is_text(was) and is_text(now) and tokenizer_of(was) != tokenizer_of(now):
            return (f"text field {name!r} is tokenized by {tokenizer_of(was)!r}; its tokenizer cannot change to "
                    f"{tokenizer_of(now)!r} on existing data (choices: {', '.join(TOKENIZERS)}); "
                    "create a new collection or a new field instead")
        if base_type(was) != base_type(now):
            return f"field {name!r} is {was}; its type cannot change to {now} on existing data"
    return None


RESERVED_NAMES = ("near", "match", "AND", "OR", "NOT", "id")
