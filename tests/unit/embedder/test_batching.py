"""DynamicBatcher with a fake encoder: shared batches, splitting, failures, the wait bound."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embedder.batching import DynamicBatcher
from tests.support.waiting import wait_until_async


class FakeEncode:
    """Encodes an item n as the row [n, n]; records each call's size; fails a batch holding `poison`."""

    def __init__(self, poison: int | None = None, hold: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.poison = poison
        self.hold = hold
        self.entered = threading.Event()  # set when the first batch reaches the encoder

    def __call__(self, items: list[int]) -> np.ndarray:
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(30)
        self.sizes.append(len(items))
        if self.poison is not None and self.poison in items:
            raise RuntimeError(f"cannot encode {self.poison}")
        return np.array([[n, n] for n in items], dtype=np.float32)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    """One encoding thread, as the service gives each model."""
    pool = ThreadPoolExecutor(1)
    yield pool
    pool.shutdown(wait=True)


def rows(start: int, stop: int) -> np.ndarray:
    """What FakeEncode returns for items start..stop-1."""
    return np.array([[n, n] for n in range(start, stop)], dtype=np.float32)


def test_concurrent_submits_share_one_batch(executor: ThreadPoolExecutor) -> None:
    encode = FakeEncode()
    batches: list[int] = []

    async def main() -> list[np.ndarray]:
        # A generous wait: all eight callers are queued in the same loop turn, long before it ends.
        batcher = DynamicBatcher(encode, executor, max_items=64, max_wait_s=1.0,
                                 on_batch=lambda size, seconds: batches.append(size))
        return await asyncio.gather(*(batcher.submit([i]) for i in range(8)))

    results = asyncio.run(main())
    assert encode.sizes == [8]
    assert batches == [8]
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, rows(i, i + 1))


def test_a_full_batch_does_not_wait(executor: ThreadPoolExecutor) -> None:
    encode = FakeEncode()

    async def main() -> float:
        batcher = DynamicBatcher(encode, executor, max_items=4, max_wait_s=30.0)
        started = time.monotonic()
        await asyncio.gather(*(batcher.submit([i]) for i in range(4)))
        return time.monotonic() - started

    # Far below the 30 s wait: a batch that is already full is encoded at once.
    assert asyncio.run(main()) < 10.0
    assert encode.sizes == [4]


def test_big_request_is_split_and_rows_come_back_in_order(executor: ThreadPoolExecutor) -> None:
    encode = FakeEncode()

    async def main() -> np.ndarray:
        batcher = DynamicBatcher(encode, executor, max_items=4, max_wait_s=0.0)
        return await batcher.submit(list(range(10)))

    out = asyncio.run(main())
    np.testing.assert_array_equal(out, rows(0, 10))
    assert encode.sizes == [4, 4, 2]
    assert max(encode.sizes) <= 4


def test_concurrent_requests_fill_batches_without_exceeding_max_items(executor: ThreadPoolExecutor) -> None:
    encode = FakeEncode()

    async def main() -> list[np.ndarray]:
        batcher = DynamicBatcher(encode, executor, max_items=7, max_wait_s=0.5)
        return await asyncio.gather(*(batcher.submit(list(range(10 * i, 10 * i + 3))) for i in range(6)))

    results = asyncio.run(main())
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, rows(10 * i, 10 * i + 3))
    # A request is not split to fill a batch: two requests of three share one, a third would overflow it.
    assert encode.sizes == [6, 6, 6]


def test_failure_reaches_only_its_batch_and_the_worker_goes_on(executor: ThreadPoolExecutor) -> None:
    hold = threading.Event()
    encode = FakeEncode(poison=13, hold=hold)

    async def main() -> tuple[list, np.ndarray]:
        batcher = DynamicBatcher(encode, executor, max_items=3, max_wait_s=0.0)
        # Three requests of two items each: no two fit in one batch of three, so each is its own batch.
        tasks = [asyncio.ensure_future(batcher.submit(items)) for items in ([1, 2], [13, 14], [5, 6])]
        # The first batch is held in the encoder; the two other requests queued before the worker took it.
        await wait_until_async(encode.entered.is_set, 5, "the first batch to reach the encoder")
        hold.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        after = await batcher.submit([7])         # the worker still serves new requests
        return outcomes, after

    outcomes, after = asyncio.run(main())
    np.testing.assert_array_equal(outcomes[0], rows(1, 3))
    assert isinstance(outcomes[1], RuntimeError) and "13" in str(outcomes[1])
    np.testing.assert_array_equal(outcomes[2], rows(5, 7))
    np.testing.assert_array_equal(after, rows(7, 8))
    assert encode.sizes == [2, 2, 2, 1]


def test_failure_shared_by_callers_in_the_same_batch(executor: ThreadPoolExecutor) -> None:
    encode = FakeEncode(poison=2)

    async def main() -> list:
        batcher = DynamicBatcher(encode, executor, max_items=8, max_wait_s=1.0)
        return await asyncio.gather(*(batcher.submit([i]) for i in range(4)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert encode.sizes == [4]
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_a_lone_request_waits_about_max_wait_not_forever(executor: ThreadPoolExecutor) -> None:
    encode = FakeEncode()

    async def main() -> tuple[float, float]:
        batcher = DynamicBatcher(encode, executor, max_items=64, max_wait_s=0.3)
        started = time.monotonic()
        await batcher.submit([1])
        lone = time.monotonic() - started
        started = time.monotonic()
        await asyncio.gather(*(batcher.submit([i]) for i in range(3)))
        return lone, time.monotonic() - started

    lone, group = asyncio.run(main())
    # Loose bounds on purpose (CI is slow): it waited for company, and it gave up waiting.
    assert lone >= 0.25
    assert lone < 10.0 and group < 10.0
    assert encode.sizes == [1, 3]


def test_zero_wait_encodes_at_once(executor: ThreadPoolExecutor) -> None:
    encode = FakeEncode()

    async def main() -> np.ndarray:
        batcher = DynamicBatcher(encode, executor, max_items=64, max_wait_s=0.0)
        return await batcher.submit([3])

    np.testing.assert_array_equal(asyncio.run(main()), rows(3, 4))
