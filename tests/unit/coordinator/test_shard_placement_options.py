"""Ray options of shard actors: the shard resource keeps them on the nodes that offer it."""

from __future__ import annotations

from pathlib import Path

from coordinator.catalog import CollectionSpec
from coordinator.settings import CoordinatorSettings
from coordinator.shards import ShardPlacer

SPEC = CollectionSpec.new("docs", dim=8, metric="l2", shards=2, m=8, ef_construction=40, ef_search=20)


def test_shard_resource_is_requested(tmp_path: Path) -> None:
    placer = ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path), shard_ray_resource="shoal_shard"))
    options = placer.actor_options(SPEC, 1, 0)
    assert options["resources"] == {"shoal_shard": 1}
    assert options["name"] == f"shard-docs-{SPEC.uid}-1"
    assert options["lifetime"] == "detached" and options["max_restarts"] == -1


def test_no_resource_places_anywhere(tmp_path: Path) -> None:
    placer = ShardPlacer(CoordinatorSettings(data_dir=str(tmp_path)))
    assert placer.actor_options(SPEC, 0, 1)["resources"] == {}
    assert placer.actor_options(SPEC, 0, 1)["name"].endswith("-0-r1")
