"""The `shoal` command as a user runs it: serve in the foreground, ingest, search, Ctrl-C stops everything."""

from __future__ import annotations

import gzip
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import shoal
from shoal.demo import DEMO_COLLECTION, hashed_bow, load_demo, read_corpus
from shoal.serve import free_port

SERVE_TIMEOUT_S = 180


def shoal_cmd(address: str, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI like a user would."""
    return subprocess.run([sys.executable, "-m", "shoal.cli", "--address", address, *args], capture_output=True,
                          text=True, timeout=120, check=False)


def port_open(address: str) -> bool:
    """Whether host:port accepts connections."""
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def test_serve_ingest_search_and_ctrl_c(tmp_path: Path) -> None:
    """`shoal serve` comes up, answers the other commands, and SIGINT stops the coordinator and Ray."""
    address = f"127.0.0.1:{free_port()}"
    serve = subprocess.Popen([sys.executable, "-m", "shoal.cli", "--address", address, "serve", "--no-demo",
                              "--data-dir", str(tmp_path / "data")], stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while time.monotonic() < deadline:
            line = serve.stderr.readline()
            seen.append(line)
            if "Shoal is up" in line or serve.poll() is not None:
                break
        out = "".join(seen)
        assert "Shoal is up" in out, out
        ray_address = re.search(r"Ray at (\S+)\)", out).group(1)

        rows = [{"id": f"p{i}", "vector": [float(i), 1.0, 0.5], "payload": {"n": i}} for i in range(1, 11)]
        data = tmp_path / "docs.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        r = shoal_cmd(address, "ingest", str(data), "-c", "small", "--create-dim", "3", "--metric", "l2")
        assert r.returncode == 0, r.stderr
        assert "upserted 10 documents" in r.stdout

        listing = shoal_cmd(address, "collections").stdout
        assert re.search(r"^small\s+3\s+l2\s+\d+\s+10$", listing, re.M), listing
        hits = json.loads(shoal_cmd(address, "search", "-c", "small", "--vector", "[3.2, 1, 0.5]", "-k", "3",
                                    "--json").stdout)
        assert [h["id"] for h in hits] == ["p3", "p4", "p2"]
        assert hits[0]["payload"] == {"n": 3}
        like = shoal_cmd(address, "search", "-c", "small", "--like", "p7", "-k", "1", "--json").stdout
        assert json.loads(like)[0]["id"] == "p7"
        bad = shoal_cmd(address, "search", "-c", "nope", "--vector", "[1, 2, 3]")
        assert bad.returncode == 2 and "NotFound" in bad.stderr
    finally:
        serve.send_signal(signal.SIGINT)
        code = serve.wait(timeout=90)
    assert code == 0
    assert not port_open(address), "the coordinator still listens after Ctrl-C"
    assert not port_open(ray_address), "Ray still runs after Ctrl-C"


def test_demo_loader_on_a_corpus_sample(client: shoal.Client, tmp_path: Path) -> None:
    """The demo loader fills the demo collection once, with payloads, and word queries find the right package."""
    docs = [d for _, d in zip(range(400), read_corpus(), strict=False)]
    sample = tmp_path / "sample.jsonl.gz"
    with gzip.open(sample, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    if any(c.name == DEMO_COLLECTION for c in client.list_collections()):
        client.drop_collection(DEMO_COLLECTION)
    try:
        assert load_demo(client, sample, progress=False) == 400
        assert load_demo(client, sample, progress=False) == 400  # a second start does not load again
        target = docs[123]
        got = client.get(DEMO_COLLECTION, [target["id"]])[0]
        assert got.payload["section"] == target["section"]
        assert got.payload["summary"] == target["text_en"][:160]
        hits = client.search(DEMO_COLLECTION, hashed_bow([target["text_en"]])[0], k=3)
        assert hits[0].id == target["id"] or np.isclose(hits[0].score, 1.0, atol=1e-4)
    finally:
        client.drop_collection(DEMO_COLLECTION)


def test_serve_on_a_taken_port_says_so(tmp_path: Path) -> None:
    """A second Shoal on the same port fails with a message naming the port, and leaves nothing running."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        r = subprocess.run([sys.executable, "-m", "shoal.cli", "--address", address, "serve", "--no-demo",
                            "--data-dir", str(tmp_path / "data")], capture_output=True, text=True,
                           timeout=SERVE_TIMEOUT_S, check=False)
    assert r.returncode == 1, r.stderr
    assert f"cannot listen on {address}" in r.stderr
    log = (tmp_path / "data" / "logs" / "coordinator.log").read_text()
    ray_address = re.search(r"Ray cluster at address: (\S+?)\.*$", log, re.M).group(1)
    assert not port_open(ray_address), "the Ray head started for this attempt is still running"
