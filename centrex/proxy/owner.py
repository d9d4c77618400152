"""Reaching a phone whose flow another instance holds (shared database, issue 6).

A phone is reachable only from the instance it registered through: that
instance holds its TCP/TLS connection, and the NAT in front of the phone lets
in only what comes from the address the phone sent its REGISTER to. So when
instance A finds a binding held by instance B, A sends the request to B with
a Route to B carrying a *flow token*: the binding's AOR and id, signed with
the key the instances share through the database (``centrex_cluster``) and
bound to the request's Call-ID and to the time A made it. B checks the
signature and the age, finds the binding in its own cache and forwards the
request over the flow it holds, without challenging it (A has authenticated
the caller). A token nobody signed is just a Route to B, so outsiders cannot
use this to relay.

A token only ever travels in the Route of the out-of-dialog request A sends
to B: B removes it there, and the requests later in that dialog follow the
Record-Route set (dialog tokens of core.py), never a flow token. So a token
need only live as long as that request's transaction retransmits (64*T1 =
32 s), and it is refused ``TOKEN_LIFETIME_S`` after it was made, whatever
the call does: a token captured on the wire cannot be replayed later. The
age is judged by B's clock against A's: the lifetime leaves 32 s for the
instances' clocks to differ (keep them NTP-synced).

Tokens are not restricted to the source addresses of known instances: an
instance publishes a SIP address that may be a DNS name and sends from
whatever address its routing picks, so the key, shared through the database
only, is what proves a token came from an instance. The owner does not take
the request's P-Asserted-Identity on trust because of the token either: it
keeps it only from an ``auth.trusted`` source (core.py).

An instance whose heartbeat has not moved for ``down_after_s`` (measured on
this instance's monotonic clock, so clocks that differ between machines do
not matter) or that said it stopped is down: its bindings are skipped, so a
call to its phones gets a 480 at once instead of waiting out a transaction
timeout. While this
instance cannot read the database (``heartbeats_current`` is False) the
heartbeats it knows are old news, not a sign that their instances are down,
so the owners are tried anyway.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from centrex.registrar.binding import Binding
from centrex.sip.errors import ParseError
from centrex.sip.message import Request, encode_text
from centrex.sip.uri import SipURI, parse_uri

#: The Route URI parameter carrying the flow token.
TOKEN_PARAM: Final = "cxo"
#: How long after it was made a flow token is accepted (and how far in the
#: future it may seem to be made): the 32 s an INVITE is retransmitted
#: (64*T1) plus 32 s of clock difference between instances.
TOKEN_LIFETIME_S: Final = 64


class InstanceInfo(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def heartbeat_at(self) -> float: ...

    @property
    def heard_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Flow:
    """The binding a verified flow token names."""

    aor: str
    binding_id: str


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")


class OwnerRouting:
    """Which instance holds a binding's flow, and the tokens that ask it to use it."""

    def __init__(
        self,
        server_id: str,
        *,
        key: Callable[[], bytes],
        instance: Callable[[str], InstanceInfo | None],
        down_after_s: float,
        wall_clock: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        heartbeats_current: Callable[[], bool] = lambda: True,
        heartbeats_read_at: Callable[[], float] | None = None,
    ) -> None:
        self.server_id = server_id
        self._key = key
        self._instance = instance
        self.down_after_s = down_after_s
        self._wall = wall_clock
        self._clock = clock
        self._heartbeats_current = heartbeats_current
        self._heartbeats_read_at = heartbeats_read_at

    def held_elsewhere(self, binding: Binding) -> bool:
        """True when another instance holds ``binding``'s flow."""
        return binding.server_id not in ("", self.server_id)

    def owner_route(self, binding: Binding, request: Request) -> tuple[SipURI, str] | None:
        """The owner of ``binding`` (held elsewhere): its URI, to send to, and
        the Route value naming it with the flow token; None when the owner is
        unknown or down."""
        owner = self._instance(binding.server_id)
        if owner is None or not owner.address:
            return None
        # Judged as of the last time the heartbeats were read (``clock``'s
        # time): an owner's heartbeat that stood still only because nobody
        # could read it (a database that hangs) is not an owner that is down.
        read_at = self._clock() if self._heartbeats_read_at is None else self._heartbeats_read_at()
        stale = owner.heartbeat_at == 0 or read_at - owner.heard_at > self.down_after_s
        if stale and self._heartbeats_current():
            return None
        try:
            uri = parse_uri(owner.address)
        except ParseError:
            return None
        if not isinstance(uri, SipURI):
            return None
        made = str(int(self._wall()))
        mac = self._mac(binding.aor, binding.id, made, request)
        token = f"{_b64(binding.aor)}.{binding.id}.{made}.{mac}"
        lr = "" if uri.lr else ";lr"
        return uri, f"<{uri}{lr};{TOKEN_PARAM}={token}>"

    def verify(self, uri: SipURI, request: Request) -> Flow | None:
        """The binding ``uri``'s flow token names, if this cluster signed it
        for this request less than ``TOKEN_LIFETIME_S`` ago."""
        token = uri.param(TOKEN_PARAM)
        if not token:
            return None
        parts = token.split(".")
        if len(parts) != 4:
            return None
        encoded, binding_id, made, mac = parts
        # ASCII digits (int() refuses others, "²"), few (a float holds the time)
        if not (made.isascii() and made.isdigit()) or len(made) > 12:
            return None
        if abs(self._wall() - int(made)) > TOKEN_LIFETIME_S:
            return None
        try:
            aor = _unb64(encoded)
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(mac, self._mac(aor, binding_id, made, request)):
            return None
        return Flow(aor, binding_id)

    def _mac(self, aor: str, binding_id: str, made: str, request: Request) -> str:
        message = f"{aor}\n{binding_id}\n{made}\n{request.call_id}"
        return hmac.new(self._key(), encode_text(message), "sha256").hexdigest()[:32]
