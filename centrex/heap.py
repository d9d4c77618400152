"""Freed memory given back to the system (glibc's ``malloc_trim``).

A burst of requests (a registration storm after an outage, a NOTIFY fan-out)
leaves its transactions' memory free inside the process once they end (Timer
J: 32 s): CPython returns an arena of its own allocator only when every object
in it is gone, and glibc's heap keeps free pages it has no use for. Measured
after 100,000 REGISTERs, a trim gave 3-4 MB back at once (docs/benchmarks.md).
``HeapTrimmer`` trims as soon as ``ENDED`` fewer transactions are alive than
at their highest since its last trim (a burst's Timer J has passed; the
server reports the count every second), at most every ``TRIM_GAP_S``, and
otherwise every ``TRIM_EVERY_S``; from a worker thread (the call takes the
allocator's lock, not the GIL). Where the C library has no ``malloc_trim``
(musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

#: Seconds between two trims when no burst has ended (a trim of a 100 MB
#: heap takes about a millisecond).
TRIM_EVERY_S = 60.0
#: A trim comes as soon as this many fewer transactions are alive than at
#: their highest since the last trim (a burst's Timer J has passed)...
ENDED = 10_000
#: ... but never sooner than this after the last one (each trim holds the
#: allocator's lock while it walks the free memory).
TRIM_GAP_S = 10.0


def _find_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim
    except Exception:  # no such function (musl, macOS); no CDLL(None) (Windows)
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


class HeapTrimmer:
    """``due(now, alive)``, then ``trim()`` (in a thread)."""

    def __init__(
        self, every_s: float = TRIM_EVERY_S, ended: int = ENDED, gap_s: float = TRIM_GAP_S
    ) -> None:
        self.every_s = every_s
        self.ended = ended
        self.gap_s = gap_s
        self._trim = _find_trim()
        self._last: float | None = None
        self._next = 0.0
        self._highest = 0

    @property
    def available(self) -> bool:
        """Whether this C library can trim."""
        return self._trim is not None

    def due(self, now: float, alive: int) -> bool:
        """Whether a trim is due at ``now`` (a monotonic clock), with ``alive``
        transactions: every ``every_s``, or as soon as ``ended`` fewer are
        alive than at their highest since the last trim, but not within
        ``gap_s`` of it."""
        if self._trim is None:
            return False
        self._highest = max(self._highest, alive)
        if self._last is not None and now < self._last + self.gap_s:
            return False
        if now < self._next and self._highest - alive < self.ended:
            return False
        self._last, self._next, self._highest = now, now + self.every_s, alive
        return True

    def trim(self) -> bool:
        """Give the free memory back; True when some was."""
        return self._trim is not None and bool(self._trim(0))
