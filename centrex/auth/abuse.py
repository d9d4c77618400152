"""Abuse protection per source address: failure bans, a request-rate limit, scanners.

A registrar on a public address is scanned within minutes and attacked for toll
fraud. The pieces here are plain objects fed with the source IP and the time:

- :class:`FailureTracker` counts authentication failures per source in a sliding
  window and bans a source that reaches the threshold for a while; a banned
  source is dropped silently (no answer tells a scanner anything).
- :class:`RateLimiter` is a token bucket per source (like Kamailio's pike): a
  flood from one address is dropped while others are served.
- :func:`is_scanner` recognises the User-Agent of known SIP scanners.

Memory is bounded: each table holds at most ``max_sources`` sources and forgets
the least recently seen first. A forgotten source starts again from a clean
slate, which costs an attacker nothing but gains them nothing either: the
tables only ever hold the sources of the last moments.

The server composes them per request: drop if banned, drop if over the rate,
drop a scanner, then authenticate; ``record_failure`` when the authenticator's
challenge says a guess failed (log the ban when it returns True, so once per
ban), ``record_success`` when it authenticated.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: User-Agent fragments of known scanners (sipvicious and relatives), lower-case.
#: sipsak is left out on purpose: administrators use it to monitor servers.
SCANNER_USER_AGENTS: Final[tuple[str, ...]] = (
    "friendly-scanner",
    "friendly-request",
    "sipvicious",
    "svwar",
    "svcrack",
    "svmap",
    "sipcli",
    "sip-scan",
    "sippts",
    "siparmyknife",
    "vaxsipuseragent",
    "vaxipuseragent",
    "iwar",
    "sundayddr",
    "smap",
    "pplsip",
)


def is_scanner(user_agent: str | None, extra: Iterable[str] = ()) -> bool:
    """True when ``user_agent`` contains a known scanner's name (case-insensitive).

    ``extra`` adds fragments (e.g. from a setting).
    """
    if not user_agent:
        return False
    text = user_agent.lower()
    # One ``in`` per fragment: compiled, a third (a 10-character User-Agent)
    # to three quarters (74 characters) of the time of one search for all
    # sixteen with a pattern.
    for fragment in SCANNER_USER_AGENTS:
        if fragment in text:
            return True
    return any(fragment.lower() in text for fragment in extra if fragment)


@dataclass(frozen=True, slots=True)
class Ban:
    """A banned source: ``ip`` is dropped until ``until`` (wall-clock seconds)."""

    ip: str
    since: float
    until: float
    failures: int


class FailureTracker:
    """Authentication failures per source IP and the temporary bans they earn.

    ``threshold`` failures within ``window_s`` seconds ban the source for
    ``ban_s`` seconds. At most ``max_sources`` sources are tracked and at most
    ``max_sources`` bans kept, the oldest forgotten first.
    """

    def __init__(self, threshold: int, window_s: float, ban_s: float, max_sources: int) -> None:
        if threshold < 1 or window_s <= 0 or ban_s <= 0 or max_sources < 1:
            raise ValueError("threshold, window, ban time and max_sources must be positive")
        self.threshold = threshold
        self.window_s = float(window_s)
        self.ban_s = float(ban_s)
        self.max_sources = max_sources
        # The times of the last ``threshold`` failures: enough for a sliding window.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._bans: OrderedDict[str, Ban] = OrderedDict()

    def is_banned(self, ip: str, now: float) -> bool:
        """True while ``ip`` is banned; an expired ban is forgotten."""
        ban = self._bans.get(ip)
        if ban is None:
            return False
        if now < ban.until:
            return True
        del self._bans[ip]
        return False

    def record_failure(self, ip: str, now: float) -> bool:
        """Count a failure of ``ip`` at ``now``; True when this one starts a ban."""
        if self.is_banned(ip, now):
            return False
        times = self._failures.get(ip)
        if times is None:
            times = self._failures[ip] = deque(maxlen=self.threshold)
            while len(self._failures) > self.max_sources:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(ip)
        times.append(now)
        if len(times) < self.threshold or now - times[0] > self.window_s:
            return False
        del self._failures[ip]
        self._bans[ip] = Ban(ip, now, now + self.ban_s, self.threshold)
        while len(self._bans) > self.max_sources:
            self._bans.popitem(last=False)
        return True

    def restore(self, bans: Iterable[Ban], now: float) -> int:
        """Take up ``bans`` (those the server published before a restart,
        expired ones already left out); how many. None runs longer than
        ``ban_s`` from ``now`` (a shorter ban time set since, a file edited by
        hand); a ban already held for an address is kept if it runs longer."""
        count = 0
        for found in bans:
            until = min(found.until, now + self.ban_s)
            ban = Ban(found.ip, found.since, until, found.failures)
            held = self._bans.get(ban.ip)
            if held is None or held.until < ban.until:
                self._bans[ban.ip] = ban
                count += 1
        while len(self._bans) > self.max_sources:
            self._bans.popitem(last=False)
        return count

    def record_success(self, ip: str) -> None:
        """``ip`` authenticated: its failures so far are forgiven."""
        self._failures.pop(ip, None)

    def bans(self, now: float) -> list[Ban]:
        """The bans in force at ``now``, oldest first (``centrex bans list``)."""
        expired = [ip for ip, ban in self._bans.items() if ban.until <= now]
        for ip in expired:
            del self._bans[ip]
        return list(self._bans.values())

    def clear(self, ip: str | None = None) -> int:
        """Lift the ban and forget the failures of ``ip``, or of every source when
        None (``centrex bans clear``); returns how many bans were lifted."""
        if ip is None:
            lifted = len(self._bans)
            self._bans.clear()
            self._failures.clear()
            return lifted
        self._failures.pop(ip, None)
        return 1 if self._bans.pop(ip, None) is not None else 0

    def failures(self, ip: str) -> int:
        """How many recent failures of ``ip`` are remembered."""
        times = self._failures.get(ip)
        return 0 if times is None else len(times)

    @property
    def tracked_sources(self) -> int:
        """How many sources have failures remembered (at most ``max_sources``)."""
        return len(self._failures)


class RateLimiter:
    """A token bucket per source IP: ``rate_per_s`` requests a second on average,
    ``burst`` at once. At most ``max_sources`` buckets, least recently used
    forgotten first (a forgotten source starts with a full bucket)."""

    def __init__(self, rate_per_s: float, burst: float, max_sources: int) -> None:
        if rate_per_s <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate must be positive, burst at least 1, max_sources at least 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self.max_sources = max_sources
        # ip -> [tokens, time of the last refill]
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def allow(self, ip: str, now: float) -> bool:
        """True when ``ip`` may send one more request at ``now`` (and count it)."""
        buckets = self._buckets
        bucket = buckets.get(ip)
        if bucket is None:
            buckets[ip] = [self.burst - 1, now]
            if len(buckets) > self.max_sources:
                buckets.popitem(last=False)
            return True
        buckets.move_to_end(ip)
        tokens, last = bucket
        if now > last:
            tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
            bucket[1] = now
        if tokens >= 1:
            bucket[0] = tokens - 1
            return True
        bucket[0] = tokens
        return False

    def forget(self, ip: str | None = None) -> None:
        """Drop the bucket of ``ip``, or every bucket."""
        if ip is None:
            self._buckets.clear()
        else:
            self._buckets.pop(ip, None)

    @property
    def tracked_sources(self) -> int:
        """How many sources have a bucket (at most ``max_sources``)."""
        return len(self._buckets)


__all__ = ["SCANNER_USER_AGENTS", "Ban", "FailureTracker", "RateLimiter", "is_scanner"]
