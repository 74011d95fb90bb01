"""`python -m bench.fault`: replicas under a hung node and a coordinator crash (issue 12's figures).

A real local cluster (Ray, two shard nodes, coordinator) holds a collection with replication_factor=2 and
write consistency 1. Scenario `hang`: a steady write+read load runs; one shard node is frozen (SIGSTOP) for
--hang-s seconds, then thawed (SIGCONT). Reported: % of writes acknowledged and % of reads answered while it
hung, read p99 while healthy and while it hung, and how long after SIGCONT both replicas of every shard hold
identical content (live counts and checksums, at one LSN). Scenario `coordinator`: one node is frozen while
writes and deletes are acknowledged, the coordinator is SIGKILLed, the node thawed and a new coordinator
started; reported: time until the replicas converge, acknowledged writes lost (must be 0) and reads that
returned a document an acknowledged delete had removed (must be 0). Writes its section of BENCHMARKS.md and
bench/out/fault.json. The tests in tests/fault/test_replica_faults.py run the same scenarios, shorter.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import shoal
from bench.machine import load_average, machine_facts
from bench.report import write_section
from shoal.serve import LocalCluster

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "BENCHMARKS.md"
RESULTS = REPO / "bench" / "out" / "fault.json"
BEGIN, END = "<!-- bench:fault:begin -->", "<!-- bench:fault:end -->"
DIM = 16
SHARDS = 2
WRITE_BATCH = 5            # new documents per upsert
DELETE_EVERY = 4           # every 4th write step also deletes 2 acknowledged documents
WRITE_PAUSE_S = 0.02
READ_PAUSE_S = 0.005
CLIENT_TIMEOUT_S = 5.0     # a call that takes longer counts as not answered
CONVERGE_LIMIT_S = 60.0
MAX_FAILURES_KEPT = 10
# The coordinator of these scenarios: a repair round every half second, checksums compared every second.
COORDINATOR_ARGS = ["--shard-nodes=2", "--repair-interval-s=0.5", "--checksum-interval-s=1",
                    "--compaction-interval-s=0"]


@dataclass
class Counts:
    """What one load saw, per phase (healthy, hung, after)."""

    writes: dict[str, dict[str, int]] = field(default_factory=dict)
    reads: dict[str, dict[str, int]] = field(default_factory=dict)
    read_seconds: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # the first few failed calls, for the report
    deleted_returned: int = 0    # a read returned a document whose delete had been acknowledged before it
    acked_missing: int = 0       # a read missed a document whose write had been acknowledged before it

    def failed(self, kind: str, phase: str, exc: Exception, started: float) -> None:
        """Count a failed call and keep what it said."""
        self.count(kind, phase, type(exc).__name__)
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(f"{kind} ({phase}, {time.monotonic() - started:.2f} s): {exc}")

    def count(self, kind: str, phase: str, outcome: str) -> None:
        table = self.writes if kind == "write" else self.reads
        row = table.setdefault(phase, {})
        row[outcome] = row.get(outcome, 0) + 1


def share_ok(row: dict[str, int]) -> float:
    """Share of calls in a phase that succeeded."""
    total = sum(row.values())
    return row.get("ok", 0) / total if total else 1.0


def p99(values: list[float]) -> float:
    """99th percentile in milliseconds (0 for none)."""
    return float(np.percentile(np.asarray(values) * 1000.0, 99)) if values else 0.0


class Load:
    """A writer (new documents, some deletes) and a reader (Get of known ids, a search) on their own threads.

    It keeps what was acknowledged: ids written (with their vector and when) and ids deleted (and when)."""

    def __init__(self, address: str, name: str, seed: int = 7) -> None:
        self.name = name
        self.phase = "healthy"
        self.counts = Counts()
        self.acked: dict[str, tuple[np.ndarray, float]] = {}
        self.deleted: dict[str, float] = {}
        self.unsure: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rng = np.random.default_rng(seed)
        self._next = 0
        self._address = address
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def preload(self, client: shoal.Client, n: int) -> None:
        """Acknowledged documents to start from."""
        for start in range(0, n, 100):
            ids, vecs = self._new(min(100, n - start))
            client.upsert(self.name, ids, vecs)
            now = time.monotonic()
            for i, v in zip(ids, vecs, strict=True):
                self.acked[i] = (v, now)

    def _new(self, n: int) -> tuple[list[str], np.ndarray]:
        ids = [f"{self.name}-{self._next + j}" for j in range(n)]
        self._next += n
        return ids, self._rng.standard_normal((n, DIM)).astype(np.float32)

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)

    def start(self) -> None:
        """Start both threads (again after a stop: the acknowledged state carries over)."""
        self._stop.clear()
        self._threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                         for f in (self._write_loop, self._read_loop)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Stop both threads and raise what either died of."""
        self._stop.set()
        for t in self._threads:
            t.join(60)
        if self.errors:
            raise self.errors[0]

    def _write_loop(self) -> None:
        step = 0
        with shoal.Client(self._address, timeout=CLIENT_TIMEOUT_S, retries=0) as c:
            while not self._stop.is_set():
                phase = self.phase
                ids, vecs = self._new(WRITE_BATCH)
                started = time.monotonic()
                try:
                    c.upsert(self.name, ids, vecs)
                    now = time.monotonic()
                    with self._lock:
                        for i, v in zip(ids, vecs, strict=True):
                            self.acked[i] = (v, now)
                    self.counts.count("write", phase, "ok")
                except shoal.ShoalError as exc:
                    self.unsure.update(ids)
                    self.counts.failed("upsert", phase, exc, started)
                step += 1
                if step % DELETE_EVERY == 0:
                    self._delete_some(c, phase)
                self._stop.wait(WRITE_PAUSE_S)

    def _delete_some(self, c: shoal.Client, phase: str) -> None:
        with self._lock:
            pool = [i for i in self.acked if i not in self.unsure]
        victims = [pool[j] for j in self._rng.choice(len(pool), size=min(2, len(pool)), replace=False)]
        started = time.monotonic()
        try:
            c.delete(self.name, victims)
            now = time.monotonic()
            with self._lock:
                for v in victims:
                    self.acked.pop(v, None)
                    self.deleted[v] = now
            self.counts.count("write", phase, "ok")
        except shoal.ShoalError as exc:
            self.unsure.update(victims)
            self.counts.failed("delete", phase, exc, started)

    def _read_loop(self) -> None:
        rng = np.random.default_rng(11)
        with shoal.Client(self._address, timeout=CLIENT_TIMEOUT_S, retries=0) as c:
            while not self._stop.is_set():
                phase = self.phase
                with self._lock:
                    known = list(self.acked)
                    gone = list(self.deleted)
                ask = [known[j] for j in rng.choice(len(known), size=min(4, len(known)), replace=False)]
                ask += [gone[j] for j in rng.choice(len(gone), size=min(2, len(gone)), replace=False)] if gone else []
                started = time.monotonic()
                op = "get"
                try:
                    docs = c.get(self.name, ask)
                    op = "search"
                    c.search(self.name, rng.standard_normal(DIM).astype(np.float32), k=5)
                except shoal.ShoalError as exc:
                    self.counts.failed(op, phase, exc, started)
                    continue
                self.counts.read_seconds.setdefault(phase, []).append(time.monotonic() - started)
                self.counts.count("read", phase, "ok")
                self._check_read(ask, {d.id for d in docs}, started)
                self._stop.wait(READ_PAUSE_S)

    def _check_read(self, asked: list[str], found: set[str], started: float) -> None:
        with self._lock:
            for i in asked:
                if i in self.unsure:
                    continue
                if i in found and self.deleted.get(i, started) < started:
                    self.counts.deleted_returned += 1
                if i not in found and i in self.acked and self.acked[i][1] < started:
                    self.counts.acked_missing += 1

    def lost(self, client: shoal.Client) -> tuple[int, int]:
        """(acknowledged writes missing or changed, acknowledged deletes undone), read back in full."""
        ids = [i for i in self.acked if i not in self.unsure]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), 1000):
            found.update((d.id, d.vector) for d in client.get(self.name, ids[start:start + 1000], with_vectors=True))
        lost = sum(1 for i in ids if i not in found or not np.array_equal(found[i], self.acked[i][0]))
        dead = [i for i in self.deleted if i not in self.unsure]
        undone = sum(len(client.get(self.name, dead[s:s + 1000])) for s in range(0, len(dead), 1000))
        return lost, undone


def converged(client: shoal.Client, name: str) -> bool:
    """Every shard's replicas answer, count as up to date and hold identical content at one LSN."""
    info = client.describe_collection(name, allow_partial=True, checksums=True).shard_info
    by_shard: dict[int, list[dict[str, Any]]] = {}
    for s in info:
        by_shard.setdefault(s["index"], []).append(s)
    for replicas in by_shard.values():
        if not all(r["available"] and r["up_to_date"] for r in replicas):
            return False
        if len({(r["checksum_lsn"], r["live"], r["checksum"]) for r in replicas}) != 1:
            return False
    return True


def all_up_to_date(client: shoal.Client, name: str) -> bool:
    """Every replica of every shard answers and holds every acknowledged write (the coordinator's view)."""
    return all(s["available"] and s["up_to_date"]
               for s in client.describe_collection(name, allow_partial=True).shard_info)


def time_until(check: Callable[[], bool], limit: float = CONVERGE_LIMIT_S) -> float:
    """Seconds until check() holds (inf past the limit); errors of the cluster count as not yet."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            if check():
                return time.monotonic() - start
        except shoal.ShoalError:
            pass
        time.sleep(0.1)
    return float("inf")


def time_to_converge(client: shoal.Client, name: str, limit: float = CONVERGE_LIMIT_S) -> float:
    """Seconds until converged() holds (inf past the limit)."""
    return time_until(lambda: converged(client, name), limit)


def frozen_pid(lc: LocalCluster, name: str) -> int:
    """The pid of the shard node hosting replica 1 of shard 0 (it hosts a replica of every shard here)."""
    return int(lc.shard_tool("locate", name, 0, replica=1)["pid"])


def hang(lc: LocalCluster, name: str, healthy_s: float, hang_s: float, after_s: float, preload: int = 200
         ) -> dict[str, Any]:
    """The hung-replica scenario; returns its figures."""
    with shoal.Client(lc.address) as admin:
        admin.create_collection(name, dim=DIM, metric="l2", shards=SHARDS, replication_factor=2)
        load = Load(lc.address, name)
        load.preload(admin, preload)
        pid = frozen_pid(lc, name)
        load.start()
        try:
            time.sleep(healthy_s)
            load.phase = "hung"
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(hang_s)
            finally:
                os.kill(pid, signal.SIGCONT)
            thawed = time.monotonic()
            load.phase = "after"
            # Under the load still running: how long until the thawed replicas are caught up.
            caught_up_s = time_until(lambda: all_up_to_date(admin, name))
            time.sleep(max(after_s - (time.monotonic() - thawed), 0.0))
        finally:
            load.stop()
        # Identical content (counts and checksums at one LSN) is checked once the writer has stopped.
        converged_s = time_to_converge(admin, name)
        converge_s = time.monotonic() - thawed if converged_s != float("inf") else converged_s
        lost, undone = load.lost(admin)
    c = load.counts
    return {"hang_s": hang_s, "after_s": after_s, "writes": c.writes, "reads": c.reads,
            "writes_acked_while_hung": share_ok(c.writes.get("hung", {})),
            "reads_answered_while_hung": share_ok(c.reads.get("hung", {})),
            "read_p99_ms_healthy": p99(c.read_seconds.get("healthy", [])),
            "read_p99_ms_hung": p99(c.read_seconds.get("hung", [])),
            "seconds_to_catch_up_after_sigcont": caught_up_s, "seconds_to_converge_after_sigcont": converge_s,
            "acked_writes_lost": lost, "acked_deletes_undone": undone,
            "reads_returning_deleted": c.deleted_returned, "reads_missing_acked": c.acked_missing,
            "failures": c.failures}


def coordinator_kill(lc: LocalCluster, name: str, lag_s: float, preload: int = 200) -> dict[str, Any]:
    """The coordinator-crash scenario: a replica lags, the coordinator is SIGKILLed, then restarted."""
    with shoal.Client(lc.address) as admin:
        admin.create_collection(name, dim=DIM, metric="l2", shards=SHARDS, replication_factor=2)
        load = Load(lc.address, name, seed=9)
        load.preload(admin, preload)
        pid = frozen_pid(lc, name)
        os.kill(pid, signal.SIGSTOP)
        load.phase = "lagging"
        load.start()
        try:
            time.sleep(lag_s)
        finally:
            load.stop()
            lc.stop_coordinator(signal.SIGKILL)
            os.kill(pid, signal.SIGCONT)
        lc.start_coordinator()
        restarted = time.monotonic()
        load.phase = "restarted"
        load.start()
        try:
            converge_s = time_to_converge(admin, name)
            converge_s = converge_s if converge_s == float("inf") else time.monotonic() - restarted
        finally:
            load.stop()
        lost, undone = load.lost(admin)
    c = load.counts
    return {"lag_s": lag_s, "writes": c.writes, "reads": c.reads,
            "seconds_to_converge_after_restart": converge_s, "acked_writes_lost": lost,
            "acked_deletes_undone": undone, "reads_returning_deleted": c.deleted_returned,
            "reads_missing_acked": c.acked_missing, "failures": c.failures}


def render(res: dict[str, Any], command: str) -> str:
    """The BENCHMARKS.md section."""
    h, k = res["hang"], res["coordinator"]
    pct = "{:.2%}".format
    return "\n".join([
        BEGIN,
        "## Replicas under faults (issue 12)",
        "",
        f"`{command}` — {res['machine'].get('cpu_model', '')}, nproc {res['machine'].get('nproc', '')}, load at start "
        f"{res['machine'].get('load_average_start')}, at end {res['load_end']}; git {res['machine'].get('git', '')}.",
        "RF=2, write consistency 1, 2 shards on 2 shard nodes; a steady load of one writer (5 new documents per "
        "upsert, some deletes) and one reader (Get + search), each call with a 5 s deadline and no retries.",
        "",
        "| scenario | figure | value | target |",
        "| --- | --- | --- | --- |",
        f"| node SIGSTOPped {h['hang_s']:.0f} s | writes acknowledged while hung | {pct(h['writes_acked_while_hung'])} "
        f"| ≥ 99 % |",
        f"| | reads answered while hung | {pct(h['reads_answered_while_hung'])} | ≥ 99.9 % |",
        f"| | read p99 healthy / hung | {h['read_p99_ms_healthy']:.1f} ms / {h['read_p99_ms_hung']:.1f} ms | "
        f"hung ≤ 3x healthy |",
        f"| | replicas caught up after SIGCONT (load running) | {h['seconds_to_catch_up_after_sigcont']:.1f} s | "
        f"≤ 30 s |",
        f"| | identical content (counts, checksums) after SIGCONT, checked once the load stopped "
        f"({h['after_s']:.0f} s after) | {h['seconds_to_converge_after_sigcont']:.1f} s | ≤ 30 s |",
        f"| | acknowledged writes lost / deletes undone | {h['acked_writes_lost']} / {h['acked_deletes_undone']} | "
        f"0 / 0 |",
        f"| | reads returning a deleted document / missing an acknowledged one | {h['reads_returning_deleted']} / "
        f"{h['reads_missing_acked']} | 0 / 0 |",
        f"| coordinator SIGKILLed, a replica {k['lag_s']:.0f} s behind | identical replicas after restart | "
        f"{k['seconds_to_converge_after_restart']:.1f} s | ≤ 30 s |",
        f"| | acknowledged writes lost / deletes undone | {k['acked_writes_lost']} / {k['acked_deletes_undone']} | "
        f"0 / 0 |",
        f"| | reads returning a deleted document | {k['reads_returning_deleted']} | 0 |",
        "",
        f"Calls by outcome (hung): writes {json.dumps(h['writes'])}, reads {json.dumps(h['reads'])}.",
        END,
        "",
    ])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m bench.fault", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--healthy-s", type=float, default=20.0, help="load before the node is frozen")
    p.add_argument("--hang-s", type=float, default=60.0, help="how long the node stays frozen")
    p.add_argument("--after-s", type=float, default=5.0, help="load after SIGCONT")
    p.add_argument("--lag-s", type=float, default=20.0, help="acknowledged load while a replica lags, before the "
                                                             "coordinator is killed")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--no-report", action="store_true", help="print the figures, write no BENCHMARKS.md section")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run both scenarios on a fresh local cluster and write the report."""
    args = parse_args(argv)
    command = "python -m bench.fault " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    res: dict[str, Any] = {"machine": machine_facts(REPO)}
    with tempfile.TemporaryDirectory(prefix="shoal-fault-") as tmp, \
            LocalCluster(Path(tmp) / "c", embedder=False, coordinator_args=COORDINATOR_ARGS) as lc:
        print(f"hang scenario: {args.healthy_s:.0f} s healthy, {args.hang_s:.0f} s frozen, {args.after_s:.0f} s "
              "after", file=sys.stderr, flush=True)
        res["hang"] = hang(lc, "fault-hang", args.healthy_s, args.hang_s, args.after_s)
        print(json.dumps(res["hang"]), file=sys.stderr, flush=True)
        print(f"coordinator scenario: {args.lag_s:.0f} s lagging, then SIGKILL", file=sys.stderr, flush=True)
        res["coordinator"] = coordinator_kill(lc, "fault-coordinator", args.lag_s)
        print(json.dumps(res["coordinator"]), file=sys.stderr, flush=True)
    res["load_end"] = load_average()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1, default=str))
    if not args.no_report:
        write_section(render(res, command), args.out, BEGIN, END)
    print(render(res, command))


if __name__ == "__main__":
    main()
