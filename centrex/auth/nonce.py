"""Stateless nonces and the nonce-count check (RFC 7616 3.3, 3.4, 5.5; RFC 3261 22.4).

A nonce is ``base64url(timestamp | epoch | salt | HMAC-SHA256(secret, timestamp |
epoch | salt | realm)[:16])``: the server keeps nothing per challenge, yet
recognises its own nonces (a forged or altered one is "invalid"), knows their
age (an old one is "stale", RFC 7616 3.3 ``stale``) and ties each to the realm
it was issued for. Every worker sharing the secret accepts the nonces of the
others. The epoch is random at each start of the server (the same in all its
workers): it tells the nonces of this run from those of an earlier one.

Replays are stopped by the nonce count (RFC 7616 3.4 ``nc``, 5.5): for each nonce
in use the highest ``nc`` accepted is remembered, and a request must bring a
higher one. That memory is bounded (:class:`NonceCounter`, least recently used
nonces are forgotten first). A forgotten nonce cannot be told from a fresh one by
its count, so the counter keeps a horizon: the issue time of the newest nonce it
ever forgot. A nonce issued at or before the horizon that is not remembered is
answered as stale; the client then simply asks again with a new nonce (one
extra round trip, no password prompt), and a replay of a forgotten nonce is
never accepted.

The counts live in memory, and the secret outlives a restart: a nonce of an
earlier run (another epoch) that is not remembered is answered as stale too,
so every phone takes a new nonce once after a restart and a request captured
before it cannot be replayed after it. (The epoch, not the clock: a clock
stepped back after the start would make the nonces it then issues look older
than the start.)

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
_SALT_BYTES: Final = 8  # the epoch, then random bytes
#: The part of a nonce's salt that names the run of the server that made it.
EPOCH_BYTES: Final = 4
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
    #: Issued in this run of the server (this epoch), not an earlier one.
    current: bool = False


class NonceCodec:
    """Makes and checks stateless nonces (RFC 7616 3.3 ``nonce``).

    ``secret`` is the server secret (at least 16 bytes, the same for every worker);
    a nonce is valid for ``lifetime_s`` seconds after ``new``. ``epoch`` (4
    bytes, made once per start of the server and given to every worker;
    random when None) marks the nonces of this run. ``random_bytes`` gives
    the salt (``os.urandom`` unless a test injects another).
    """

    def __init__(
        self,
        secret: bytes,
        lifetime_s: float,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        epoch: bytes | None = None,
    ) -> None:
        if epoch is not None and len(epoch) != EPOCH_BYTES:
            raise ValueError(f"the nonce epoch has {EPOCH_BYTES} bytes")
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the nonce secret needs at least {MIN_SECRET_BYTES} bytes")
        if lifetime_s <= 0:
            raise ValueError("the nonce lifetime must be positive")
        self._secret = bytes(secret)
        self.lifetime_s = float(lifetime_s)
        self._random_bytes = random_bytes
        self.epoch = epoch if epoch is not None else os.urandom(EPOCH_BYTES)

    def _mac(self, head: bytes, realm: str) -> bytes:
        data = head + b"|" + realm.encode("utf-8")
        return hmac.new(self._secret, data, hashlib.sha256).digest()[:_MAC_BYTES]

    def new(self, now: float, realm: str = "") -> str:
        """A fresh nonce issued at ``now`` (wall-clock seconds) for ``realm``."""
        head = (
            _TIMESTAMP.pack(max(0, int(now * 1000)))
            + self.epoch
            + self._random_bytes(_SALT_BYTES - EPOCH_BYTES)
        )
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
        current = head[_TIMESTAMP.size : _TIMESTAMP.size + EPOCH_BYTES] == self.epoch
        age = now - issued_at
        # A nonce "from the future" is ours (the MAC says so): the clock stepped
        # back. Tolerate that for one lifetime, like an old one.
        if -self.lifetime_s <= age <= self.lifetime_s:
            return NonceCheck("valid", issued_at, current)
        return NonceCheck("stale", issued_at, current)

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

    def __init__(self, max_nonces: int = 10_000) -> None:
        if max_nonces < 1:
            raise ValueError("max_nonces must be at least 1")
        self.max_nonces = max_nonces
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._horizon = float("-inf")

    def use(self, nonce: str, issued_at: float, nc: int, *, current: bool = True) -> CountResult:
        """Record that ``nonce`` (issued at ``issued_at``) was used with count ``nc``.

        "ok" when ``nc`` is above every count seen for it (the count is then
        remembered), "replay" when it is not, "forgotten" when the nonce was
        dropped from memory, or was counted by an earlier run of the server
        (not ``current``: RFC 7616 5.5, the counts of that run are gone):
        answer stale, so the client takes a new nonce.
        """
        counts = self._counts
        seen = counts.get(nonce)
        if seen is None:
            if not current or issued_at <= self._horizon:
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
    "EPOCH_BYTES",
    "MIN_SECRET_BYTES",
    "CountResult",
    "NonceCheck",
    "NonceCodec",
    "NonceCounter",
    "NonceState",
    "parse_nc",
]
