"""Placement policy: which shard node hosts each replica of a collection's shards.

Replicas of one shard go to distinct nodes on distinct machines (Ray nodes) whenever there are enough of
them; then to distinct nodes; otherwise they share the least loaded ones. Among candidates the node
hosting the fewest partitions wins, lowest index on ties, so placement is deterministic for the same
cluster state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

Placement = list[list[int]]  # placement[shard][replica] = node index


def load_of(placements: Iterable[Placement], nodes: int) -> Counter[int]:
    """Partitions each node hosts under the given placements (every node listed, possibly with 0)."""
    load: Counter[int] = Counter({n: 0 for n in range(nodes)})
    for placement in placements:
        for replicas in placement:
            load.update(replicas)
    return load


def place(shards: int, replicas: int, nodes: int, load: Counter[int],
          machines: Sequence[str] = ()) -> Placement:
    """Choose a node for every replica of every shard; `load` is updated with the choice. `machines[n]` names
    the machine node n runs on (unknown when missing): replicas of a shard avoid sharing one."""
    if nodes < 1:
        raise ValueError("placement needs at least one shard node")
    machine = {n: machines[n] if n < len(machines) and machines[n] else f"node-{n}" for n in range(nodes)}
    out: Placement = []
    for _ in range(shards):
        chosen: list[int] = []
        for _ in range(replicas):
            taken = {machine[c] for c in chosen}
            fresh = ([n for n in range(nodes) if machine[n] not in taken]
                     or [n for n in range(nodes) if n not in chosen] or list(range(nodes)))
            best = min(fresh, key=lambda n: (load[n], n))
            chosen.append(best)
            load[best] += 1
        out.append(chosen)
    return out


def nodes_used(placement: Sequence[Sequence[int]]) -> list[int]:
    """The distinct nodes a placement names, in order."""
    return sorted({n for replicas in placement for n in replicas})


def spread(nodes: Iterable[int], machines: Sequence[str], used: Counter[str]) -> dict[int, str]:
    """A machine (Ray node) for each of the shard nodes about to be created: the least used one, node n
    preferring machines[n % len(machines)] on ties, so nodes 0..k-1 of an empty cluster take one machine each.
    `used` counts the shard nodes each machine runs already and is updated; no machines, no preference ("")."""
    out: dict[int, str] = {}
    for n in nodes:
        if not machines:
            out[n] = ""
            continue
        best = min(range(len(machines)), key=lambda i: (used[machines[i]], (i - n) % len(machines)))
        out[n] = machines[best]
        used[machines[best]] += 1
    return out
