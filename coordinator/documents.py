"""Collections bound to a model: texts and images in, embedded and chunked; chunk hits grouped back to documents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coordinator.catalog import CollectionSpec
from coordinator.chunking import DEFAULT_OVERLAP, DEFAULT_WORDS, MAX_WORDS, chunk_text
from coordinator.engine import Engine, SearchAnswer, check_batch, check_ids
from coordinator.grouping import CHUNKS_KEY, chunk_id, strip_internal
from embedder.client import Embedded, EmbedderClient
from embedder.registry import version_key
from protos import common_pb2
from protos.errors import FailedPrecondition, InvalidArgument, NotFound
from protos.wire import CHUNK_SEP

EMBED_REQUEST_ITEMS = 256      # texts or images per call to the embedder (calls run concurrently)
MAX_EMBED_FIELDS = 8           # payload fields a collection may embed besides the document's text


@dataclass(frozen=True)
class BoundModel:
    """A model as a collection binds to it."""

    ref: str
    dim: int
    modality: str


class Documents:
    """The public write/read path: bare-vector collections pass through to the Engine unchanged."""

    def __init__(self, engine: Engine, embedder: EmbedderClient | None) -> None:
        self._engine = engine
        self._embedder = embedder
        # Writes to a bound collection read the old chunk counts, write, then drop stale chunks; two of them
        # interleaving on one document could strand a chunk, so they take turns per collection.
        self._write_locks: dict[str, asyncio.Lock] = {}

    # ---- models --------------------------------------------------------------------------
    def _client(self) -> EmbedderClient:
        if self._embedder is None:
            raise FailedPrecondition("this coordinator has no embedder (start it with --embedder-address), "
                                     "so it cannot use models; send vectors instead")
        return self._embedder

    async def resolve_model(self, model: str) -> BoundModel:
        """name@version (or name: its newest available version) as the embedder serves it."""
        infos = await self._client().list_models()
        name, _, version = model.partition("@")
        matches = [m for m in infos if m.name == name and (not version or m.version == version)]
        if not matches:
            known = ", ".join(f"{m.name}@{m.version}" for m in infos) or "none"
            raise NotFound(f"the embedder has no model {model!r} (it has: {known})")
        usable = [m for m in matches if m.available]
        if not usable:
            raise FailedPrecondition(f"model {model!r} cannot be served: {matches[0].unavailable_reason}")
        best = max(usable, key=lambda m: version_key(m.version))
        return BoundModel(f"{best.name}@{best.version}", best.dim, best.modality)

    async def _embed(self, spec: CollectionSpec, texts: Sequence[str], images: Sequence[bytes],
                     kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of texts and of images (each possibly empty), checked to come from the bound model."""
        client = self._client()
        step = EMBED_REQUEST_ITEMS
        calls = [client.embed_texts(spec.model, texts[i:i + step], kind) for i in range(0, len(texts), step)]
        calls += [client.embed_images(spec.model, images[i:i + step]) for i in range(0, len(images), step)]
        results: list[Embedded] = list(await asyncio.gather(*calls))
        for r in results:
            if r.model != spec.model or r.dim != spec.dim:
                raise FailedPrecondition(f"the embedder answered with {r.model} ({r.dim} dims), but collection "
                                         f"{spec.name!r} is bound to {spec.model} ({spec.dim} dims)")
        n_text = -(-len(texts) // step)
        empty = np.zeros((0, spec.dim), np.float32)
        text_vecs = np.concatenate([r.vectors for r in results[:n_text]]) if n_text else empty
        image_vecs = np.concatenate([r.vectors for r in results[n_text:]]) if len(results) > n_text else empty
        return text_vecs, image_vecs

    @staticmethod
    def _check_vectors_model(spec: CollectionSpec, vectors_model: str, vectors: np.ndarray) -> None:
        if vectors_model == spec.model:
            if vectors.ndim == 2 and vectors.shape[1] != spec.dim:
                raise InvalidArgument(f"vector dimension is {vectors.shape[1]}, but collection {spec.name!r} is "
                                      f"bound to {spec.model}, which makes {spec.dim}-dim vectors")
            return
        if not vectors_model:
            raise FailedPrecondition(f"collection {spec.name!r} is bound to {spec.model}: say which model made "
                                     f"these vectors (vectors_model), or send texts/images to embed")
        raise FailedPrecondition(f"vectors made by {vectors_model} cannot be used with collection {spec.name!r}, "
                                 f"which is bound to {spec.model}")

    @staticmethod
    def _check_sources(spec: CollectionSpec, texts: Sequence[str], images: Sequence[bytes]) -> None:
        if (texts or images) and not spec.model:
            raise FailedPrecondition(f"collection {spec.name!r} holds bare vectors (no model is bound), so it "
                                     "cannot embed texts or images; send vectors, or create it with a model")

    async def create_collection(self, name: str, dim: int, metric: str, shards: int, m: int, ef_construction: int,
                                ef_search: int, model: str, chunk_words: int, chunk_overlap: int,
                                fields: dict[str, str] | None = None, embed_fields: Sequence[str] = (),
                                **policy: float | int | None) -> CollectionSpec:
        """Create a collection; with a model, its dimension comes from (and must agree with) the model.

        embed_fields: string payload fields embedded as further entries of each document (bound collections).
        policy: the engine's compaction and replication settings of the collection."""
        if not model:
            if chunk_words or chunk_overlap or embed_fields:
                what = "embed_fields" if embed_fields else "chunking"
                raise InvalidArgument(f"{what} applies to collections bound to a model; give a model too")
            return await self._engine.create_collection(name, dim, metric, shards, m, ef_construction, ef_search,
                                                        fields=fields, **policy)
        bound = await self.resolve_model(model)
        if dim and dim != bound.dim:
            raise InvalidArgument(f"dim {dim} does not match model {bound.ref}, which makes {bound.dim}-dim vectors; "
                                  "give dim 0 or the model's")
        words = chunk_words or DEFAULT_WORDS
        overlap = chunk_overlap if chunk_words else DEFAULT_OVERLAP
        if not 1 <= words <= MAX_WORDS:
            raise InvalidArgument(f"chunking.words must be between 1 and {MAX_WORDS}, got {words}")
        if not 0 <= overlap < words:
            raise InvalidArgument(f"chunking.overlap must be smaller than chunking.words ({words}), got {overlap}")
        check_embed_fields(embed_fields, bound)
        return await self._engine.create_collection(name, bound.dim, metric, shards, m, ef_construction, ef_search,
                                                    fields=fields, model=bound.ref, modality=bound.modality,
                                                    chunk_words=words, chunk_overlap=overlap,
                                                    embed_fields=list(embed_fields), **policy)

    # ---- writes --------------------------------------------------------------------------
    async def upsert(self, name: str, ids: Sequence[str], vectors: np.ndarray, vectors_model: str,
                     texts: Sequence[str], images: Sequence[bytes], payloads: Sequence[common_pb2.Payload],
                     vector_owners: Sequence[int] = ()) -> int:
        """Write documents: bare vectors, or (bound collections) texts/images embedded and chunked here.

        vector_owners: with precomputed vectors of a bound collection, the document (position in ids) each row
        belongs to, so a document can arrive with all its entries (chunks, embedded fields)."""
        spec = self._engine.catalog.get(name)
        self._check_sources(spec, texts, images)
        if vector_owners and not spec.model:
            raise InvalidArgument(f"collection {spec.name!r} holds bare vectors: one vector per id, "
                                  "vector_owners applies to collections bound to a model")
        if not spec.model:
            return await self._engine.upsert(name, ids, vectors, payloads)
        check_ids(ids, self._engine.settings.max_batch)
        for pos, doc_id in enumerate(ids):
            if CHUNK_SEP in doc_id:
                raise InvalidArgument(f"id at position {pos} contains U+001F, which Shoal reserves")
        if payloads and len(payloads) != len(ids):
            raise InvalidArgument(f"{len(ids)} ids but {len(payloads)} payloads; give none or one per id")
        if vectors.shape[0]:
            if texts or images:
                raise InvalidArgument("give either vectors or texts/images in one upsert, not both")
            self._check_vectors_model(spec, vectors_model, vectors)
            entry_vectors, owners = entries_of(vectors, vector_owners, len(ids))
        else:
            if vector_owners:
                raise InvalidArgument("vector_owners goes with vectors; texts and images are split into entries "
                                      "by the collection's chunking")
            entry_vectors, owners = await self._embed_documents(spec, ids, texts, images, payloads)
        return await self._write(spec, ids, entry_vectors, owners, payloads)

    async def _embed_documents(self, spec: CollectionSpec, ids: Sequence[str], texts: Sequence[str],
                               images: Sequence[bytes], payloads: Sequence[common_pb2.Payload]
                               ) -> tuple[np.ndarray, list[int]]:
        """Each document's chunk texts (its text, then its embedded fields) and image embedded; vectors with the
        document each belongs to."""
        for what, values in (("texts", texts), ("images", images)):
            if values and len(values) != len(ids):
                raise InvalidArgument(f"{len(ids)} ids but {len(values)} {what}; give none or one per id")
        if not texts and not images:
            raise InvalidArgument(f"collection {spec.name!r} is bound to {spec.model}: give vectors, texts or images")
        chunk_texts: list[str] = []
        text_owner: list[int] = []
        image_owner: list[int] = []
        for i in range(len(ids)):
            text = texts[i] if texts else ""
            image = images[i] if images else b""
            field_texts = field_texts_of(spec, payloads[i] if payloads else None, ids[i])
            if not text.strip() and not image and not field_texts:
                raise InvalidArgument(f"document {ids[i]!r} has neither text nor image")
            for piece_of in ([text] if text.strip() else []) + field_texts:
                pieces = chunk_text(piece_of, spec.chunk_words, spec.chunk_overlap)
                chunk_texts.extend(pieces)
                text_owner.extend([i] * len(pieces))
            if image:
                image_owner.append(i)
        text_vecs, image_vecs = await self._embed(spec, chunk_texts, [images[i] for i in image_owner], "passage")
        owners = text_owner + image_owner
        order = np.argsort(np.asarray(owners), kind="stable")  # a document's entries side by side
        return np.concatenate([text_vecs, image_vecs])[order], [owners[j] for j in order.tolist()]

    async def _write(self, spec: CollectionSpec, ids: Sequence[str], vectors: np.ndarray, owners: list[int],
                     payloads: Sequence[common_pb2.Payload]) -> int:
        """Store entries (first entry of a document keeps its id), then drop chunks the old version had extra."""
        async with self._write_lock(spec.name):
            return await self._write_locked(spec, ids, vectors, owners, payloads)

    def _write_lock(self, name: str) -> asyncio.Lock:
        return self._write_locks.setdefault(name, asyncio.Lock())

    async def _write_locked(self, spec: CollectionSpec, ids: Sequence[str], vectors: np.ndarray, owners: list[int],
                            payloads: Sequence[common_pb2.Payload]) -> int:
        old = await self._chunk_counts(spec.name, ids)
        counts = np.bincount(np.asarray(owners), minlength=len(ids))
        entry_ids, entry_payloads = [], []
        nth = [0] * len(ids)
        for owner in owners:
            entry_ids.append(chunk_id(ids[owner], nth[owner]))
            payload = common_pb2.Payload()
            if payloads:
                payload.CopyFrom(payloads[owner])
            if nth[owner] == 0:
                payload.fields[CHUNKS_KEY].int_value = int(counts[owner])
            entry_payloads.append(payload)
            nth[owner] += 1
        await self._engine.upsert(spec.name, entry_ids, vectors, entry_payloads)
        stale = [chunk_id(d, n) for i, d in enumerate(ids) for n in range(int(counts[i]), old.get(d, 0))]
        if stale:
            await self._engine.delete(spec.name, stale)
        return len(ids)

    async def _chunk_counts(self, name: str, ids: Sequence[str]) -> dict[str, int]:
        """How many entries each stored document has now."""
        docs = await self._engine.get(name, ids, with_vectors=False)
        return {d.id: int(d.payload.fields[CHUNKS_KEY].int_value) if CHUNKS_KEY in d.payload.fields else 1
                for d in docs}

    async def delete(self, name: str, ids: Sequence[str]) -> int:
        """Delete documents with all their chunks; returns how many existed."""
        spec = self._engine.catalog.get(name)
        if not spec.model:
            return await self._engine.delete(name, ids)
        check_ids(ids, self._engine.settings.max_batch)
        async with self._write_lock(name):
            old = await self._chunk_counts(name, ids)
            extra = [chunk_id(d, n) for d, count in old.items() for n in range(1, count)]
            deleted = await self._engine.delete(name, list(ids))
            if extra:
                await self._engine.delete(name, extra)
        return deleted

    # ---- reads ---------------------------------------------------------------------------
    async def get(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[common_pb2.Document]:
        """Stored documents among ids (a chunked document shows its first chunk's vector)."""
        docs = await self._engine.get(name, ids, with_vectors)
        for d in docs:
            strip_internal(d.payload)
        return docs

    async def search(self, name: str, vectors: np.ndarray, vectors_model: str, texts: Sequence[str],
                     images: Sequence[bytes], k: int, ef: int, with_payload: bool, allow_partial: bool = False,
                     explain: bool = False, oversample: int = 0) -> SearchAnswer:
        """Top-k documents per query; queries are vectors, or (bound collections) texts or images."""
        spec = self._engine.catalog.get(name)
        self._check_sources(spec, texts, images)
        if spec.model and sum(bool(x) for x in (vectors.shape[0], len(texts), len(images))) != 1:
            raise InvalidArgument("give the queries as vectors, texts or images (exactly one of them)")
        start = time.perf_counter()
        queries = await self.query_vectors(name, vectors, vectors_model, texts, images)
        embed_ms = (time.perf_counter() - start) * 1000.0
        answer = await self._engine.search(name, queries, k, ef, with_payload, allow_partial, explain, oversample)
        for plan in answer.plans[:1]:
            plan.stage_ms["embed"] = embed_ms
        return answer

    async def embed_query_texts(self, name: str, texts: list[str]) -> np.ndarray | None:
        """Query vectors of near:"text" clauses by the collection's model (None for a collection without one)."""
        spec = self._engine.catalog.get(name)
        if not spec.model:
            return None
        if any(not t.strip() for t in texts):
            raise InvalidArgument("a near:\"...\" clause has an empty text")
        return (await self._embed(spec, texts, [], "query"))[0]

    async def query_vectors(self, name: str, vectors: np.ndarray, vectors_model: str, texts: Sequence[str],
                            images: Sequence[bytes]) -> np.ndarray:
        """Query vectors as given, or (bound collections) embedded from texts or images."""
        spec = self._engine.catalog.get(name)
        self._check_sources(spec, texts, images)
        if not spec.model:
            return vectors
        sources = sum(bool(x) for x in (vectors.shape[0], len(texts), len(images)))
        if sources > 1:
            raise InvalidArgument("give the queries as vectors, texts or images (exactly one of them)")
        if vectors.shape[0] or not sources:
            if vectors.shape[0]:
                self._check_vectors_model(spec, vectors_model, vectors)
            return vectors
        if any(not t.strip() for t in texts):
            raise InvalidArgument("a text query is empty")
        check_batch(len(texts) + len(images), "queries", self._engine.settings.max_batch)
        text_vecs, image_vecs = await self._embed(spec, list(texts), list(images), "query")
        return text_vecs if len(texts) else image_vecs


def check_embed_fields(embed_fields: Sequence[str], bound: BoundModel) -> None:
    """embed_fields name distinct payload fields, few enough, of a collection whose model embeds text."""
    if not embed_fields:
        return
    if "text" not in bound.modality.split("+"):
        raise InvalidArgument(f"embed_fields needs a model that embeds text; {bound.ref} embeds {bound.modality}")
    if len(embed_fields) > MAX_EMBED_FIELDS:
        raise InvalidArgument(f"at most {MAX_EMBED_FIELDS} embed_fields, got {len(embed_fields)}")
    seen: set[str] = set()
    for name in embed_fields:
        if not name or name.startswith("_shoal") or name in seen:
            raise InvalidArgument(f"embed_fields: {name!r} is empty, reserved or given twice; name distinct "
                                  "payload fields that hold text")
        seen.add(name)


def field_texts_of(spec: CollectionSpec, payload: common_pb2.Payload | None, doc_id: str) -> list[str]:
    """The non-empty texts of a document's embedded payload fields, in the collection's order."""
    out: list[str] = []
    if payload is None:
        return out
    for name in spec.embed_fields:
        value = payload.fields.get(name)
        if value is None:
            continue
        if value.WhichOneof("kind") != "string_value":
            raise InvalidArgument(f"document {doc_id!r}: field {name!r} is embedded by collection {spec.name!r}, "
                                  f"so it must be a string, not {value.WhichOneof('kind')}")
        if value.string_value.strip():
            out.append(value.string_value)
    return out


def entries_of(vectors: np.ndarray, owners: Sequence[int], n_ids: int) -> tuple[np.ndarray, list[int]]:
    """Precomputed rows with the document each belongs to, a document's rows side by side, every id covered."""
    if not owners:
        if vectors.shape[0] != n_ids:
            raise InvalidArgument(f"{n_ids} ids but {vectors.shape[0]} vectors; give one per id, or vector_owners "
                                  "saying which id each row belongs to")
        return vectors, list(range(n_ids))
    if len(owners) != vectors.shape[0]:
        raise InvalidArgument(f"{vectors.shape[0]} vectors but {len(owners)} vector_owners; give one per row")
    owner = np.asarray(owners, dtype=np.int64)
    bad = np.flatnonzero(owner >= n_ids)
    if bad.size:
        raise InvalidArgument(f"vector_owners[{int(bad[0])}] is {int(owner[bad[0]])}, but there are only {n_ids} "
                              "ids (it is a position in ids)")
    counts = np.bincount(owner, minlength=n_ids)
    if not counts.all():
        raise InvalidArgument(f"document at position {int(np.flatnonzero(counts == 0)[0])} has no vector "
                              "(every id needs at least one row in vector_owners)")
    order = np.argsort(owner, kind="stable")
    return vectors[order], owner[order].tolist()
