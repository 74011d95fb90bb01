"""The Ray watch: a cluster that fails or hangs past ray_lost_after_s ends the coordinator; one answering does not."""

from __future__ import annotations

import asyncio
import threading

import pytest

from coordinator import ray_watch, shards
from coordinator.settings import CoordinatorSettings

FAST = CoordinatorSettings(ray_check_interval_s=0.01, ray_lost_after_s=0.2)


def _run(settings: CoordinatorSettings, run_for_s: float) -> list[str]:
    lost: list[str] = []

    async def go() -> None:
        task = asyncio.ensure_future(ray_watch.watch_ray(settings, on_lost=lambda: lost.append("lost")))
        await asyncio.wait([task], timeout=run_for_s)
        task.cancel()

    asyncio.run(go())
    return lost


def test_an_answering_cluster_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(shards, "cluster_answers", lambda: calls.append(1) or True)
    assert _run(FAST, 0.3) == [] and len(calls) >= 3


def test_a_failing_cluster_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone() -> bool:
        raise ConnectionError("GCS unreachable")

    monkeypatch.setattr(shards, "cluster_answers", gone)
    assert _run(FAST, 1.0) == ["lost"]


def test_a_hanging_cluster_is_lost_after_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(shards, "cluster_answers", lambda: release.wait(0.5))
    try:
        assert _run(FAST, 0.1) == []  # not yet: it has hung for less than ray_lost_after_s
        assert _run(FAST, 1.0) == ["lost"]
    finally:
        release.set()


def test_zero_interval_never_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "cluster_answers", lambda: pytest.fail("checked"))
    assert _run(CoordinatorSettings(ray_check_interval_s=0), 0.1) == []
