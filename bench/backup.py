"""`python -m bench.backup`: an online backup under a steady write load, restored into a second fresh cluster.

Two local clusters (no embedder). The first is loaded with --n documents, then a writer upserts new documents
in batches of --batch while `Snapshot` runs; the harness records the backup's time and size, the writes
acknowledged and their latency before and during the backup, then restores into the second cluster and
compares counts and the content checksum (ids + vectors + payloads) with the backup's manifest and with the
source. Prints the figures as JSON and writes bench/out/backup.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import shoal
from bench.machine import load_average, machine_facts
from protos.checksum import combine_checksums, content_checksum
from protos.wire import pack_vector, payload_to_proto
from shoal.serve import LocalCluster

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "out" / "backup.json"
LOAD_BATCH = 2000
GET_BATCH = 1000
NAME = "bench-backup"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m bench.backup", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="documents loaded before the backup")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--shards", type=int, default=3)
    p.add_argument("--batch", type=int, default=100, help="documents per upsert of the writer")
    p.add_argument("--baseline-seconds", type=float, default=10.0, help="writer alone before the backup")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def documents(start: int, n: int, dim: int) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """n documents numbered from start (seeded by start)."""
    ids = [f"doc-{i}" for i in range(start, start + n)]
    vectors = np.random.default_rng(start).standard_normal((n, dim)).astype(np.float32)
    return ids, vectors, [{"n": i, "tag": f"t{i % 13}"} for i in range(start, start + n)]


class Writer(threading.Thread):
    """Upserts new documents until stopped; keeps (finish time, latency, ids) per acknowledged batch."""

    def __init__(self, address: str, first: int, batch: int, dim: int) -> None:
        super().__init__(daemon=True)
        self.address, self.next, self.batch, self.dim = address, first, batch, dim
        self.log: list[tuple[float, float, list[str]]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with shoal.Client(self.address) as client:
                while not self.stop.is_set():
                    ids, vectors, payloads = documents(self.next, self.batch, self.dim)
                    t0 = time.perf_counter()
                    client.upsert(NAME, ids, vectors, payloads)
                    t1 = time.perf_counter()
                    self.log.append((t1, t1 - t0, ids))
                    self.next += self.batch
        except BaseException as exc:  # noqa: BLE001 - reported by the harness
            self.error = exc


def window(log: list[tuple[float, float, list[str]]], start: float, end: float) -> dict[str, float]:
    """Write throughput and latency of the batches acknowledged in [start, end)."""
    lat = np.array([d for t, d, _ in log if start <= t < end])
    docs = sum(len(ids) for t, _, ids in log if start <= t < end)
    if not len(lat):
        return {"docs_per_s": 0.0, "batches": 0}
    return {"docs_per_s": round(docs / (end - start), 1), "batches": int(len(lat)),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 2),
            "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 2)}


def checksum_of(client: shoal.Client, ids: list[str]) -> tuple[list[str], str]:
    """Ids present among ids and the content checksum of those documents."""
    found = []
    for i in tqdm(range(0, len(ids), GET_BATCH), desc="read back", unit="batch", leave=False):
        found.extend(client.get(NAME, ids[i:i + GET_BATCH], with_vectors=True))
    return ([d.id for d in found], content_checksum([d.id for d in found], [pack_vector(d.vector) for d in found],
                                                    [payload_to_proto(d.payload) for d in found]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement; print and write the figures."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        root = Path(tmp)
        with LocalCluster(root / "source", embedder=False) as src, \
                LocalCluster(root / "target", embedder=False) as dst, \
                shoal.Client(src.address, timeout=600) as a, shoal.Client(dst.address, timeout=600) as b:
            a.create_collection(NAME, dim=args.dim, shards=args.shards, fields={"tag": "keyword"})
            for i in tqdm(range(0, args.n, LOAD_BATCH), desc="load", unit="batch"):
                a.upsert(NAME, *documents(i, min(LOAD_BATCH, args.n - i), args.dim))
            writer = Writer(src.address, args.n, args.batch, args.dim)
            writer.start()
            t_base = time.perf_counter()
            time.sleep(args.baseline_seconds)
            t_backup = time.perf_counter()
            acked_before = {i for _, _, ids in writer.log for i in ids}
            report = a.snapshot(NAME, str(root / "backup"))
            t_done = time.perf_counter()
            writer.stop.set()
            writer.join()
            if writer.error is not None:
                raise writer.error
            t0 = time.perf_counter()
            b.restore(str(root / "backup"))
            restore_s = time.perf_counter() - t0
            sent = [f"doc-{i}" for i in range(writer.next)]
            present, restored_sum = checksum_of(b, sent)
            _, source_sum = checksum_of(a, present)
            missing = len((acked_before | {f"doc-{i}" for i in range(args.n)}) - set(present))
            figures = {
                "n": args.n, "dim": args.dim, "shards": args.shards, "writer_batch": args.batch,
                "backup_seconds": round(report["seconds"], 3), "backup_bytes": report["bytes"],
                "backup_mb_per_s": round(report["bytes"] / 1e6 / max(report["seconds"], 1e-9), 1),
                "documents_in_backup": report["documents"], "restore_seconds": round(restore_s, 3),
                "restored_count": b.count(NAME), "acknowledged_before_backup_missing": missing,
                "checksum_manifest": combine_checksums([s["checksum"] for s in report["shards"]]),
                "checksum_restored": restored_sum, "checksum_source": source_sum,
                "writes_before_backup": window(writer.log, t_base, t_backup),
                "writes_during_backup": window(writer.log, t_backup, t_done),
                "load_average_after": load_average(), "machine": machine_facts(REPO),
            }
            figures["identical"] = (figures["checksum_manifest"] == restored_sum == source_sum
                                    and figures["restored_count"] == report["documents"] and missing == 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1))
    print(json.dumps({k: v for k, v in figures.items() if k != "machine"}, indent=1))
    return 0 if figures["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
