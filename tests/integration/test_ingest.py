"""`shoal ingest` as a user runs it: a folder streamed into a model-bound collection, killed half-way, resumed
without embedding again what was stored, and a changed file written again."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import shoal
from shoal.demo import DEMO_MODEL, read_corpus
from shoal.ingest import DIGEST_KEY
from shoal.serve import LocalCluster
from tests.support.waiting import wait_until

FILES = 48


def _ingest(address: str, folder: Path, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shoal.cli", "--address", address, "ingest", str(folder), "-c",
                             name, "--create-model", DEMO_MODEL, "--shards", "2", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _summary(out: str) -> tuple[int, int]:
    m = re.search(r"upserted (\d+) files into \S+ \((\d+) already stored unchanged", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def _settled_count(client: shoal.Client, name: str) -> int:
    """The collection's count once it has stopped changing for a second."""
    last = [-1]

    def settled() -> int | None:
        now = client.count(name)
        same, last[0] = now == last[0], now
        return now if same else None
    return wait_until(settled, 60, "the count to settle", interval=1.0)


def test_ingest_resumes_after_a_kill_and_rewrites_only_what_changed(cluster: LocalCluster, tmp_path: Path) -> None:
    folder = tmp_path / "packages"
    folder.mkdir()
    docs = [d for _, d in zip(range(FILES), read_corpus(), strict=False)]
    for d in docs:
        (folder / f"{d['id']}.txt").write_text(d["text_en"], encoding="utf-8")
    name = f"ing-{uuid.uuid4().hex[:8]}"
    with shoal.Client(cluster.address) as client:
        try:
            first = _ingest(cluster.address, folder, name, "--embed-batch", "4", "--in-flight", "1")
            try:
                stored = wait_until(lambda: name in {c.name for c in client.list_collections()}
                                    and (n := client.count(name)) >= 8 and n, 120, "the first batches to land")
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=30)
            stored = _settled_count(client, name)   # an upsert the kill cut off may still land on the server
            assert 8 <= stored < FILES, stored                             # really cut off half-way
            kept = {d.id: d.payload[DIGEST_KEY] for d in client.get(name, [f"{d['id']}.txt" for d in docs],
                                                                    with_vectors=False)}

            second = _ingest(cluster.address, folder, name)
            out, err = second.communicate(timeout=300)
            assert second.returncode == 0, err
            written, skipped = _summary(out)
            assert skipped == stored and written == FILES - stored, out  # nothing stored was embedded again
            assert "/s" in err and f"{FILES}/{FILES}" in err              # progress with a rate reached the end
            assert client.count(name) == FILES
            after = {d.id: d.payload[DIGEST_KEY] for d in client.get(name, list(kept), with_vectors=False)}
            assert after == kept

            changed = folder / f"{docs[3]['id']}.txt"
            changed.write_text("A tide-table calculator for sailors.", encoding="utf-8")
            third = _ingest(cluster.address, folder, name)
            out, err = third.communicate(timeout=300)
            assert third.returncode == 0, err
            assert _summary(out) == (1, FILES - 1), out
            assert client.search(name, text="tide predictions for sailing", k=1)[0].id == changed.name
        finally:
            if name in {c.name for c in client.list_collections()}:
                client.drop_collection(name)
