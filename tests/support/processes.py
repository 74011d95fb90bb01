"""Processes the test suite started: find the ones still running, and end a process with all it started."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil

# Set in the pytest process at session start; every process the suite starts inherits it (Ray workers too).
SESSION_ENV = "PYTEST_SHOAL_SESSION"
STOP_WAIT_S = 10.0


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and every process below it, as they are now."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_all(procs: list[psutil.Process]) -> list[int]:
    """SIGKILL those of the processes still running; returns their pids."""
    procs = _alive(procs)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=STOP_WAIT_S)
    return [p.pid for p in procs]


def suite_processes(marker: str, basetemp: Path) -> list[psutil.Process]:
    """Running processes this session started: below this process, carrying its marker in their environment
    (also once orphaned), or naming its temporary directory on their command line."""
    me = os.getpid()
    found = {p.pid: p for p in psutil.Process(me).children(recursive=True)}
    for p in psutil.process_iter():
        if p.pid == me or p.pid in found:
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            if p.environ().get(SESSION_ENV) == marker or str(basetemp) in " ".join(p.cmdline()):
                found[p.pid] = p
    return _alive([p for p in found.values() if not _interpreter_helper(p, me)])


# Helpers multiprocessing starts for this interpreter: they end when it does, not when a test does.
_INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _interpreter_helper(p: psutil.Process, me: int) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return p.ppid() == me and any(h in " ".join(p.cmdline()) for h in _INTERPRETER_HELPERS)
    return False


def describe(procs: list[psutil.Process]) -> str:
    """One line per process: pid and command line."""
    lines = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            lines.append(f"{p.pid}: {' '.join(p.cmdline())[:200]}")
    return "\n".join(lines)
