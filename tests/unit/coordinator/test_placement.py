"""Placement policy: replicas of a shard on distinct nodes, load spread evenly, deterministic."""

from __future__ import annotations

from collections import Counter

from coordinator.placement import load_of, nodes_used, place, spread


def test_replicas_of_a_shard_land_on_distinct_nodes() -> None:
    placement = place(shards=4, replicas=3, nodes=3, load=load_of([], 3))
    assert all(len(set(r)) == 3 for r in placement)


def test_more_replicas_than_nodes_share_nodes() -> None:
    placement = place(shards=2, replicas=3, nodes=2, load=load_of([], 2))
    assert all(len(r) == 3 and set(r) == {0, 1} for r in placement)


def test_load_is_balanced_across_collections() -> None:
    nodes = 2
    placements = []
    for _ in range(5):
        placements.append(place(shards=3, replicas=1, nodes=nodes, load=load_of(placements, nodes)))
    load = load_of(placements, nodes)
    assert abs(load[0] - load[1]) <= 1 and sum(load.values()) == 15


def test_placement_is_deterministic() -> None:
    a = place(3, 2, 4, load_of([], 4))
    b = place(3, 2, 4, load_of([], 4))
    assert a == b and nodes_used(a) == [0, 1, 2, 3]


def test_replicas_of_a_shard_land_on_distinct_machines() -> None:
    # Nodes 0 and 1 share machine a: a shard's two replicas never both go there while b has a node.
    machines = ["a", "a", "b"]
    placement = place(shards=6, replicas=2, nodes=3, load=load_of([], 3), machines=machines)
    assert all(len({machines[n] for n in r}) == 2 for r in placement)


def test_too_few_machines_still_use_distinct_nodes() -> None:
    placement = place(shards=3, replicas=2, nodes=2, load=load_of([], 2), machines=["a", "a"])
    assert all(len(set(r)) == 2 for r in placement)


def test_shard_nodes_spread_one_per_machine() -> None:
    assert spread(range(3), ["m0", "m1", "m2"], Counter()) == {0: "m0", 1: "m1", 2: "m2"}


def test_new_shard_nodes_go_to_the_least_used_machine() -> None:
    # m0 runs two shard nodes already (those of a lost machine came back there); m1 has rejoined empty.
    used = Counter({"m0": 2})
    assert spread([2, 3], ["m0", "m1"], used) == {2: "m1", 3: "m1"} and used == Counter({"m0": 2, "m1": 2})


def test_one_shard_node_alone_keeps_its_own_machine() -> None:
    assert spread([4], ["m0", "m1", "m2"], Counter()) == {4: "m1"}
    assert spread([1], [], Counter()) == {1: ""}
