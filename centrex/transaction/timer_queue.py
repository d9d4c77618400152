"""One timer structure for any number of timers, whose cancellation costs O(1)
and leaves nothing to clean up later.

Timers are kept in two tiers by their deadline's one-second bucket:

- *far*: one dict per bucket (token -> deadline, item) and a heap of the
  bucket numbers. Arming is a dict insert (and a heap push for a new
  bucket), disarming a dict delete: nothing stale is left behind.
- *near*: the earliest bucket taken out of *far*, as a binary heap of
  (deadline, token, item). Disarming one of these only forgets its token;
  the entry is skipped when it reaches the top. The heap holds one second's
  worth of timers, so those stale entries go within that second.

So the earliest deadline is always exact (timers fire in deadline order, to
the float), arming and disarming are O(1) or O(log n) in C, and no moment
ever rebuilds the whole structure: an earlier version compacted one big
lazy heap once cancelled entries outnumbered live ones, and that rebuild
stopped the event loop for over 100 ms with tens of thousands of timers
(docs/benchmarks.md, presence). Memory is the live timers plus at most one
bucket of stale near entries.

The transaction layer keeps every timer of every transaction here (RFC 3261 17
timers A to M); a proxy may keep its own ones (Timer C of 16.6 is kept by the
INVITE client transaction when asked) in another instance.
"""

from __future__ import annotations

import heapq
import math
from itertools import count
from typing import Final, Generic, TypeVar

# Bound once: compiled, a module's attribute is looked up by name at every use.
_heappush: Final = heapq.heappush
_heappop: Final = heapq.heappop
_heapify: Final = heapq.heapify
# (math.floor stays as it is: the compiled build makes a float's floor inline.)

T = TypeVar("T")

#: Seconds per bucket (on the caller's clock).
BUCKET_S: Final = 1.0


class TimerQueue(Generic[T]):
    """Deadlines (plain floats on the caller's clock) carrying items of type ``T``."""

    __slots__ = ("_buckets", "_far", "_far_of", "_live", "_near", "_near_bucket", "_tokens")

    def __init__(self) -> None:
        self._near: list[tuple[float, int, T]] = []
        self._near_bucket: int | None = None
        self._buckets: dict[int, dict[int, tuple[float, T]]] = {}
        self._far: list[int] = []
        self._far_of: dict[int, int] = {}
        self._live: set[int] = set()
        self._tokens = count(1)

    def __len__(self) -> int:
        """How many timers are armed."""
        return len(self._live)

    @property
    def entries(self) -> int:
        """How many entries the queue holds, stale near ones included."""
        return len(self._near) + len(self._far_of)

    def schedule(self, deadline: float, item: T) -> int:
        """Arm a timer for ``deadline``; the returned token disarms it."""
        token = next(self._tokens)
        self._live.add(token)
        bucket = math.floor(deadline / BUCKET_S)
        near = self._near_bucket
        if near is not None and bucket <= near:
            _heappush(self._near, (deadline, token, item))
            return token
        slot = self._buckets.get(bucket)
        if slot is None:
            self._buckets[bucket] = slot = {}
            _heappush(self._far, bucket)
        slot[token] = (deadline, item)
        self._far_of[token] = bucket
        return token

    def cancel(self, token: int) -> None:
        """Disarm the timer ``token`` (nothing happens if it already fired or was disarmed)."""
        self._live.discard(token)
        bucket = self._far_of.pop(token, None)
        if bucket is not None:
            del self._buckets[bucket][token]

    def is_armed(self, token: int) -> bool:
        return token in self._live

    def peek(self) -> float | None:
        """The earliest armed deadline, or None when nothing is armed."""
        near = self._near
        live = self._live
        while near and near[0][1] not in live:
            _heappop(near)
        if near:
            return near[0][0]
        # The near tier is empty: the earliest non-empty far bucket becomes it.
        far, buckets, far_of = self._far, self._buckets, self._far_of
        while far:
            bucket = _heappop(far)
            slot = buckets.pop(bucket, None)
            if slot:
                for token in slot:
                    del far_of[token]
                near[:] = [(deadline, token, item) for token, (deadline, item) in slot.items()]
                _heapify(near)
                self._near_bucket = bucket
                return near[0][0]
        return None

    def pop_due(self, now: float) -> tuple[int, T] | None:
        """Take the earliest timer due at ``now`` (deadline <= now), or None."""
        deadline = self.peek()
        if deadline is None or deadline > now:
            return None
        _, token, item = _heappop(self._near)
        self._live.discard(token)
        return token, item
