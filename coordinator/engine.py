"""The coordinator's domain logic: collections, routed writes, fanned-out reads, merged results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coordinator import backup
from coordinator.catalog import Catalog, CollectionSpec, default_write_consistency, valid_name
from coordinator.coalesce import Coalescer
from coordinator.deadline import time_left
from coordinator.entry_calibration import CALIBRATION_FETCH, calibrate
from coordinator.fanout import ShardPool
from coordinator.fusion import rrf
from coordinator.grouping import Hit, group_hits
from coordinator.hit_columns import HitColumns
from coordinator.metrics import CoordinatorMetrics
from coordinator.negation import resolve_rank_sets, split_rank_nots
from coordinator.payload_check import check_payloads
from coordinator.placement import load_of, place
from coordinator.query_bind import BM25, HYBRID, RANKING_NAMES, VECTOR, bind_query
from coordinator.query_parser import parse_query
from coordinator.query_text import TextEmbedder, embed_near_texts
from coordinator.read_path import ReadPath, ReadRequest, ReadResult
from coordinator.repair import RepairLoop
from coordinator.replicas import Replicator
from coordinator.router import group_by_shard
from coordinator.scheduler import CompactionScheduler
from coordinator.settings import (
    MAX_DEADLINE_S,
    MAX_DIM,
    MAX_ID_BYTES,
    MAX_REPLICATION,
    MAX_SHARDS,
    CoordinatorSettings,
)
from coordinator.shards import ShardPlacer, replicas_of
from protos import common_pb2, query_pb2, shard_pb2
from protos import query_tree as q
from protos.errors import FailedPrecondition, InvalidArgument, ShoalError
from protos.query_tree import depth as tree_depth
from protos.wire import METRICS, check_vectors, pack_matrix
from shard_node.client import ShardClient
from shard_node.planner import EXACT
from shard_node.schema import check_schema, check_schema_change
from shard_node.settings import HYBRID_DEPTH, MAX_M, MAX_OVERSAMPLE
from shard_node.storage import DEFAULT_STORAGE, check_storage


@dataclass
class ShardStatus:
    """A shard replica's address and figures (or why it did not answer), for DescribeCollection."""

    index: int
    replica: int
    address: str
    stats: shard_pb2.ShardStats | None
    error: str = ""
    up_to_date: bool = False


@dataclass
class SearchAnswer:
    """Every query's merged hits, the shards a partial answer left out, and (explain) each query's plan."""

    columns: list[HitColumns]
    missing_shards: list[int]
    plans: list[query_pb2.QueryPlan] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)  # sizes of the rank-form NOT sets resolved in the round

    @property
    def results(self) -> list[list[Hit]]:
        """Every query's hits as per-hit objects."""
        return [c.hits() for c in self.columns]


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


def check_write_consistency(w: int, replication_factor: int) -> int:
    """Refuse a write consistency outside 1..replication_factor."""
    rf = max(replication_factor, 1)
    if not 1 <= w <= rf:
        raise InvalidArgument(f"write_consistency_factor must be between 1 and the replication factor ({rf}), got {w}")
    return w


log = logging.getLogger("shoal.coordinator.engine")


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
        self._reads = Coalescer(ReadPath(replicator, settings, replicator.metrics).run, settings.coalesce_in_flight,
                                settings.max_batch, replicator.metrics.coalesced_reads.inc)
        self._repair = RepairLoop(catalog, replicator, settings, replicator.metrics)
        self._background: list[asyncio.Task[None]] = []
        self._nodes = 1  # shard nodes running; set by start()

    @staticmethod
    def wire(settings: CoordinatorSettings, placer: ShardPlacer, pool: ShardPool,
             metrics: CoordinatorMetrics) -> Engine:
        """An engine with its replicator and compaction scheduler."""
        catalog = Catalog(Path(settings.data_dir))
        replicator = Replicator(pool, settings, metrics)
        return Engine(settings, placer, replicator, CompactionScheduler(catalog, replicator, settings, metrics),
                      catalog)

    async def start(self) -> None:
        """Bring up the shard nodes (each reopens its partitions from disk), place collections catalogued before
        shard nodes existed, make sure every catalogued partition is open and close those of unknown collections."""
        await asyncio.to_thread(self._placer.reap_legacy)
        specs = self.catalog.all()
        used = [n for s in specs for replicas in s.placement for n in replicas]
        self._nodes = max(await asyncio.to_thread(self._placer.node_count), max(used, default=-1) + 1)
        self._pool.nodes_located(await asyncio.to_thread(self._placer.ensure, self._nodes))
        load = load_of((s.placement for s in specs), self._nodes)
        for spec in specs:
            if not spec.placement:
                self.catalog.update(spec.name, placement=place(spec.shards, max(spec.replication_factor, 1),
                                                                self._nodes, load, self._pool.machines(self._nodes)))
        specs = self.catalog.all()
        await asyncio.gather(*(self._open_partitions(s) for s in specs))
        await self._close_orphans(specs)
        loop = asyncio.get_running_loop()
        self._background = [loop.create_task(self._scheduler.run())]
        if self.settings.repair_interval_s > 0:
            self._background.append(loop.create_task(self._repair.run()))
        timeout = self.settings.probe_timeout_s

        def probe(node: int) -> Awaitable[list[str]]:
            return self._pool.call_node(node, lambda c: c.partitions(timeout), "ListPartitions", patience=0)

        self._background.append(loop.create_task(
            self._replicas.breaker.run(probe, self.settings.probe_interval_s, timeout)))

    def _partition_calls(self, spec: CollectionSpec) -> list[tuple[int, int]]:
        return [(i, r) for i in range(spec.shards) for r in replicas_of(spec)]

    def _open_request(self, spec: CollectionSpec, i: int, r: int) -> shard_pb2.OpenPartitionRequest:
        spec_json = json.dumps(self._placer.partition_spec(spec).to_dict())
        return shard_pb2.OpenPartitionRequest(partition=spec.partition_key(i, r), collection=spec.name, shard=i,
                                              replica=r, spec_json=spec_json,
                                              data_dir=self._placer.data_dir(spec, i, r))

    async def _open_partitions(self, spec: CollectionSpec) -> None:
        """Make every shard replica's node host it (idempotent)."""
        timeout = time_left(self.settings.shard_timeout_s)

        async def open_one(i: int, r: int) -> None:
            req = self._open_request(spec, i, r)
            await self._pool.call_node(spec.node_of(i, r), lambda c: c.open_partition(req, timeout), "OpenPartition")

        await asyncio.gather(*(open_one(i, r) for i, r in self._partition_calls(spec)))

    async def _close_partitions(self, spec: CollectionSpec, delete_data: bool) -> None:
        timeout = time_left(self.settings.shard_timeout_s)

        async def close_one(i: int, r: int) -> None:
            key = spec.partition_key(i, r)
            await self._pool.call_node(spec.node_of(i, r), lambda c: c.close_partition(key, delete_data, timeout),
                                       "ClosePartition")

        await asyncio.gather(*(close_one(i, r) for i, r in self._partition_calls(spec)))

    async def _close_orphans(self, specs: list[CollectionSpec]) -> list[str]:
        """Close partitions of collections the catalogue no longer has (a crash between the two); keep their data."""
        wanted = {s.partition_key(i, r) for s in specs for i, r in self._partition_calls(s)}
        timeout = time_left(self.settings.shard_timeout_s)
        closed = []
        for node in range(self._nodes):
            keys = await self._pool.call_node(node, lambda c: c.partitions(timeout), "ListPartitions")
            for key in (k for k in keys if k not in wanted):
                await self._pool.call_node(node, lambda c, k=key: c.close_partition(k, False, timeout),
                                           "ClosePartition")
                log.warning("closed partition %s on shard node %d: its collection is not in the catalogue "
                            "(data left on disk)", key, node)
                closed.append(key)
        return closed

    async def stop(self) -> None:
        """Stop the scheduler, the repair loop and the probes (shards finish running rebuilds on their own)."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._scheduler.stop()

    # ---- collections ---------------------------------------------------------------------
    async def create_collection(self, name: str, dim: int, metric: str, shards: int, m: int,
                                ef_construction: int, ef_search: int, tombstone_threshold: float = 0.0,
                                replication_factor: int = 0, fields: dict[str, str] | None = None,
                                write_consistency: int | None = None, storage: str = "",
                                opener: Callable[[CollectionSpec], Awaitable[None]] | None = None,
                                **binding: str | int) -> CollectionSpec:
        """Create a collection and place its partitions on shard nodes (binding: model fields of CollectionSpec;
        opener: what fills the new partitions, by default nothing: they open empty)."""
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
        write_consistency = (default_write_consistency(replication_factor) if write_consistency is None
                             else check_write_consistency(write_consistency, replication_factor))
        storage = storage or DEFAULT_STORAGE
        problem = check_storage(storage)
        if problem:
            raise InvalidArgument(problem)
        existing = {spec.name: spec.fields for spec in self.catalog.all()}.get(name)
        # Re-creating an existing collection with a field's type or tokenizer changed is a bad schema, not a clash.
        problem = (check_schema(dict(fields or {})) if existing is None
                   else check_schema_change(existing, dict(fields or {})))
        if problem:
            raise InvalidArgument(problem)
        placement = place(shards, replication_factor, self._nodes,
                          load_of((c.placement for c in self.catalog.all()), self._nodes),
                          self._pool.machines(self._nodes))
        spec = CollectionSpec.new(name, dim, metric, shards, m, ef_construction, ef_search, fields=dict(fields or {}),
                                  tombstone_threshold=tombstone_threshold, replication_factor=replication_factor,
                                  placement=placement, write_consistency=write_consistency, storage=storage,
                                  **binding)
        self.catalog.add(spec)
        try:
            await (opener or self._open_partitions)(spec)
        except BaseException:
            self.catalog.remove(name)
            with contextlib.suppress(ShoalError):
                await self._close_partitions(spec, delete_data=True)
            raise
        return spec

    def update_collection(self, name: str, write_consistency: int | None = None) -> CollectionSpec:
        """Change what may change after creation (None keeps it); the next write uses it."""
        spec = self.catalog.get(name)
        if write_consistency is None:
            return spec
        return self.catalog.update(name, write_consistency=check_write_consistency(write_consistency,
                                                                                   spec.replication_factor))

    async def drop_collection(self, name: str) -> None:
        """Remove a collection, its partitions and its data."""
        spec = self.catalog.remove(name)
        await self._pool.forget(spec)
        await self._close_partitions(spec, delete_data=True)
        await asyncio.to_thread(self._placer.remove_collection_dir, spec)

    def list_collections(self) -> list[CollectionSpec]:
        """Every collection."""
        return self.catalog.all()

    async def describe(self, name: str, allow_partial: bool = False, checksums: bool = False
                       ) -> tuple[CollectionSpec, list[ShardStatus]]:
        """A collection's spec and every shard replica's figures (with checksums: content checksums too).

        Without allow_partial a replica that stays down fails the call; with it, it is listed as unavailable."""
        spec = self.catalog.get(name)
        timeout = time_left(self.settings.shard_timeout_s)

        async def stats(i: int, c: ShardClient) -> ShardStatus:
            return ShardStatus(i, 0, c.address, await c.stats(timeout, checksums))

        out = []
        for a in await self._replicas.each_replica(spec, stats, "Stats", allow_partial):
            if a.error is not None and not allow_partial:
                raise a.error
            status = a.result or ShardStatus(a.index, a.replica, "", None, str(a.error))
            status.replica = a.replica
            out.append(status)
        for s in out:
            s.up_to_date = self._replicas.up_to_date(spec, s.index, s.replica, {
                o.replica: int(o.stats.last_lsn) for o in out if o.index == s.index and o.stats is not None})
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

    # ---- backup and restore --------------------------------------------------------------
    async def snapshot(self, name: str, directory: str) -> tuple[Path, list[backup.ShardCopy], float]:
        """Back a collection up, online, into a directory on this machine: (manifest, shard copies, seconds)."""
        spec = self.catalog.get(name)
        start = time.perf_counter()
        root = await asyncio.to_thread(backup.prepare_directory, directory)
        timeout = time_left(MAX_DEADLINE_S)

        async def copy(i: int, c: ShardClient) -> backup.ShardCopy:
            return await backup.copy_shard(c, root, i, timeout)

        try:
            copies, _ = await self._replicas.read(spec, range(spec.shards), copy, "Backup")
            seconds = time.perf_counter() - start
            manifest = await asyncio.to_thread(backup.write_manifest, root, spec, copies, seconds)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, root, True)  # no half backup left to be mistaken for one
            raise
        log.info("backed up %s (%d shards, %d documents) into %s in %.1f s", name, spec.shards,
                 sum(c.documents for c in copies), root, seconds)
        return manifest, copies, seconds

    async def restore(self, directory: str, name: str = "", shards: int = 0) -> CollectionSpec:
        """Create a collection from a backup directory on this machine, after checking every file of it."""
        found = await asyncio.to_thread(backup.open_backup, directory)
        s = found.spec
        if shards and shards != s["shards"]:
            raise FailedPrecondition(f"the backup in {found.root} has {s['shards']} shards; restoring into {shards} "
                                     f"is not supported (ids are routed by shard count): restore with its own "
                                     f"count, or upsert its documents into a new collection")
        timeout = time_left(MAX_DEADLINE_S)

        async def fill(spec: CollectionSpec) -> None:
            async def restore_one(i: int, r: int) -> None:
                header = shard_pb2.BackupHeader(open=self._open_request(spec, i, r))
                stats = await self._pool.call_node(
                    spec.node_of(i, r), lambda c: c.restore_partition(found.chunks(i, header), timeout),
                    "RestorePartition")
                want = found.shards[i]
                if (stats.last_lsn, stats.documents) != (want.lsn, want.documents):
                    raise FailedPrecondition(
                        f"shard {i} replica {r} restored from {found.root} holds {stats.documents} documents at "
                        f"LSN {stats.last_lsn}; the manifest recorded {want.documents} at LSN {want.lsn}")

            await asyncio.gather(*(restore_one(i, r) for i, r in self._partition_calls(spec)))

        binding = {k: s[k] for k in ("model", "modality", "chunk_words", "chunk_overlap")}
        spec = await self.create_collection(
            name or found.name, s["dim"], s["metric"], s["shards"], s["m"], s["ef_construction"], s["ef_search"],
            s["tombstone_threshold"], s["replication_factor"], dict(s["fields"]), opener=fill, **binding)
        log.info("restored %s from %s", spec.name, found.root)
        return spec

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

        async def write(i: int, c: ShardClient, lsn: int) -> int:
            rows = groups[i]
            part_payloads = [payloads[r] for r in rows] if payloads else []
            return await c.upsert([ids[r] for r in rows], pack_matrix(vectors[rows]), part_payloads, timeout, lsn)

        return sum(await self._replicas.write(spec, sorted(groups), write, "Upsert"))

    async def delete(self, name: str, ids: Sequence[str]) -> int:
        """Delete documents by id; returns how many existed."""
        spec = self.catalog.get(name)
        check_ids(ids, self.settings.max_batch)
        groups = group_by_shard(ids, spec.shards)
        timeout = time_left(self.settings.shard_timeout_s)

        async def remove(i: int, c: ShardClient, lsn: int) -> int:
            return await c.delete([ids[r] for r in groups[i]], timeout, lsn)

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
                     allow_partial: bool = False, explain: bool = False, oversample: int = 0) -> SearchAnswer:
        """Global top-k of every query row (documents, for a chunked collection), from the shards that answered
        when the request allows a partial answer."""
        spec = self.catalog.get(name)
        s = self.settings
        check_k_ef(k, ef, s)
        if queries.shape[0] == 0:
            raise InvalidArgument("search needs at least one query vector")
        check_batch(queries.shape[0], "queries", s.max_batch)
        check_vectors(queries, spec.dim, "query vector", spec.metric)
        if oversample > MAX_OVERSAMPLE:
            raise InvalidArgument(f"oversample must be between 0 (the default) and {MAX_OVERSAMPLE}, got {oversample}")
        req = ReadRequest(np.ascontiguousarray(queries, dtype=np.float32), k, ef, with_payload, explain,
                          oversample=oversample)
        return await self._read(spec, req, VECTOR, (1.0, 1.0), allow_partial)

    async def _read(self, spec: CollectionSpec, req: ReadRequest, ranking: str, weights: tuple[float, float],
                    allow_partial: bool, resolved: Sequence[query_pb2.ClauseFigures] = ()) -> SearchAnswer:
        """The one read: the nodes' merged columns ranked, chunk entries grouped into documents (asking for
        more entries until every query has k documents or the collection runs out), plans when explained."""
        start = time.perf_counter()
        k, max_k = req.k, self.settings.max_k
        grouped = bool(spec.model)
        calibrated = calibrates(spec, ranking)
        depth = max(k, HYBRID_DEPTH) if ranking == HYBRID else k
        fetch = min(2 * depth, max_k) if grouped else depth + req.extra
        if calibrated:  # both kinds of entry must reach the calibration depth, whichever the query favours
            fetch = min(max(fetch, CALIBRATION_FETCH), max_k)
        while True:
            req.k = fetch
            result = await self._reads.run(spec, req, allow_partial)
            t_group = time.perf_counter()
            if ranking == VECTOR and not grouped:  # the hot path: node columns straight to reply columns
                columns = _vector_columns(spec, result, k, req.with_payload)
                break
            rows = self._ranked(spec, result, ranking, weights, depth if ranking == HYBRID else fetch)
            if calibrated:
                rows = [calibrate(r) for r in rows]
            t_group = time.perf_counter()
            hits = [group_hits(r, k) for r in rows] if grouped else [r[:k] for r in rows]
            exhausted = all(len(r) < fetch for r in rows) and len(result.text_ids) < fetch
            if not grouped or exhausted or fetch == max_k or all(len(h) == k for h in hits):
                columns = [HitColumns.of(row, req.with_payload) for row in hits]
                break
            fetch = min(fetch * 4, max_k)
        req.k = k
        plans = []
        if req.explain:
            stages = dict(result.stage_ms)
            stages["group"] = (time.perf_counter() - t_group) * 1000.0
            plan = query_pb2.QueryPlan(ranking=ranking, shards=result.plans, nodes=result.nodes, resolved=resolved,
                                       tree=q.render(req.filter) if req.filter is not None else "",
                                       latency_ms=(time.perf_counter() - start) * 1000.0)
            plan.stage_ms.update(stages)
            plans = [plan] * len(columns)
        return SearchAnswer(columns, result.missing_shards, plans, result.excluded)

    @staticmethod
    def _ranked(spec: CollectionSpec, result: ReadResult, ranking: str, weights: tuple[float, float], depth: int
                ) -> list[list[Hit]]:
        """Hits of every query under its ranking, best first (payloads attached; grouping is the caller's)."""
        def payload(i: str) -> common_pb2.Payload | None:
            return result.payloads.get(i)

        by_vector = []
        for row_ids, row_d in zip(result.ids, result.distances, strict=True):
            n = int(np.isfinite(row_d).sum())
            ids = row_ids[:n].tolist()
            d = row_d[:n]
            by_vector.append([Hit(i, sc, di, payload(i)) for i, sc, di in zip(
                ids, score_of(spec.metric, d).tolist(), d.tolist(), strict=True)])
        if ranking == VECTOR:
            return by_vector
        by_text = [Hit(i, sc, -sc, payload(i)) for i, sc in zip(result.text_ids, result.text_scores.tolist(),
                                                                 strict=True)]
        if ranking == BM25:
            return [by_text]
        fused = rrf([[h.id for h in by_vector[0]] if by_vector else [], [h.id for h in by_text]], weights, depth)
        return [[Hit(i, sc, -sc, payload(i)) for i, sc in fused]]

    async def query(self, name: str, vectors: np.ndarray, k: int, ef: int, with_payload: bool, *,
                    filter_text: str = "", filter_tree: query_pb2.QueryNode | None = None, query_text: str = "",
                    query_tree: query_pb2.Query | None = None, ranking: int = 0, vector_weight: float = 0.0,
                    text_weight: float = 0.0, explain: bool = False, strategy: str = "",
                    embed: TextEmbedder | None = None, allow_partial: bool = False) -> SearchAnswer:
        """Filtered, full-text or hybrid search: hits per query vector (or once, with none), and the plans."""
        t0 = time.perf_counter()
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
        t_parse = time.perf_counter()
        if where is not None and embed is not None:
            where = await embed_near_texts(where, embed)
        t_embed = time.perf_counter()
        if filter_text or filter_tree is not None:
            if vectors.shape[0] == 0:
                raise InvalidArgument("a filter restricts a vector search: give a query vector, or use `query`")
        elif vectors.shape[0] > 1:
            raise InvalidArgument("a whole query takes at most one query vector")
        check_batch(vectors.shape[0], "queries", s.max_batch)
        rows = list(vectors) if vectors.shape[0] else [None]
        # The filter does not depend on the row: bind once, search every row in one request.
        bound = [bind_query(spec, where, row, RANKING_NAMES.get(ranking, "")) for row in rows]
        first = bound[0]

        async def top_search(vector: np.ndarray, top: int) -> list[str]:
            # Each shard's exact top-K' holds the global top-K': the exclusion set is exact, not approximate.
            if not 1 <= top <= s.max_k:
                raise InvalidArgument(f"@top:{top} is out of range: 1 to {s.max_k} (coordinator setting max_k)")
            exact = ReadRequest(vector.reshape(1, -1).astype(np.float32), top, strategy=EXACT)
            answer = await self._read(spec, exact, VECTOR, (1.0, 1.0), False)
            return list(answer.columns[0].ids)

        flt = None
        resolved: list[query_pb2.ClauseFigures] = []
        exclude: list[query_pb2.Near] = []
        if first.filter is not None:
            flt = query_pb2.QueryNode()
            flt.CopyFrom(first.filter)
            if not spec.model:  # chunked collections exclude whole documents: their sets take two rounds
                flt, exclude = split_rank_nots(flt)
            if flt is not None:
                resolved = [query_pb2.ClauseFigures(clause=text, estimated=size, actual=size)
                            for text, size in await resolve_rank_sets(flt, top_search)]
        t_resolve = time.perf_counter()
        ranking_vectors = [b.vector for b in bound if b.vector is not None]
        queries = np.stack(ranking_vectors).astype(np.float32) if ranking_vectors else np.empty((0, spec.dim),
                                                                                              np.float32)
        req = ReadRequest(queries, k, ef, with_payload, explain, flt, first.match, strategy, exclude,
                          extra=sum(int(n.top) for n in exclude))
        answer = await self._read(spec, req, first.ranking, weights_of(vector_weight, text_weight), allow_partial,
                                  resolved)
        for plan in answer.plans[:1]:
            plan.stage_ms.update({"parse": (t_parse - t0) * 1000.0, "embed": (t_embed - t_parse) * 1000.0,
                                  "resolve": (t_resolve - t_embed) * 1000.0})
            if exclude:
                plan.not_path = "one round"
                plan.resolved.extend(query_pb2.ClauseFigures(clause=q.render(q.not_(query_pb2.QueryNode(near=n))),
                                                             estimated=int(n.top), actual=size)
                                     for n, size in zip(exclude, answer.excluded, strict=True))
            elif resolved:
                plan.not_path = "two rounds"
        return answer


def _vector_columns(spec: CollectionSpec, result: ReadResult, k: int, with_payload: bool) -> list[HitColumns]:
    """Every query's first k merged entries (padding and excluded ids are +inf, sorted last) as columns."""
    out = []
    for row_ids, row_d in zip(result.ids, result.distances, strict=True):
        n = min(int(np.isfinite(row_d).sum()), k)
        ids = row_ids[:n].tolist()
        d = row_d[:n]
        out.append(HitColumns(ids, score_of(spec.metric, d).astype(np.float32, copy=False), d,
                              [result.payloads.get(i) for i in ids] if with_payload else None))
    return out


def calibrates(spec: CollectionSpec, ranking: str) -> bool:
    """Whether a read calibrates further entries (entry_calibration): vector rankings by similarity of a collection
    whose documents embed payload fields besides their text."""
    return bool(spec.model and spec.embed_fields) and ranking == VECTOR and spec.metric != "l2"


def weights_of(vector_weight: float, text_weight: float) -> tuple[float, float]:
    """RRF weights, 0 meaning the default 1.0; negative weights are refused by the engine."""
    return (vector_weight or 1.0, text_weight or 1.0)
