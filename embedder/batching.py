"""Dynamic batching: items from requests that arrive together are encoded as one batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class _Pending(Generic[T]):
    items: Sequence[T]
    future: asyncio.Future


class DynamicBatcher(Generic[T]):
    """Collects items for one model and input kind; the first waits at most `max_wait_s` for company."""

    def __init__(self, encode: Callable[[list[T]], np.ndarray], executor: Executor, max_items: int,
                 max_wait_s: float, on_batch: Callable[[int, float], None] | None = None) -> None:
        self._encode = encode
        self._executor = executor
        self._max_items = max(1, max_items)
        self._max_wait_s = max(0.0, max_wait_s)
        self._on_batch = on_batch
        self._queue: list[_Pending[T]] = []
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, items: Sequence[T]) -> np.ndarray:
        """Encode `items` (any number), sharing batches with concurrent callers; rows in input order."""
        step = self._max_items
        parts = [items[i:i + step] for i in range(0, len(items), step)]
        loop = asyncio.get_running_loop()
        futures = []
        for part in parts:
            fut: asyncio.Future = loop.create_future()
            self._queue.append(_Pending(part, fut))
            futures.append(fut)
        self._wake()
        return np.concatenate(await asyncio.gather(*futures)) if len(futures) > 1 else await futures[0]

    def _wake(self) -> None:
        if self._arrived is None:
            self._arrived = asyncio.Event()
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())

    def _take_batch(self) -> list[_Pending[T]]:
        batch, size = [], 0
        while self._queue and (not batch or size + len(self._queue[0].items) <= self._max_items):
            pending = self._queue.pop(0)
            batch.append(pending)
            size += len(pending.items)
        return batch

    async def _gather_company(self) -> None:
        """Wait until a full batch is queued or the oldest request has waited max_wait_s."""
        deadline = time.monotonic() + self._max_wait_s
        while sum(len(p.items) for p in self._queue) < self._max_items:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            assert self._arrived is not None
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            await self._gather_company()
            batch = self._take_batch()
            items = [item for pending in batch for item in pending.items]
            started = time.perf_counter()
            try:
                vectors = await loop.run_in_executor(self._executor, self._encode, items)
            except Exception as exc:  # noqa: BLE001 - the callers get the failure, the worker goes on
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(items), time.perf_counter() - started)
            offset = 0
            for pending in batch:
                n = len(pending.items)
                if not pending.future.done():
                    pending.future.set_result(vectors[offset:offset + n])
                offset += n
