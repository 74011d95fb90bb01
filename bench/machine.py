"""Facts about the machine and software a benchmark ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("hnswlib", "ray", "numpy", "grpcio", "shoal", "pgserver", "psycopg", "pgvector")


def _proc_field(path: str, key: str) -> str:
    """First value of `key:` in a /proc text file, or '' where there is none (not Linux)."""
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return ""


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (others may share the machine; this says how busy it was)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def git_revision(repo: Path) -> str:
    """Short commit of the work tree, marked '-dirty' when it has changes; '' outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True,
                               check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{rev}-dirty" if dirty else rev


def machine_facts(repo: Path) -> dict[str, Any]:
    """nproc, RAM, CPU model, OS, Python and package versions, load average and git revision."""
    mem_kb = _proc_field("/proc/meminfo", "MemTotal").split()
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(int(mem_kb[0]) / 2**20, 1) if mem_kb else None,
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average_start": load_average(),
        "git": git_revision(repo),
    }
