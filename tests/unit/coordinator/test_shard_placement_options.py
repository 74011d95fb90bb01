"""Ray options of shard node actors: the shard resource keeps them on the Ray nodes that offer it."""

from __future__ import annotations

from pathlib import Path

from coordinator.settings import CoordinatorSettings
from coordinator.shards import ShardPlacer


def test_shard_resource_is_requested(tmp_path: Path) -> None:
    placer = ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path), shard_ray_resource="shoal_shard"))
    options = placer.actor_options(1)
    # A small share, so that a surviving Ray node has room for the shard nodes of a lost one.
    assert 0 < options["resources"]["shoal_shard"] < 1 and list(options["resources"]) == ["shoal_shard"]
    assert options["name"] == "shard-node-1"
    assert options["lifetime"] == "detached" and options["max_restarts"] == -1
    assert "scheduling_strategy" not in options


def test_a_chosen_machine_is_a_soft_preference(tmp_path: Path) -> None:
    placer = ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path), shard_ray_resource="shoal_shard"))
    strategy = placer.actor_options(0, machine="ab" * 28)["scheduling_strategy"]
    assert strategy.node_id == "ab" * 28 and strategy.soft is True


def test_no_resource_places_anywhere(tmp_path: Path) -> None:
    placer = ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path)))
    assert placer.actor_options(0)["resources"] == {}
    assert placer.actor_options(0)["num_cpus"] == 0


def test_configured_node_count_wins(tmp_path: Path) -> None:
    assert ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path), shard_nodes=5)).node_count() == 5
