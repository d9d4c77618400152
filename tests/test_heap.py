"""Freed memory given back to the system: when a trim is due."""

from __future__ import annotations

import os

import pytest

from centrex.heap import HeapTrimmer

STRICT = os.environ.get("CENTREX_TEST_STRICT") == "1"


def trimmer(**kwargs: float) -> HeapTrimmer:
    heap = HeapTrimmer(**kwargs)  # type: ignore[arg-type]
    if not heap.available:
        if STRICT:
            pytest.fail("this C library has no malloc_trim (CI runs on glibc)")
        pytest.skip("this C library has no malloc_trim")
    return heap


def test_a_trim_comes_once_per_interval_while_nothing_ends() -> None:
    heap = trimmer(every_s=60.0, ended=10_000)
    assert heap.due(0.0, 0)  # the first tick
    assert not heap.due(1.0, 5_000)
    assert not heap.due(59.0, 9_000)
    assert heap.due(60.0, 9_000)
    assert not heap.due(61.0, 9_000)


def test_a_trim_comes_as_soon_as_a_burst_of_transactions_has_ended() -> None:
    """32 s after a registration storm its transactions end together: the
    memory they held goes back then, not up to an interval later."""
    heap = trimmer(every_s=60.0, ended=10_000)
    assert heap.due(0.0, 0)
    for second in range(1, 30):  # the storm: 4,000 a second, alive for Timer J
        assert not heap.due(float(second), min(second, 32) * 4_000)
    assert not heap.due(33.0, 116_000 - 9_999)
    assert heap.due(34.0, 100_000)  # 16,000 fewer than at their highest
    assert not heap.due(35.0, 95_000)  # counted again from this trim


def test_memory_freed_in_the_middle_of_the_heap_goes_back() -> None:
    """What ended transactions free lies among what lives on (the C library
    gives back by itself only free memory at the top of its heap): a trim
    returns it."""
    heap = trimmer()
    freed = [bytes(600) for _ in range(20_000)]  # 12 MB on the C heap (> 512 bytes each)
    lives_on = bytes(600)  # above them
    del freed
    assert heap.trim()
    assert len(lives_on) == 600


def test_trims_come_no_closer_than_the_gap_however_fast_transactions_end() -> None:
    """Each trim holds the allocator's lock while it walks the free memory:
    a burst that ends a few thousand at a time does not trim every second."""
    heap = trimmer(every_s=60.0, ended=10_000, gap_s=10.0)
    assert heap.due(0.0, 100_000)
    assert not heap.due(1.0, 80_000)  # 20,000 ended, but 1 s after the last trim
    assert not heap.due(9.9, 60_000)
    assert heap.due(10.0, 60_000)  # 40,000 fewer than at the highest since
    assert not heap.due(15.0, 20_000)
