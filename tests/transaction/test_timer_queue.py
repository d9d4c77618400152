"""TimerQueue: one heap, lazy invalidation, O(1) peek."""

from __future__ import annotations

from centrex.transaction.timer_queue import TimerQueue


def test_peek_is_the_earliest_armed_deadline() -> None:
    queue: TimerQueue[str] = TimerQueue()
    assert queue.peek() is None
    queue.schedule(3.0, "c")
    queue.schedule(1.0, "a")
    queue.schedule(2.0, "b")
    assert queue.peek() == 1.0
    assert len(queue) == 3


def test_cancelled_timer_never_fires_and_leaves_the_peek() -> None:
    queue: TimerQueue[str] = TimerQueue()
    first = queue.schedule(1.0, "a")
    queue.schedule(2.0, "b")
    queue.cancel(first)
    assert queue.peek() == 2.0
    assert queue.pop_due(5.0) == (2, "b")
    assert queue.pop_due(5.0) is None
    assert len(queue) == 0


def test_pop_due_takes_only_what_is_due_in_deadline_then_arming_order() -> None:
    queue: TimerQueue[str] = TimerQueue()
    queue.schedule(1.0, "first")
    queue.schedule(1.0, "second")
    queue.schedule(4.0, "later")
    taken = []
    while (due := queue.pop_due(1.0)) is not None:
        taken.append(due[1])
    assert taken == ["first", "second"]
    assert queue.peek() == 4.0


def test_cancel_twice_or_after_firing_is_harmless() -> None:
    queue: TimerQueue[str] = TimerQueue()
    token = queue.schedule(1.0, "a")
    assert queue.pop_due(1.0) == (token, "a")
    queue.cancel(token)
    queue.cancel(token)
    assert not queue.is_armed(token)
    assert len(queue) == 0 and queue.peek() is None


def test_heap_is_compacted_when_stale_entries_dominate() -> None:
    queue: TimerQueue[int] = TimerQueue()
    tokens = [queue.schedule(float(n), n) for n in range(10_000)]
    for token in tokens[:9_000]:
        queue.cancel(token)
    assert len(queue) == 1_000
    assert queue.entries <= 2 * len(queue) + 1_025
    assert queue.peek() == 9_000.0
