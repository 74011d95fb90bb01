"""A shard bound to every interface (as on Kubernetes) advertises an address others can dial, not 0.0.0.0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from shoal.serve import wait_serving

READY = re.compile(r"shard node serving on (\S+) \(pid \d+\)")


def test_wildcard_bound_shard_advertises_a_dialable_address(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "shard_node.server", "--data-dir", str(tmp_path / "s"),
                             "--bind-host", "0.0.0.0", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        address = ""
        for line in proc.stdout:
            found = READY.search(line)
            if found:
                address = found.group(1)
                break
        assert address, f"shard exited with {proc.poll()} before serving"
        host, port = address.rsplit(":", 1)
        assert host not in ("0.0.0.0", "::", "") and int(port) > 0, address
        wait_serving(address, timeout=30)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
