"""Keep one shard node per machine: after a lost machine's shard nodes moved to a survivor, move them back
out once a machine is free again, so that the replicas of a shard are on distinct machines again."""

from __future__ import annotations

import asyncio
import logging

from coordinator.settings import CoordinatorSettings
from coordinator.shards import ShardPlacer

log = logging.getLogger("shoal.coordinator.rebalance")


async def rebalance_loop(placer: ShardPlacer, settings: CoordinatorSettings) -> None:
    """Every rebalance_interval_s, move at most one shard node to a machine that runs none."""
    if settings.rebalance_interval_s <= 0:
        return
    while True:
        await asyncio.sleep(settings.rebalance_interval_s)
        try:
            await asyncio.to_thread(placer.rebalance)
        except Exception as exc:  # noqa: BLE001 - tried again next round; serving does not depend on it
            log.warning("rebalancing shard nodes failed (%s: %s); trying again in %.0fs", type(exc).__name__, exc,
                        settings.rebalance_interval_s)
