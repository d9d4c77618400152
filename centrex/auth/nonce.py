"""Stateless nonces and the nonce-count check (RFC 7616 3.3, 3.4, 5.5; RFC 3261 22.4).

A nonce is ``base64url(timestamp | salt | HMAC-SHA256(secret, timestamp | salt |
realm)[:16])``: the server keeps nothing per challenge, yet recognises its own
nonces (a forged or altered one is "invalid"), knows their age (an old one is
"stale", RFC 7616 3.3 ``stale``) and ties each to the realm it was issued for.
Every worker sharing the secret accepts the nonces of the others.

Replays are stopped by the nonce count (RFC 7616 3.4 ``nc``, 5.5): for each nonce
in use the highest ``nc`` accepted is remembered, and a request must bring a
higher one. That memory is bounded (:class:`NonceCounter`, least recently used
nonces are forgotten first). A forgotten nonce cannot be told from a fresh one by
its count, so the counter keeps a horizon: the issue time of the newest nonce it
ever forgot. A nonce issued at or before the horizon that is not remembered is
answered as stale; the client then simply asks again with a new nonce (one
extra round trip, no password prompt), and a replay of a forgotten nonce is
never accepted.

The counts live in memory: at start the horizon is the start time, so every
nonce issued before a restart is answered as stale once (the phones take a new
one) and a request captured before the restart cannot be replayed after it.

Limits: the counts live in one process, so with several workers a replay sent
to another worker than the original is caught only by the nonce lifetime.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

NonceState = Literal["valid", "stale", "invalid"]
CountResult = Literal["ok", "replay", "forgotten"]

_TIMESTAMP: Final = struct.Struct(">Q")  # milliseconds since the epoch
_SALT_BYTES: Final = 8
_MAC_BYTES: Final = 16
_RAW_BYTES: Final = _TIMESTAMP.size + _SALT_BYTES + _MAC_BYTES
_ENCODED_LENGTH: Final = 43  # base64url of 32 bytes, without padding
_NC_RE: Final = re.compile(r"[0-9A-Fa-f]{8}")
MIN_SECRET_BYTES: Final = 16


@dataclass(frozen=True, slots=True)
class NonceCheck:
    """What :meth:`NonceCodec.verify` found: the state and, unless invalid, the issue time."""

    state: NonceState
    issued_at: float = 0.0


class NonceCodec:
    """Makes and checks stateless nonces (RFC 7616 3.3 ``nonce``).

    ``secret`` is the server secret (at least 16 bytes, the same for every worker);
    a nonce is valid for ``lifetime_s`` seconds after ``new``. ``random_bytes``
    gives the salt (``os.urandom`` unless a test injects another).
    """

    def __init__(
        self,
        secret: bytes,
        lifetime_s: float,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the nonce secret needs at least {MIN_SECRET_BYTES} bytes")
        if lifetime_s <= 0:
            raise ValueError("the nonce lifetime must be positive")
        self._secret = bytes(secret)
        self.lifetime_s = float(lifetime_s)
        self._random_bytes = random_bytes

    def _mac(self, head: bytes, realm: str) -> bytes:
        data = head + b"|" + realm.encode("utf-8")
        return hmac.new(self._secret, data, hashlib.sha256).digest()[:_MAC_BYTES]

    def new(self, now: float, realm: str = "") -> str:
        """A fresh nonce issued at ``now`` (wall-clock seconds) for ``realm``."""
        head = _TIMESTAMP.pack(max(0, int(now * 1000))) + self._random_bytes(_SALT_BYTES)
        raw = head + self._mac(head, realm)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def verify(self, nonce: str, now: float, realm: str = "") -> NonceCheck:
        """Check ``nonce`` for ``realm`` at ``now``; see :meth:`check`."""
        if len(nonce) != _ENCODED_LENGTH or not nonce.isascii():
            return NonceCheck("invalid")
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return NonceCheck("invalid")
        if len(raw) != _RAW_BYTES:
            return NonceCheck("invalid")
        head, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(head, realm)):
            return NonceCheck("invalid")
        issued_at = _TIMESTAMP.unpack_from(head)[0] / 1000
        age = now - issued_at
        # A nonce "from the future" is ours (the MAC says so): the clock stepped
        # back. Tolerate that for one lifetime, like an old one.
        if -self.lifetime_s <= age <= self.lifetime_s:
            return NonceCheck("valid", issued_at)
        return NonceCheck("stale", issued_at)

    def check(self, nonce: str, now: float, realm: str = "") -> NonceState:
        """ "valid", "stale" (ours but older than the lifetime: RFC 7616 3.3
        ``stale=true``) or "invalid" (not made by this secret for this realm)."""
        return self.verify(nonce, now, realm).state


def parse_nc(text: str) -> int | None:
    """The value of an ``nc`` parameter (RFC 7616 3.4: ``8LHEX``), or None when
    malformed or zero (the first request with a nonce has nc=00000001)."""
    if not _NC_RE.fullmatch(text):
        return None
    value = int(text, 16)
    return value or None


class NonceCounter:
    """The highest nonce count accepted per nonce, for at most ``max_nonces`` nonces.

    RFC 7616 3.4 / 5.5: a server that checks ``nc`` refuses a request whose count
    is not above the last one seen for that nonce. See the module docstring for
    how forgotten nonces are answered.
    """

    def __init__(self, max_nonces: int = 10_000, *, started_at: float = float("-inf")) -> None:
        if max_nonces < 1:
            raise ValueError("max_nonces must be at least 1")
        self.max_nonces = max_nonces
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()
        # Nonces issued before ``started_at`` (wall clock: this process's
        # start) were counted by a process that is gone: answered stale like
        # a forgotten one, so a request captured before a restart is not
        # accepted again after it (RFC 7616 5.5).
        self._horizon = started_at

    def use(self, nonce: str, issued_at: float, nc: int) -> CountResult:
        """Record that ``nonce`` (issued at ``issued_at``) was used with count ``nc``.

        "ok" when ``nc`` is above every count seen for it (the count is then
        remembered), "replay" when it is not, "forgotten" when the nonce was
        dropped from memory (answer stale, so the client takes a new nonce).
        """
        counts = self._counts
        seen = counts.get(nonce)
        if seen is None:
            if issued_at <= self._horizon:
                return "forgotten"
        elif nc <= seen[0]:
            return "replay"
        counts[nonce] = (nc, issued_at)
        counts.move_to_end(nonce)
        while len(counts) > self.max_nonces:
            _, (_, forgotten_at) = counts.popitem(last=False)
            if forgotten_at > self._horizon:
                self._horizon = forgotten_at
        return "ok"

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, nonce: object) -> bool:
        return nonce in self._counts


__all__ = [
    "MIN_SECRET_BYTES",
    "CountResult",
    "NonceCheck",
    "NonceCodec",
    "NonceCounter",
    "NonceState",
    "parse_nc",
]
