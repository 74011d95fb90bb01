"""JSON <-> SDK types: the request and response bodies of the REST API, and the functions that translate them."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any, Literal, TypeVar

import numpy as np
import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from gateway.errors import GatewayError
from shoal.client import Collection, Document, Hit

Payload = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


class ErrorDetail(BaseModel):
    """What went wrong: the gRPC status name and the coordinator's message."""

    code: str = Field(examples=["INVALID_ARGUMENT"])
    message: str


class ErrorBody(BaseModel):
    """The body of every refusal."""

    error: ErrorDetail


class CreateCollectionBody(BaseModel):
    """A new collection; 0 takes the coordinator's default."""

    name: str
    dim: int = Field(0, ge=0, description="0 with a model: the model's dimension")
    metric: Literal["cosine", "l2", "ip"] = "cosine"
    shards: int = Field(0, ge=0)
    m: int = Field(0, ge=0)
    ef_construction: int = Field(0, ge=0)
    ef_search: int = Field(0, ge=0)
    model: str = Field("", description="bind to an embedding model, name@version")
    chunk_words: int = Field(0, ge=0)
    chunk_overlap: int = Field(0, ge=0)
    tombstone_threshold: float = Field(0.0, ge=0.0)
    replication_factor: int = Field(0, ge=0)
    storage: str = Field("", description="how vectors are kept: float32 (default), float16, int8 or binary")
    fields: dict[str, str] = Field(default_factory=dict, description="payload fields to index: name -> "
                                   "keyword|tags|int|float|datetime|bool|text")
    embed_fields: list[str] = Field(default_factory=list, description="bound collections: string payload fields "
                                    "embedded too, as further entries of each document")


class UpsertBody(BaseModel):
    """Documents to insert or replace, columnar: ids[i] goes with vectors[i], payloads[i], texts[i], images[i]."""

    ids: list[str]
    vectors: list[list[float]] | None = None
    payloads: list[Payload | None] | None = None
    texts: list[str] | None = Field(None, description="bound collections: texts to embed")
    images: list[str] | None = Field(None, description="bound collections: base64 PNG/JPEG/WebP to embed")
    vectors_model: str = Field("", description="the model that made `vectors` (bound collections)")


class IdsBody(BaseModel):
    """Document ids."""

    ids: list[str]


class GetBody(IdsBody):
    """Documents to read."""

    with_vectors: bool = False


class SearchBody(BaseModel):
    """One query: a vector, a text or an image (bound collections), or a whole query string."""

    vector: list[float] | None = None
    text: str | None = None
    image: str | None = Field(None, description="base64 image (bound image collections)")
    k: int = 10
    ef: int = 0
    filter: str | None = Field(None, description="query string restricting the search")
    query: str | None = Field(None, description="a whole query string; its near/match clauses rank")
    ranking: Literal["vector", "bm25", "hybrid"] | None = None
    vector_weight: float = 0.0
    text_weight: float = 0.0
    with_payload: bool = True
    allow_partial: bool = False
    explain: bool = False
    vectors_model: str = ""


class CompactBody(BaseModel):
    """Rebuild the index of all (or the listed) shards."""

    shards: list[int] = Field(default_factory=list)
    m: int = Field(0, ge=0)
    ef_construction: int = Field(0, ge=0)
    wait: bool = False


class UpdateCollectionBody(BaseModel):
    """Settings a collection may change after creation; null keeps a setting as it is."""

    write_consistency: int | None = Field(None, description="replicas that must acknowledge a write (1..replication "
                                         "factor)")


class SnapshotBody(BaseModel):
    """Where an online backup goes: an absolute directory on the coordinator's machine, absent or empty."""

    directory: str


class RestoreBody(BaseModel):
    """A backup to create a collection from (a directory on the coordinator's machine)."""

    directory: str
    name: str = Field("", description="the new collection's name; empty: the backed-up collection's")
    shards: int = Field(0, ge=0, description="0: the backup's shard count (another count is refused)")


class HitOut(BaseModel):
    """One search result."""

    id: str
    score: float
    distance: float
    payload: Payload = Field(default_factory=dict)


class SearchOut(BaseModel):
    """A search's hits, best first; `plan` with explain; `missing_shards` of a partial answer."""

    hits: list[HitOut]
    missing_shards: list[int] = Field(default_factory=list)
    plan: dict[str, Any] | None = None
    took_ms: float


class CollectionsOut(BaseModel):
    """Every collection."""

    collections: list[Collection]   # the SDK's dataclass is the schema: one list of fields for both


class DocumentOut(BaseModel):
    """A stored document."""

    id: str
    vector: list[float] | None = None
    payload: Payload = Field(default_factory=dict)


class DocumentsOut(BaseModel):
    """Stored documents in the order asked; missing ids are left out."""

    documents: list[DocumentOut]


class UpsertedOut(BaseModel):
    """How many documents were written."""

    upserted: int


class DeletedOut(BaseModel):
    """How many of the ids existed."""

    deleted: int


class CountOut(BaseModel):
    """Live documents."""

    count: int


class DroppedOut(BaseModel):
    """The collection that was dropped."""

    dropped: str


class CompactOut(BaseModel):
    """The shards' figures after the call."""

    shards: list[dict[str, Any]]


def decode_image(text: str, where: str) -> bytes:
    """Bytes of a base64 image (a `data:` URL prefix is allowed); a clear refusal otherwise."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GatewayError(400, "INVALID_ARGUMENT", f"{where} is not valid base64: {exc}") from None


def matrix(rows: list[list[float]]) -> np.ndarray:
    """Vectors as a float32 matrix; rows of unequal length are refused (they cannot be one matrix)."""
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        raise GatewayError(400, "INVALID_ARGUMENT",
                           f"vectors have different lengths ({sorted(lengths)}): every row needs the same dimension")
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), lengths.pop() if lengths else 0)


def upsert_args(body: UpsertBody) -> dict[str, Any]:
    """Keyword arguments of Client.upsert for a body."""
    return {"ids": body.ids, "vectors": matrix(body.vectors) if body.vectors is not None else None,
            "payloads": body.payloads, "texts": body.texts,
            "images": [decode_image(img, f"images[{i}]") for i, img in enumerate(body.images)]
            if body.images is not None else None,
            "vectors_model": body.vectors_model}


def search_args(body: SearchBody) -> dict[str, Any]:
    """Keyword arguments of Client.search / Client.explain for a body."""
    args: dict[str, Any] = {"vector": np.asarray(body.vector, dtype=np.float32) if body.vector is not None else None,
                            "k": body.k, "ef": body.ef or None, "with_payload": body.with_payload,
                            "filter": body.filter or None, "query": body.query or None, "ranking": body.ranking,
                            "text": body.text, "image": decode_image(body.image, "image") if body.image else None,
                            "vectors_model": body.vectors_model}
    if body.vector_weight or body.text_weight:
        args["weights"] = (body.vector_weight, body.text_weight)
    return args


def parse_body(model: type[M], raw: bytes) -> M:
    """A JSON body as `model`, refused exactly as FastAPI refuses a body it parses (same errors, same 400)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": exc.msg}}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def search_json(hits: list[Hit], missing_shards: list[int], plan: dict[str, Any] | None, took_ms: float) -> bytes:
    """A search's answer (the SearchOut shape) as JSON bytes, without building a model per hit."""
    return orjson.dumps({"hits": [{"id": h.id, "score": h.score, "distance": h.distance, "payload": h.payload}
                                  for h in hits],
                         "missing_shards": missing_shards, "plan": plan, "took_ms": took_ms},
                        option=orjson.OPT_SERIALIZE_NUMPY)


def collection_out(c: Collection) -> dict[str, Any]:
    """A collection as JSON."""
    return dataclasses.asdict(c)


def document_out(d: Document) -> dict[str, Any]:
    """A document as JSON."""
    return {"id": d.id, "vector": d.vector.tolist() if d.vector is not None else None, "payload": d.payload}
