"""Ray options of shard node actors: the shard resource keeps them on the Ray nodes that offer it."""

from __future__ import annotations

from pathlib import Path

from coordinator.settings import CoordinatorSettings
from coordinator.shards import ShardPlacer


def test_shard_resource_is_requested(tmp_path: Path) -> None:
    placer = ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path), shard_ray_resource="shoal_shard"))
    options = placer.actor_options(1)
    assert options["resources"] == {"shoal_shard": 1}
    assert options["name"] == "shard-node-1"
    assert options["lifetime"] == "detached" and options["max_restarts"] == -1


def test_no_resource_places_anywhere(tmp_path: Path) -> None:
    placer = ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path)))
    assert placer.actor_options(0)["resources"] == {}
    assert placer.actor_options(0)["num_cpus"] == 0


def test_configured_node_count_wins(tmp_path: Path) -> None:
    assert ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path), shard_nodes=5)).node_count() == 5
