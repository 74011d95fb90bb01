"""PostgreSQL + pgvector as a client-server peer: the `pgserver` wheel's server, an HNSW index, psycopg clients."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.concurrency import Opener
from bench.measure import batch_slices, pad_labels

TABLE = "items"
INDEX = "items_embedding_hnsw"
# The server's memory: the table (~150 MiB at 100k x 384) and its HNSW index fit in shared buffers, and the
# index build keeps the whole graph in maintenance_work_mem (pgvector builds far slower once it spills).
SERVER_SETTINGS = {"shared_buffers": "1GB", "maintenance_work_mem": "2GB", "jit": "off",
                   "max_worker_processes": "8", "max_parallel_workers": "8"}
SEARCH_SQL = f"SELECT id FROM {TABLE} ORDER BY embedding <=> %s LIMIT %s"
logging.getLogger("pgserver").setLevel(logging.WARNING)


class PgServer:
    """A PostgreSQL server in `pgdata` (created and started by pgserver; stopped by stop()).

    Run as root, pgserver starts PostgreSQL as a system user `pgserver` (created with useradd if missing) and
    makes the parents of the data dir and of its own install dir readable and traversable by others."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server = None

    def start(self) -> str:
        """Start the server with SERVER_SETTINGS (a restart applies them) and return its connection URI."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
            import pgserver

            server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
            settings = "".join(f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value in SERVER_SETTINGS.items())
            server.psql(settings)
            server.cleanup()
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        return self._server.get_uri()

    def stop(self) -> None:
        """Stop the server (its data dir is the caller's to delete)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def pids(self) -> list[int]:
        """The postmaster's pid (its backends are its children)."""
        return [self._server.get_pid()] if self._server is not None else []


def connect(uri: str):  # noqa: ANN201 - psycopg is imported lazily: only the bench extra installs it
    """An autocommit connection with the vector type registered (binary numpy transfer)."""
    import psycopg
    from pgvector.psycopg import register_vector

    conn = psycopg.connect(uri, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    return conn


class PgVector:
    """One psycopg connection to the server: COPY ingest, an HNSW index, `hnsw.ef_search` set per ef."""

    def __init__(self, uri: str, dim: int, m: int, ef_construction: int, threads: int) -> None:
        self.name = "PostgreSQL + pgvector"
        self.uri = uri
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.threads = threads
        self.build_seconds = 0.0
        self._conn = connect(uri)
        self._ef = 0

    def ingest(self, vectors: np.ndarray, batch: int) -> float:
        """COPY every row (binary), then build the HNSW index with the same M / ef_construction; both timed."""
        conn = self._conn
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, embedding vector({self.dim}))")
        start = time.perf_counter()
        with tqdm(total=len(vectors), desc=f"{self.name} COPY", unit="vec", leave=False) as bar:
            for sl in batch_slices(len(vectors), batch):
                with conn.cursor().copy(f"COPY {TABLE} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
                    cp.set_types(["int8", "vector"])
                    for row in range(sl.start, sl.stop):
                        cp.write_row((row, vectors[row]))
                bar.update(sl.stop - sl.start)
        copy_seconds = time.perf_counter() - start
        # The leader builds too, so threads-1 workers use as many cores as hnswlib's num_threads.
        conn.execute(f"SET max_parallel_maintenance_workers = {max(self.threads - 1, 0)}")
        tqdm.write(f"   {self.name}: building HNSW (m={self.m}, ef_construction={self.ef_construction})")
        start = time.perf_counter()
        conn.execute(f"CREATE INDEX {INDEX} ON {TABLE} USING hnsw (embedding vector_cosine_ops) "
                     f"WITH (m = {self.m}, ef_construction = {self.ef_construction})")
        self.build_seconds = time.perf_counter() - start
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        self.check_plan(vectors[0])
        return copy_seconds + self.build_seconds

    def versions(self) -> dict[str, str]:
        """The server's PostgreSQL version and the vector extension's."""
        server = self._conn.execute("SHOW server_version").fetchone()[0]
        ext = self._conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        return {"postgresql": server, "pgvector_extension": ext}

    def check_plan(self, query: np.ndarray) -> None:
        """Fail unless the search is answered from the HNSW index (a sequential scan would be exact and slow)."""
        plan = "\n".join(r[0] for r in self._conn.execute("EXPLAIN " + SEARCH_SQL, (query, 10)).fetchall())
        if INDEX not in plan:
            raise RuntimeError(f"pgvector does not use its HNSW index for the search:\n{plan}")

    def _set_ef(self, ef: int) -> None:
        if ef != self._ef:
            self._conn.execute(f"SET hnsw.ef_search = {int(ef)}")
            self._ef = ef

    def search_one(self, query: np.ndarray, k: int, ef: int) -> list[tuple[int]]:
        """One prepared, binary-parameter query at this ef_search."""
        self._set_ef(ef)
        return self._conn.execute(SEARCH_SQL, (query, k), prepare=True, binary=True).fetchall()

    def labels_one(self, raw: list[tuple[int]], k: int) -> np.ndarray:
        """Row ids as int64 (MISSING-padded)."""
        return pad_labels([[r[0] for r in raw]], k)[0]

    def search(self, queries: np.ndarray, k: int, ef: int) -> list[list[tuple[int]]]:
        """One query after another (SQL has no batched k-NN call)."""
        return [self.search_one(q, k, ef) for q in queries]

    def labels(self, raw: list[list[tuple[int]]], k: int) -> np.ndarray:
        """Row ids of every query."""
        return pad_labels([[r[0] for r in rows] for rows in raw], k)

    def opener(self) -> Opener:
        """How to open another connection to the same table (one per concurrent client)."""
        return Opener(PgVector, (self.uri, self.dim, self.m, self.ef_construction, self.threads))

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

