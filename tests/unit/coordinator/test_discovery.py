"""Shard metrics discovery: file-SD written atomically as shards move, the same list over HTTP-SD."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from coordinator.discovery import SD_PATH, ShardTargets
from coordinator.metrics import CoordinatorMetrics
from coordinator.metrics_http import serve_metrics


def test_file_sd_follows_nodes_as_they_start_move_and_go(tmp_path: Path) -> None:
    sd = tmp_path / "sd" / "shards.json"
    counts: list[int] = []
    targets = ShardTargets(str(sd), counts.append)
    assert json.loads(sd.read_text()) == []  # the file exists before any node does
    targets.located(1, "10.0.0.2:5001", 9101)
    targets.located(0, "10.0.0.1:5000", 9100)
    targets.located(2, "[::1]:5002", 9102)
    assert json.loads(sd.read_text()) == [
        {"targets": ["10.0.0.1:9100"], "labels": {"node": "0"}},
        {"targets": ["10.0.0.2:9101"], "labels": {"node": "1"}},
        {"targets": ["[::1]:9102"], "labels": {"node": "2"}},
    ]
    targets.located(1, "10.0.0.3:5003", 9200)  # Ray restarted node 1 elsewhere
    assert json.loads(sd.read_text())[1]["targets"] == ["10.0.0.3:9200"]
    targets.located(0, "10.0.0.1:5000", -1)    # restarted without metrics
    assert json.loads(sd.read_text()) == [
        {"targets": ["10.0.0.3:9200"], "labels": {"node": "1"}},
        {"targets": ["[::1]:9102"], "labels": {"node": "2"}}]
    assert json.loads(targets.http_body()) == json.loads(sd.read_text())
    assert counts == [0, 1, 2, 3, 3, 2]
    assert [p.name for p in sd.parent.iterdir()] == ["shards.json"]  # no temp files left behind


def test_unchanged_location_does_not_rewrite(tmp_path: Path) -> None:
    sd = tmp_path / "shards.json"
    targets = ShardTargets(str(sd))
    targets.located(0, "h:1", 2)
    sd.write_text("sentinel")
    targets.located(0, "h:1", 2)
    assert sd.read_text() == "sentinel"


def test_metrics_server_serves_sd_json_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("shoal_test_things", "things", registry=registry).inc(3)
    targets = ShardTargets()  # no file: HTTP-SD only
    targets.located(0, "127.0.0.1:5000", 9300)
    httpd = serve_metrics("127.0.0.1", 0, registry, {SD_PATH: targets.http_body})
    try:
        base = f"http://127.0.0.1:{httpd.server_port}"
        with urllib.request.urlopen(base + SD_PATH, timeout=10) as r:
            assert r.headers["Content-Type"] == "application/json"
            assert json.loads(r.read()) == [
                {"targets": ["127.0.0.1:9300"], "labels": {"node": "0"}}]
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            assert "shoal_test_things_total 3.0" in r.read().decode()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_dropped_collection_loses_its_per_shard_series() -> None:
    m = CoordinatorMetrics()
    m.observe_shard("docs", 0, 0, None)
    m.observe_shard("keep", 0, 0, None)
    m.shard_latency.labels("docs", "0", "Search").observe(0.01)
    m.forget_collection("docs")
    names = {s.labels.get("collection") for f in m.registry.collect() for s in f.samples}
    assert "docs" not in names and "keep" in names
