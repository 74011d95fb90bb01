"""Notice that the Ray cluster is gone and end the coordinator, so that its supervisor starts a fresh one.

A Ray driver cannot rejoin a head that restarted without GCS fault tolerance (Ray ends it or leaves its calls
hanging), and every shard node actor went with the old head. A coordinator started again joins the new
cluster and re-creates the shard nodes, which reopen their partitions from the data directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from coordinator import shards
from coordinator.settings import RAY_LOST_EXIT_CODE, CoordinatorSettings

log = logging.getLogger("shoal.coordinator.ray_watch")


def _exit_for_restart() -> None:
    # os._exit: threads blocked in Ray calls would keep a normal exit waiting forever.
    os._exit(RAY_LOST_EXIT_CODE)


async def watch_ray(settings: CoordinatorSettings, on_lost: Callable[[], None] = _exit_for_restart) -> None:
    """Check every ray_check_interval_s that Ray answers; when it has not for ray_lost_after_s, call on_lost."""
    if settings.ray_check_interval_s <= 0:
        return
    while True:
        await asyncio.sleep(settings.ray_check_interval_s)
        try:
            await asyncio.wait_for(asyncio.to_thread(shards.cluster_answers), settings.ray_lost_after_s)
        except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the cluster is gone for this process
            log.error("the Ray cluster at %r did not answer for %.0fs (%s: %s); exiting with code %d so that the "
                      "supervisor restarts the coordinator, which re-creates the shard nodes from their data",
                      settings.ray_address, settings.ray_lost_after_s, type(exc).__name__, exc, RAY_LOST_EXIT_CODE)
            on_lost()
            return
