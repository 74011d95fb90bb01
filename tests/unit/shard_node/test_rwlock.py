"""The search gate: same-ef readers share, writers are alone, and neither side can starve the other."""

from __future__ import annotations

import threading
import time

from shard_node.rwlock import SearchGate
from tests.support.threads import CheckedThread, join_all
from tests.support.waiting import wait_until

HOLD_S = 0.005


def test_back_to_back_writes_do_not_lock_out_a_reader() -> None:
    """A reader that arrives during a stream of writes gets in after the current write, not after the stream."""
    gate = SearchGate()
    writes_done = []
    reader_saw: list[int] = []

    def writer() -> None:
        for i in range(200):
            with gate.write():
                time.sleep(HOLD_S)
            writes_done.append(i)

    w = CheckedThread(target=writer)
    w.start()
    wait_until(lambda: writes_done, 10, "the first write of the stream")
    with gate.read(10):
        reader_saw.append(len(writes_done))
    w.join()
    assert reader_saw[0] < 100, f"the reader waited for {reader_saw[0]} writes"


def test_readers_with_the_same_ef_share_and_writers_wait() -> None:
    """Two same-ef readers overlap; a writer waits until both have left."""
    gate = SearchGate()
    inside = threading.Barrier(3, timeout=5)
    order: list[str] = []

    def reader(name: str) -> None:
        with gate.read(32):
            inside.wait()  # both readers are in the gate at once, or this breaks and the reader dies
            wait_until(lambda: gate._writers_waiting, 5, "the writer to queue at the gate")  # no public view of it
            order.append(name)

    readers = [CheckedThread(target=reader, args=(n,)) for n in ("r1", "r2")]
    for t in readers:
        t.start()
    inside.wait()
    with gate.write():
        order.append("w")
    join_all(readers, timeout=10)
    assert sorted(order[:2]) == ["r1", "r2"] and order[2:] == ["w"], order


def test_readers_with_different_ef_do_not_overlap() -> None:
    """hnswlib's ef is index-wide, so a search at another ef waits for the current ones."""
    gate = SearchGate()
    active: list[int] = []
    overlaps = []

    def reader(ef: int) -> None:
        for _ in range(20):
            with gate.read(ef):
                active.append(ef)
                overlaps.append(set(active))
                time.sleep(0.001)
                active.remove(ef)

    threads = [CheckedThread(target=reader, args=(ef,)) for ef in (16, 64)]
    for t in threads:
        t.start()
    join_all(threads, timeout=30)
    assert len(overlaps) == 40 and all(len(s) == 1 for s in overlaps)


def test_must_set_is_reported_when_ef_changes() -> None:
    """The first reader at a new ef (or after a write) must set it; the next one at the same ef need not."""
    gate = SearchGate()
    with gate.read(16) as first:
        pass
    with gate.read(16) as again:
        pass
    with gate.write():
        pass
    with gate.read(16) as after_write:
        pass
    assert (first, again, after_write) == (True, False, True)


def test_freeze_keeps_writers_out_but_not_readers() -> None:
    """While frozen (a snapshot is being written), searches at any ef run and a write waits for the thaw."""
    gate = SearchGate()
    order: list[str] = []

    def write() -> None:
        with gate.write():
            order.append("write")

    with gate.freeze():
        for ef in (16, 64):
            with gate.read(ef):
                order.append(f"read {ef}")
        writer = CheckedThread(target=write)
        writer.start()
        wait_until(lambda: gate._writers_waiting, 5, "the writer to queue at the frozen gate")  # no public view
        order.append("thaw")
    writer.join(timeout=5)
    assert order == ["read 16", "read 64", "thaw", "write"]
