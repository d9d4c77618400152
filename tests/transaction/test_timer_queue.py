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


def test_stale_entries_never_dominate() -> None:
    queue: TimerQueue[int] = TimerQueue()
    tokens = [queue.schedule(float(n), n) for n in range(10_000)]
    for token in tokens[:9_000]:
        queue.cancel(token)
    assert queue.entries == len(queue) == 1_000
    assert queue.peek() == 9_000.0


def test_against_a_plain_list_timers_fire_in_deadline_order_whatever_is_cancelled() -> None:
    import random

    rng = random.Random(7)
    queue: TimerQueue[str] = TimerQueue()
    armed: dict[int, tuple[float, str]] = {}
    now = 0.0
    fired: list[tuple[float, str]] = []
    for step in range(5000):
        action = rng.random()
        if action < 0.5:
            deadline = now + rng.choice([0.0, 0.5, 0.5, 4.0, 32.0, 64.0]) * rng.random()
            name = f"t{step}"
            armed[queue.schedule(deadline, name)] = (deadline, name)
        elif action < 0.75 and armed:
            token = rng.choice(list(armed))
            queue.cancel(token)
            del armed[token]
        else:
            now += rng.random() * 0.7
            while (due := queue.pop_due(now)) is not None:
                token, _ = due
                earliest = min(d for d, _ in armed.values())
                deadline, name = armed.pop(token)
                assert deadline == earliest and deadline <= now and due[1] == name
                fired.append((deadline, name))
        assert len(queue) == len(armed)
        expected = min((d for d, _ in armed.values()), default=None)
        assert queue.peek() == expected
    assert len(fired) > 500
    assert queue.entries <= len(queue) + 10_000  # no pile of stale entries


def test_cancelled_far_timers_leave_nothing_behind() -> None:
    queue: TimerQueue[int] = TimerQueue()
    tokens = [queue.schedule(100.0 + i / 10, i) for i in range(10_000)]
    for token in tokens[::2]:
        queue.cancel(token)
    assert queue.entries == len(queue) == 5_000
    assert queue.peek() == 100.1
