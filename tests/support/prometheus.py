"""A real Prometheus server for tests (Debian's `prometheus` package, `make prometheus`), on a free loopback port
with its own config and storage; stop() always ends it."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from shoal.serve import _stop_process, free_port

START_TIMEOUT_S = 60.0
INSTALL_HINT = "install Debian's prometheus package with `make prometheus` (apt-get install prometheus)"


def tool(name: str) -> str:
    """Path of a Prometheus binary (prometheus, promtool); fails with how to install it when missing."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not on PATH: {INSTALL_HINT}")
    return path


def rule_groups(rule_file: Path) -> dict[str, Any]:
    """The plain Prometheus rules file inside a PrometheusRule object (its spec.groups)."""
    obj = yaml.safe_load(rule_file.read_text())
    assert obj["kind"] == "PrometheusRule", f"{rule_file} is not a PrometheusRule"
    return {"groups": obj["spec"]["groups"]}


def strip_threshold(expr: str) -> str:
    """An alert expression without its final `<comparison> <number>`: the value the alert compares."""
    m = re.fullmatch(r"(?s)(.*?)\s*(?:==|!=|>=|<=|>|<)\s*-?[0-9.]+(?:e[+-]?[0-9]+)?\s*", expr.strip())
    assert m, f"alert expression does not end in a threshold comparison: {expr!r}"
    return m.group(1)


class PrometheusServer:
    """One Prometheus process scraping the given scrape_configs every second."""

    def __init__(self, workdir: Path, scrape_configs: list[dict[str, Any]], rule_files: list[Path] = ()) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                        "rule_files": [str(p) for p in rule_files], "scrape_configs": scrape_configs}
        self._proc: subprocess.Popen | None = None

    def start(self) -> PrometheusServer:
        """Write the config, start the process and wait until it reports ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config))
        log = open(self.workdir / "prometheus.log", "w")  # noqa: SIM115 - the child holds it; closed on stop
        self._log = log
        self._proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log_path = self.workdir / "prometheus.log"
                raise RuntimeError(f"prometheus exited ({self._proc.returncode}); see {log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"prometheus was not ready within {START_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL)."""
        _stop_process(self._proc, grace=10.0)
        self._proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def api(self, path: str, **params: str) -> Any:
        """GET an HTTP API endpoint; returns its `data`."""
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's samples (vector results; a scalar comes back as one unlabelled sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def values(self, expr: str) -> list[float]:
        """The numeric values of an instant query."""
        return [float(s["value"][1]) for s in self.query(expr)]

    def targets(self, job: str) -> list[dict[str, Any]]:
        """The active targets of one scrape job."""
        return [t for t in self.api("targets", state="active")["activeTargets"] if t["labels"]["job"] == job]

    def all_scraped_since(self, t: float) -> bool:
        """Whether every active target is up and was last scraped at or after unix time t."""
        targets = self.api("targets", state="active")["activeTargets"]
        return bool(targets) and all(
            x["health"] == "up" and dt.datetime.fromisoformat(x["lastScrape"]).timestamp() >= t for x in targets)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def finite(values: list[float]) -> list[float]:
    """The values that are numbers (histogram_quantile over an empty window gives NaN)."""
    return [v for v in values if not math.isnan(v)]
