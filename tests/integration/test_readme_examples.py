"""Every Python, shell and curl example of README.md, run as written, top to bottom, against a real cluster.

The cluster is what `make run` starts (coordinator, embedder, gateway, the `debian` demo collection), on free
ports: the only change made to an example is the two default addresses, 127.0.0.1:50051 (coordinator) and
127.0.0.1:8080 (gateway), replaced by this cluster's. Python blocks share one namespace, like one session;
shell blocks run in bash with `-euo pipefail` in a temporary folder, with SHOAL_ADDRESS set as a user of
another coordinator would. A block the test cannot run is marked in the README with the comment
`<!-- readme-test: skip: REASON -->` right above it; every other python/bash/sh/shell block must run.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import shoal
from shoal.demo import load_demo
from shoal.serve import LocalCluster

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
RUN_LANGUAGES = {"python", "bash", "sh", "shell"}
SKIP_RE = re.compile(r"<!-- readme-test: skip: (.+?) -->")
FENCE_RE = re.compile(r"^```(\S*)\n(.*?)^```\n", re.M | re.S)
COORDINATOR_DEFAULT = "127.0.0.1:50051"
GATEWAY_DEFAULT = "127.0.0.1:8080"
SHELL_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    line: int
    language: str
    code: str
    skip_reason: str


def readme_blocks(text: str) -> list[Block]:
    """The README's fenced blocks, in order, with the skip reason written above each (if any)."""
    blocks = []
    for m in FENCE_RE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP_RE.fullmatch(before.strip())
        blocks.append(Block(text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2),
                            skip.group(1) if skip else ""))
    return blocks


def test_the_parser_finds_the_blocks_and_their_skip_reasons() -> None:
    """The block finder sees fences, languages and the skip comment right above a fence only."""
    text = ("intro\n```python\nx = 1\n```\n<!-- readme-test: skip: needs a GPU -->\n```bash\nnvidia-smi\n```\n"
            "<!-- readme-test: skip: far away -->\n\ntext\n```sh\necho hi\n```\n")
    blocks = readme_blocks(text)
    assert [(b.line, b.language, b.code, b.skip_reason) for b in blocks] == [
        (2, "python", "x = 1\n", ""), (6, "bash", "nvidia-smi\n", "needs a GPU"), (12, "sh", "echo hi\n", "")]


def test_every_runnable_block_is_run_or_skipped_with_a_reason() -> None:
    """Few blocks are skipped, each for a stated reason; curl examples and the SDK examples are all run."""
    blocks = [b for b in readme_blocks(README.read_text()) if b.language in RUN_LANGUAGES]
    skipped = [b for b in blocks if b.skip_reason]
    run = [b for b in blocks if not b.skip_reason]
    assert len(skipped) <= 5 and all(len(b.skip_reason) > 10 for b in skipped)
    assert any("curl" in b.code for b in run) and sum(b.language == "python" for b in run) >= 2
    assert not any("curl" in b.code or "shoal.Client" in b.code for b in skipped)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """What `make run` brings up (without the emoji collection, which no README example uses), on free ports."""
    with LocalCluster(tmp_path_factory.mktemp("readme-cluster"), gateway=True) as lc:
        with shoal.Client(lc.address) as client:
            load_demo(client, progress=False)
        yield lc


def _localise(code: str, lc: LocalCluster) -> str:
    gateway = lc.gateway_url.split("://", 1)[1]
    return code.replace(COORDINATOR_DEFAULT, lc.address).replace(GATEWAY_DEFAULT, gateway)


def test_readme_examples_run_top_to_bottom(cluster: LocalCluster, tmp_path: Path) -> None:
    """Each example runs without error, in README order, against the cluster."""
    namespace: dict[str, object] = {"__name__": "readme"}
    env = {**os.environ, "SHOAL_ADDRESS": cluster.address}
    ran = 0
    for block in readme_blocks(README.read_text()):
        if block.language not in RUN_LANGUAGES or block.skip_reason:
            continue
        code = _localise(block.code, cluster)
        where = f"README.md line {block.line}"
        if block.language == "python":
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 - running the README is the point
        else:
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=SHELL_TIMEOUT_S, check=False)
            # curl examples say --fail-with-body, so an HTTP error fails the block (the one refusal shown does not).
            assert r.returncode == 0, f"{where} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        ran += 1
    assert ran >= 5  # the CLI tour, two SDK sessions, the curl session, the certificates
    with shoal.Client(cluster.address) as client:  # the examples clean up after themselves
        assert {c.name for c in client.list_collections()} == {"debian"}
