"""The coordinator's domain logic: collections, routed writes, fanned-out reads, merged results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coordinator.catalog import Catalog, CollectionSpec, valid_name
from coordinator.deadline import time_left
from coordinator.fanout import ShardPool
from coordinator.merge import column_starts, merge_top_k_rows
from coordinator.metrics import CoordinatorMetrics
from coordinator.payload_check import check_payloads
from coordinator.query_bind import RANKING_NAMES, VECTOR, BoundQuery, bind_query
from coordinator.query_exec import QueryRunner, weights_of
from coordinator.query_parser import parse_query
from coordinator.query_text import TextEmbedder, embed_near_texts
from coordinator.replicas import Replicator
from coordinator.router import group_by_shard
from coordinator.scheduler import CompactionScheduler
from coordinator.settings import MAX_DIM, MAX_ID_BYTES, MAX_REPLICATION, MAX_SHARDS, CoordinatorSettings
from coordinator.shards import ShardPlacer
from protos import common_pb2, query_pb2, shard_pb2
from protos.errors import InvalidArgument, Unavailable
from protos.query_tree import depth as tree_depth
from protos.wire import METRICS, check_vectors, pack_matrix
from shard_node.client import LocalHits, ShardClient
from shard_node.planner import EXACT
from shard_node.schema import check_schema, check_schema_change
from shard_node.settings import MAX_M


@dataclass
class Hit:
    """One merged search result."""

    id: str
    score: float
    distance: float
    payload: common_pb2.Payload | None


@dataclass
class ShardStatus:
    """A shard replica's address and figures (or why it did not answer), for DescribeCollection."""

    index: int
    replica: int
    address: str
    stats: shard_pb2.ShardStats | None
    error: str = ""


@dataclass
class SearchAnswer:
    """Every query's merged hits, and the shards a partial answer left out."""

    results: list[list[Hit]]
    missing_shards: list[int]


def score_of(metric: str, distances: np.ndarray) -> np.ndarray:
    """User-facing score: similarity for cosine/ip (higher is better), squared distance for l2."""
    return distances if metric == "l2" else 1.0 - distances


def check_k_ef(k: int, ef: int, settings: CoordinatorSettings) -> None:
    """Refuse k and ef outside 1..max_k and 1..max_ef (ef 0 means the collection's default)."""
    if not 1 <= k <= settings.max_k:
        raise InvalidArgument(f"k must be between 1 and {settings.max_k} (coordinator setting max_k), got {k}")
    if ef and not 1 <= ef <= settings.max_ef:
        raise InvalidArgument(f"ef must be between 1 and {settings.max_ef} (coordinator setting max_ef), or 0 for "
                              f"the collection's default, got {ef}")


def check_batch(n: int, what: str, max_batch: int) -> None:
    """Refuse more than max_batch ids, vectors, texts or queries in one request."""
    if n > max_batch:
        raise InvalidArgument(f"{n} {what} in one request; the limit is {max_batch} (coordinator setting "
                              f"max_batch): split the batch")


def check_ids(ids: Sequence[str], max_batch: int) -> None:
    """Refuse empty, oversized or repeated ids and oversized batches."""
    check_batch(len(ids), "ids", max_batch)
    seen: set[str] = set()
    for pos, doc_id in enumerate(ids):
        if not doc_id:
            raise InvalidArgument(f"id at position {pos} is empty; ids must be non-empty strings")
        if len(doc_id.encode("utf-8")) > MAX_ID_BYTES:
            raise InvalidArgument(f"id at position {pos} is longer than {MAX_ID_BYTES} bytes")
        if doc_id in seen:
            raise InvalidArgument(f"id {doc_id!r} appears more than once in the request")
        seen.add(doc_id)


def check_query_depth(tree: query_pb2.QueryNode, max_depth: int) -> None:
    """Refuse a query tree whose AND/OR/NOT nest deeper than the coordinator's max_query_depth."""
    found = tree_depth(tree, max_depth)
    if found > max_depth:
        raise InvalidArgument(f"the query nests AND/OR/NOT more than {max_depth} levels deep (at least {found}); "
                              f"the limit is the coordinator setting max_query_depth")


class Engine:
    """Everything the public API does, on plain values."""

    def __init__(self, settings: CoordinatorSettings, placer: ShardPlacer, replicator: Replicator,
                 scheduler: CompactionScheduler, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self._placer = placer
        self._replicas = replicator
        self._pool = replicator.pool
        self._scheduler = scheduler
        self._queries = QueryRunner(replicator, settings.shard_timeout_s)

    @staticmethod
    def wire(settings: CoordinatorSettings, placer: ShardPlacer, pool: ShardPool,
             metrics: CoordinatorMetrics) -> Engine:
        """An engine with its replicator and compaction scheduler."""
        catalog = Catalog(Path(settings.data_dir))
        replicator = Replicator(pool, settings, metrics)
        return Engine(settings, placer, replicator, CompactionScheduler(catalog, replicator, settings, metrics),
                      catalog)

    async def start(self) -> None:
        """Stop orphaned shard actors, then bring up those of every catalogued collection (they recover from disk)."""
        specs = self.catalog.all()
        await asyncio.to_thread(self._placer.reap_orphans, specs)
        placed = await asyncio.gather(*(asyncio.to_thread(self._placer.ensure, s) for s in specs))
        for spec, where in zip(specs, placed, strict=True):
            self._pool.located(spec, where)
        self._scheduler_task = asyncio.get_running_loop().create_task(self._scheduler.run())

    async def stop(self) -> None:
        """Stop the scheduler (shards finish running rebuilds on their own)."""
        task = getattr(self, "_scheduler_task", None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._scheduler.stop()

    # ---- collections ---------------------------------------------------------------------
    async def create_collection(self, name: str, dim: int, metric: str, shards: int, m: int,
                                ef_construction: int, ef_search: int, tombstone_threshold: float = 0.0,
                                replication_factor: int = 0, fields: dict[str, str] | None = None,
                                **binding: str | int) -> CollectionSpec:
        """Create a collection and start its shard actors (binding: model fields of CollectionSpec)."""
        s = self.settings
        if not valid_name(name):
            raise InvalidArgument(f"collection name {name!r} is not valid: use 1-128 letters, digits, "
                                  "'_', '.' or '-', not starting with '.' or '-'")
        if not 1 <= dim <= MAX_DIM:
            raise InvalidArgument(f"dim must be between 1 and {MAX_DIM}, got {dim}")
        metric = metric or "cosine"
        if metric not in METRICS:
            raise InvalidArgument(f"metric {metric!r} is unknown; use one of {', '.join(METRICS)}")
        shards = shards or s.default_shards
        if not 1 <= shards <= MAX_SHARDS:
            raise InvalidArgument(f"shards must be between 1 and {MAX_SHARDS}, got {shards}")
        m = m or s.hnsw_m
        ef_construction = ef_construction or s.hnsw_ef_construction
        ef_search = ef_search or s.hnsw_ef_search
        if not 2 <= m <= MAX_M:
            raise InvalidArgument(f"hnsw m must be between 2 and {MAX_M}, got {m}")
        if not 1 <= ef_search <= s.max_ef or not 1 <= ef_construction <= s.max_ef:
            raise InvalidArgument(f"ef_search and ef_construction must be between 1 and {s.max_ef}")
        tombstone_threshold = tombstone_threshold or s.default_tombstone_threshold
        if not 0.0 < tombstone_threshold <= 1.0:
            raise InvalidArgument(f"tombstone_threshold must be in (0, 1] (or 0 for the default "
                                  f"{s.default_tombstone_threshold}), got {tombstone_threshold}")
        replication_factor = replication_factor or 1
        if not 1 <= replication_factor <= MAX_REPLICATION:
            raise InvalidArgument(f"replication_factor must be between 1 and {MAX_REPLICATION}, "
                                  f"got {replication_factor}")
        existing = {spec.name: spec.fields for spec in self.catalog.all()}.get(name)
        # Re-creating an existing collection with a field's type or tokenizer changed is a bad schema, not a clash.
        problem = (check_schema(dict(fields or {})) if existing is None
                   else check_schema_change(existing, dict(fields or {})))
        if problem:
            raise InvalidArgument(problem)
        spec = CollectionSpec.new(name, dim, metric, shards, m, ef_construction, ef_search, fields=dict(fields or {}),
                                  tombstone_threshold=tombstone_threshold, replication_factor=replication_factor,
                                  **binding)
        self.catalog.add(spec)
        try:
            self._pool.located(spec, await asyncio.to_thread(self._placer.ensure, spec))
        except BaseException:
            self.catalog.remove(name)
            await asyncio.to_thread(self._placer.drop, spec)
            raise
        return spec

    async def drop_collection(self, name: str) -> None:
        """Remove a collection, its shard actors and its data."""
        spec = self.catalog.remove(name)
        await self._pool.forget(spec)
        await asyncio.to_thread(self._placer.drop, spec)

    def list_collections(self) -> list[CollectionSpec]:
        """Every collection."""
        return self.catalog.all()

    async def describe(self, name: str, allow_partial: bool = False) -> tuple[CollectionSpec, list[ShardStatus]]:
        """A collection's spec and every shard replica's figures.

        Without allow_partial a replica that stays down fails the call; with it, it is listed as unavailable."""
        spec = self.catalog.get(name)
        timeout = time_left(self.settings.shard_timeout_s)

        async def stats(i: int, c: ShardClient) -> ShardStatus:
            return ShardStatus(i, 0, c.address, await c.stats(timeout))

        out = []
        for a in await self._replicas.each_replica(spec, stats, "Stats", allow_partial):
            if a.error is not None and not allow_partial:
                raise a.error
            status = a.result or ShardStatus(a.index, a.replica, "", None, str(a.error))
            status.replica = a.replica
            out.append(status)
        return spec, out

    async def count(self, name: str) -> int:
        """Live documents in a collection (one replica of each shard; a chunked document counts once)."""
        spec = self.catalog.get(name)
        timeout = time_left(self.settings.shard_timeout_s)

        async def live(i: int, c: ShardClient) -> int:
            return (await c.stats(timeout)).documents

        counts, _ = await self._replicas.read(spec, range(spec.shards), live, "Stats")
        return sum(c or 0 for c in counts)

    async def compact(self, name: str, shards: Sequence[int], m: int, ef_construction: int, wait: bool
                      ) -> tuple[list[int], list[ShardStatus]]:
        """Rebuild the index of a collection's shards (all when none are listed), through the scheduler."""
        spec = self.catalog.get(name)
        bad = [i for i in shards if i >= spec.shards]
        if bad:
            raise InvalidArgument(f"collection {name!r} has shards 0..{spec.shards - 1}; there is no shard {bad[0]}")
        if m and not 2 <= m <= MAX_M:
            raise InvalidArgument(f"hnsw m must be between 2 and {MAX_M}, got {m}")
        if ef_construction and not 1 <= ef_construction <= self.settings.max_ef:
            raise InvalidArgument(f"ef_construction must be between 1 and {self.settings.max_ef}")
        indices = sorted(set(shards)) if shards else list(range(spec.shards))
        if (m and m != spec.m) or (ef_construction and ef_construction != spec.ef_construction):
            spec = self.catalog.update(name, m=m or spec.m, ef_construction=ef_construction or spec.ef_construction)
        jobs = self._scheduler.request(spec, indices, m, ef_construction)
        if wait:
            await asyncio.gather(*(j.done for j in jobs))
        _, status = await self.describe(name, allow_partial=True)
        return indices, [s for s in status if s.index in indices]

    # ---- writes --------------------------------------------------------------------------
    async def upsert(self, name: str, ids: Sequence[str], vectors: np.ndarray,
                     payloads: Sequence[common_pb2.Payload]) -> int:
        """Validate the whole batch, then write each shard's part durably."""
        spec = self.catalog.get(name)
        check_ids(ids, self.settings.max_batch)
        if len(ids) == 0:
            raise InvalidArgument("upsert needs at least one id")
        if vectors.shape[0] != len(ids):
            raise InvalidArgument(f"{len(ids)} ids but {vectors.shape[0]} vectors; give one vector per id")
        if payloads and len(payloads) != len(ids):
            raise InvalidArgument(f"{len(ids)} ids but {len(payloads)} payloads; give none or one per id")
        check_vectors(vectors, spec.dim, "vector", spec.metric)
        if payloads:
            check_payloads(spec.fields, ids, payloads)
        groups = group_by_shard(ids, spec.shards)
        timeout = time_left(self.settings.shard_timeout_s)

        async def write(i: int, c: ShardClient) -> int:
            rows = groups[i]
            part_payloads = [payloads[r] for r in rows] if payloads else []
            return await c.upsert([ids[r] for r in rows], pack_matrix(vectors[rows]), part_payloads, timeout)

        return sum(await self._replicas.write(spec, sorted(groups), write, "Upsert"))

    async def delete(self, name: str, ids: Sequence[str]) -> int:
        """Delete documents by id; returns how many existed."""
        spec = self.catalog.get(name)
        check_ids(ids, self.settings.max_batch)
        groups = group_by_shard(ids, spec.shards)
        timeout = time_left(self.settings.shard_timeout_s)

        async def remove(i: int, c: ShardClient) -> int:
            return await c.delete([ids[r] for r in groups[i]], timeout)

        return sum(await self._replicas.write(spec, sorted(groups), remove, "Delete"))

    # ---- reads ---------------------------------------------------------------------------
    async def get(self, name: str, ids: Sequence[str], with_vectors: bool) -> list[common_pb2.Document]:
        """Stored documents among ids, in the order asked."""
        spec = self.catalog.get(name)
        check_ids(ids, self.settings.max_batch)
        groups = group_by_shard(ids, spec.shards)
        timeout = time_left(self.settings.shard_timeout_s)

        async def fetch(i: int, c: ShardClient) -> Sequence[common_pb2.Document]:
            return await c.get([ids[r] for r in groups[i]], with_vectors, timeout)

        answers, _ = await self._replicas.read(spec, sorted(groups), fetch, "Get")
        found = {d.id: d for docs in answers if docs is not None for d in docs}
        return [found[i] for i in ids if i in found]

    async def search(self, name: str, queries: np.ndarray, k: int, ef: int, with_payload: bool,
                     allow_partial: bool = False) -> SearchAnswer:
        """Global top-k of every query row: each shard's local top-k, merged (from the shards that answered,
        when the request allows a partial answer)."""
        spec = self.catalog.get(name)
        s = self.settings
        check_k_ef(k, ef, s)
        if queries.shape[0] == 0:
            raise InvalidArgument("search needs at least one query vector")
        check_batch(queries.shape[0], "queries", s.max_batch)
        check_vectors(queries, spec.dim, "query vector", spec.metric)
        packed = pack_matrix(queries)
        timeout = time_left(s.shard_timeout_s)

        async def local(i: int, c: ShardClient) -> LocalHits:
            return await c.search(packed, k, ef, with_payload, timeout)

        answers, missing = await self._replicas.read(spec, range(spec.shards), local, "Search", allow_partial)
        per_shard = [a for a in answers if a is not None]
        if not per_shard:
            raise Unavailable(f"no shard of collection {name!r} is available")
        ids = np.concatenate([p.ids for p in per_shard], axis=1)
        dists = np.concatenate([p.distances for p in per_shard], axis=1)
        scores = score_of(spec.metric, dists)
        widths = [p.ids.shape[1] for p in per_shard]
        starts = column_starts(widths)
        out: list[list[Hit]] = []
        winners = merge_top_k_rows(ids, dists, widths, k)
        for q, cols in enumerate(winners):
            if with_payload:
                shard = np.searchsorted(starts, cols, side="right") - 1
                flat = q * np.asarray(widths)[shard] + (cols - starts[shard])
                payloads = [per_shard[s_].payloads[f] for s_, f in zip(shard.tolist(), flat.tolist(), strict=True)]
            else:
                payloads = [None] * len(cols)
            out.append([Hit(i, s_, d, p) for i, s_, d, p in zip(ids[q, cols].tolist(), scores[q, cols].tolist(),
                                                                dists[q, cols].tolist(), payloads, strict=True)])
        return SearchAnswer(out, missing)

    async def query(self, name: str, vectors: np.ndarray, k: int, ef: int, with_payload: bool, *,
                    filter_text: str = "", filter_tree: query_pb2.QueryNode | None = None, query_text: str = "",
                    query_tree: query_pb2.Query | None = None, ranking: int = 0, vector_weight: float = 0.0,
                    text_weight: float = 0.0, explain: bool = False, strategy: str = "",
                    embed: TextEmbedder | None = None) -> tuple[list[list[Hit]], list[query_pb2.QueryPlan]]:
        """Filtered, full-text or hybrid search: per query vector (or once, with none), hits and the plan."""
        spec = self.catalog.get(name)
        s = self.settings
        check_k_ef(k, ef, s)
        if vector_weight < 0 or text_weight < 0:
            raise InvalidArgument("RRF weights must not be negative")
        if sum(bool(x) for x in (filter_text, filter_tree, query_text, query_tree)) > 1:
            raise InvalidArgument("give one of filter, filter_tree, query or query_tree")
        where = filter_tree
        if query_tree is not None:
            where, ranking = query_tree.where, ranking or query_tree.ranking
            vector_weight = vector_weight or query_tree.vector_weight
            text_weight = text_weight or query_tree.text_weight
        if filter_text or query_text:
            where = parse_query(filter_text or query_text, s.max_query_depth)
        if where is not None:
            check_query_depth(where, s.max_query_depth)
        if where is not None and embed is not None:
            where = await embed_near_texts(where, embed)
        if filter_text or filter_tree is not None:
            if vectors.shape[0] == 0:
                raise InvalidArgument("a filter restricts a vector search: give a query vector, or use `query`")
        elif vectors.shape[0] > 1:
            raise InvalidArgument("a whole query takes at most one query vector")
        check_batch(vectors.shape[0], "queries", s.max_batch)
        rows = list(vectors) if vectors.shape[0] else [None]
        bound = [bind_query(spec, where, row, RANKING_NAMES.get(ranking, "")) for row in rows]

        async def top_search(vector: np.ndarray, top: int) -> list[str]:
            # Each shard's exact top-K' holds the global top-K': the exclusion set is exact, not approximate.
            if not 1 <= top <= s.max_k:
                raise InvalidArgument(f"@top:{top} is out of range: 1 to {s.max_k} (coordinator setting max_k)")
            hits, _ = await self._queries.run(spec, BoundQuery(None, vector, None, VECTOR), top, 0, False, False,
                                              top_search, strategy=EXACT)
            return [h[0] for h in hits]

        runs = await asyncio.gather(*(
            self._queries.run(spec, b, k, ef, with_payload, explain, top_search,
                              weights_of(vector_weight, text_weight), strategy) for b in bound))
        results = [[Hit(i, sc, d, p) for i, sc, d, p in hits] for hits, _ in runs]
        return results, [plan for _, plan in runs] if explain else []
