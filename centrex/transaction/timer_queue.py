"""One timer structure for any number of timers: a binary heap with lazy invalidation.

Arming a timer pushes (deadline, token, item); disarming only forgets the token,
and a popped entry whose token is forgotten is skipped. So arming and
disarming are O(log n) and O(1), the earliest deadline is an O(1) peek once the
stale entries above it are dropped (each entry is dropped at most once), and
the heap is rebuilt when forgotten entries outnumber the live ones, which
bounds its memory to a small multiple of the live timers.

The transaction layer keeps every timer of every transaction here (RFC 3261 17
timers A to M); a proxy may keep its own ones (Timer C of 16.6 is kept by the
INVITE client transaction when asked) in another instance.
"""

from __future__ import annotations

import heapq
from itertools import count
from typing import Generic, TypeVar

T = TypeVar("T")

_COMPACT_MIN = 1024  # below this many stale entries, compaction is not worth it


class TimerQueue(Generic[T]):
    """Deadlines (plain floats on the caller's clock) carrying items of type ``T``."""

    __slots__ = ("_heap", "_live", "_tokens")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._live: set[int] = set()
        self._tokens = count(1)

    def __len__(self) -> int:
        """How many timers are armed."""
        return len(self._live)

    @property
    def entries(self) -> int:
        """How many entries the heap holds, stale ones included."""
        return len(self._heap)

    def schedule(self, deadline: float, item: T) -> int:
        """Arm a timer for ``deadline``; the returned token disarms it."""
        token = next(self._tokens)
        heapq.heappush(self._heap, (deadline, token, item))
        self._live.add(token)
        return token

    def cancel(self, token: int) -> None:
        """Disarm the timer ``token`` (nothing happens if it already fired or was disarmed)."""
        self._live.discard(token)
        stale = len(self._heap) - len(self._live)
        if stale > _COMPACT_MIN and stale > len(self._live):
            self._compact()

    def is_armed(self, token: int) -> bool:
        return token in self._live

    def peek(self) -> float | None:
        """The earliest armed deadline, or None when nothing is armed."""
        heap = self._heap
        live = self._live
        while heap and heap[0][1] not in live:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> tuple[int, T] | None:
        """Take the earliest timer due at ``now`` (deadline <= now), or None."""
        deadline = self.peek()
        if deadline is None or deadline > now:
            return None
        _, token, item = heapq.heappop(self._heap)
        self._live.discard(token)
        return token, item

    def _compact(self) -> None:
        live = self._live
        self._heap = [entry for entry in self._heap if entry[1] in live]
        heapq.heapify(self._heap)
