"""Which shard node moves where: from the most crowded machine to one running none, and only then."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coordinator import shards
from coordinator.settings import CoordinatorSettings
from coordinator.shards import ShardLocation, ShardPlacer


class _Moves:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, placer: ShardPlacer, machines: list[str],
                 where: dict[int, str]) -> None:
        self.killed: list[str] = []
        self.created: list[tuple[int, str]] = []
        monkeypatch.setattr(placer, "machines", lambda: machines)
        monkeypatch.setattr(placer, "running_nodes",
                            lambda: {n: ShardLocation(f"127.0.0.1:{n}", n, "h", -1, m) for n, m in where.items()})
        monkeypatch.setattr(placer, "_existing", lambda node: None)
        monkeypatch.setattr(placer, "_create", lambda node, machine: self.created.append((node, machine)))
        monkeypatch.setattr(placer, "_info", lambda handle: None)
        monkeypatch.setattr(shards.ray, "get_actor", lambda name, namespace: name)
        monkeypatch.setattr(shards.ray, "kill", lambda handle, no_restart: self.killed.append(handle))


@pytest.fixture
def placer(tmp_path: Path) -> ShardPlacer:
    return ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path), shard_ray_resource="shoal_shard"))


def test_a_node_moves_to_the_empty_machine(monkeypatch: pytest.MonkeyPatch, placer: ShardPlacer) -> None:
    moves = _Moves(monkeypatch, placer, ["a", "b", "c"], {0: "a", 1: "b", 2: "b"})
    assert placer.rebalance() == 2
    assert moves.killed == ["shard-node-2"] and moves.created == [(2, "c")]


@pytest.mark.parametrize(("machines", "where"), [
    (["a", "b"], {0: "a", 1: "b"}),            # one each: balanced
    (["a"], {0: "a", 1: "a"}),                 # nowhere to go
    (["a", "b", "c"], {0: "a", 1: "b"}),       # an empty machine, but nobody crowded
])
def test_nothing_moves_when_balanced(monkeypatch: pytest.MonkeyPatch, placer: ShardPlacer, machines: list[str],
                                     where: dict[int, Any]) -> None:
    moves = _Moves(monkeypatch, placer, machines, where)
    assert placer.rebalance() is None and moves.killed == [] and moves.created == []
