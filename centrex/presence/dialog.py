"""A subscription, its dialog, and the NOTIFYs it sends (RFC 6665 4, RFC 3261 12).

``Subscription`` holds the notifier's half of the dialog a SUBSCRIBE created
(RFC 3261 12.1.1: Call-ID, local tag = the To tag of our 200, remote tag = the
From tag of the SUBSCRIBE, remote target = its Contact, route set = its
Record-Route in order) plus what the subscription itself needs: the package,
its lifetime, our NOTIFY CSeq counter and where the SUBSCRIBE came from, so a
NOTIFY reaches a phone behind NAT the way its REGISTER showed.

``Notify`` is one NOTIFY ready to send: the request (without Via: the sender
adds its own, as for every request it originates), the next hop and the
source address to send it to, and the ids that ``notify_result`` needs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from centrex.presence.settings import WireForm
from centrex.registrar.binding import Source
from centrex.sip.message import Request

#: What a subscription watches: the registrar events (the users that became
#: available / unavailable in a domain), or one AOR's registrations (RFC 3680)
#: or presence (RFC 3856).
Kind = Literal["available", "unavailable", "reg", "presence"]
REGISTRAR_KINDS: frozenset[str] = frozenset({"available", "unavailable"})


@dataclass(slots=True)
class Notify:
    """One NOTIFY to send.

    ``request`` has no Via. Send it to ``source`` (the address, transport and
    connection the SUBSCRIBE came from: RFC 3581 / RFC 5626 symmetric
    reachability) when the subscription has no route set, else to
    ``next_hop`` (the first Route, RFC 3261 12.2.1.1), resolved as RFC 3263
    says. Report the final response or the timeout with
    ``SubscriptionTable.notify_result(notify.id, ...)``. A ``final`` NOTIFY
    (Subscription-State: terminated) ends a subscription already gone; its
    result changes nothing.
    """

    id: str
    subscription_id: str
    request: Request
    source: Source
    next_hop: str
    final: bool = False
    #: The encoded user-list entries this NOTIFY carries (registrar events only).
    listed: list[str] | None = None
    #: When a registration change made it (None: initial state, a refresh's
    #: NOTIFY, ...); only such NOTIFYs are throttled.
    change_at: float | None = None
    #: The request's size in bytes as last measured or grown by the list
    #: (None: not measured yet), so adding a name does not render it again.
    size: int | None = None


@dataclass(slots=True, eq=False)
class Subscription:
    """One subscription and the notifier's side of its dialog (RFC 6665, RFC 3261 12.1.1).

    ``event`` is the package name as the subscriber wrote it (kept across a
    change of the configured names), ``event_id`` the Event ``id`` parameter.
    ``subscriber`` is the watcher's AOR; ``resource`` what it watches (the
    registrar URI ``sip:<name>@<domain>`` for the registrar events, else the
    watched AOR); ``domain`` the domain of the user list. ``local_uri`` and
    ``remote_uri`` are the To and From of the SUBSCRIBE without their tags.
    ``local_cseq`` is the CSeq of the last NOTIFY built, ``remote_cseq`` that
    of the last SUBSCRIBE accepted. ``failures`` counts consecutive failed
    NOTIFYs; ``version`` the reginfo documents sent (RFC 3680 5.1).
    """

    id: str
    kind: Kind
    event: str
    event_id: str | None
    subscriber: str
    resource: str
    domain: str
    form: WireForm
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: tuple[str, ...]
    local_cseq: int
    remote_cseq: int
    expires_at: float
    source: Source
    created_at: float
    failures: int = 0
    version: int = 0
    # Not persisted: NOTIFYs waiting for the one in flight (RFC 6665 form),
    # and the NOTIFYs sent and not yet answered (id -> sent at).
    queue: deque[Notify] = field(default_factory=deque)
    outstanding: dict[str, float] = field(default_factory=dict)
    # Not persisted: when the last burst of change NOTIFYs started, and until
    # when the waiting ones are held back (the throttle; 0: not held).
    burst_at: float = float("-inf")
    held_until: float = 0.0
    # Not persisted: where in each interval of the throttle its held changes
    # go (a fraction of the interval, spread over the table's subscriptions).
    phase: float = 0.0
    # Not persisted: users of registrar-event changes not yet put in a NOTIFY
    # (AOR -> encoded entry and its size, in the order of their latest
    # change), and when the first of them came.
    pending: dict[str, tuple[str, int]] = field(default_factory=dict)
    pending_at: float = 0.0
    # Not persisted: the part of the initial list still to be put in NOTIFYs
    # (the entries, their sizes, the next index), each built when the one
    # before it is answered rather than all in the turn of the SUBSCRIBE.
    listing: tuple[list[str], list[int], int] | None = None
    # Not persisted: a fetch (RFC 6665 4.4.3) of a registrar event's list,
    # kept only until its last NOTIFY (the terminated one) goes.
    fetch: bool = False

    @property
    def dialog_key(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag): how in-dialog requests find it (RFC 3261 12)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @property
    def topic(self) -> tuple[str, str]:
        """What changes reach it: (kind, domain) or (kind, watched AOR)."""
        if self.kind in REGISTRAR_KINDS:
            return (self.kind, self.domain)
        return (self.kind, self.resource)

    def remaining(self, now: float) -> int:
        """Whole seconds left, for ``Subscription-State: active;expires=`` (RFC 6665
        8.2.3): at least 1 while it is live (``expires=0`` would end it)."""
        left = self.expires_at - now
        return max(1, int(left)) if left > 0 else 0

    def live(self, now: float) -> bool:
        """True until the subscription's expiry."""
        return self.expires_at > now

    def next_cseq(self) -> int:
        """The CSeq of the next NOTIFY: one higher than the last (RFC 3261 12.2.1.1)."""
        self.local_cseq += 1
        return self.local_cseq


@dataclass(frozen=True, slots=True)
class Watcher:
    """One row of ``centrex subscriptions``."""

    id: str
    event: str
    subscriber: str
    resource: str
    contact: str
    source: str
    form: WireForm
    expires_in: int
    failures: int
    waiting: int
    created_at: float

    def as_row(self) -> dict[str, str | int | float]:
        """The row as a plain mapping (for JSON and tables)."""
        return {
            "id": self.id,
            "event": self.event,
            "subscriber": self.subscriber,
            "resource": self.resource,
            "contact": self.contact,
            "source": self.source,
            "form": self.form,
            "expires_in": self.expires_in,
            "failures": self.failures,
            "waiting": self.waiting,
            "created_at": self.created_at,
        }


def watcher_of(sub: Subscription, now: float) -> Watcher:
    """The ``centrex subscriptions`` row of ``sub``."""
    src = sub.source
    host = f"[{src.host}]" if ":" in src.host else src.host
    return Watcher(
        id=sub.id,
        event=sub.event,
        subscriber=sub.subscriber,
        resource=sub.resource,
        contact=sub.remote_target,
        source=f"{src.transport}:{host}:{src.port}",
        form=sub.form,
        expires_in=sub.remaining(now),
        failures=sub.failures,
        waiting=len(sub.queue)
        + len(sub.outstanding)
        + (1 if sub.pending else 0)
        + (1 if sub.listing is not None else 0),
        created_at=sub.created_at,
    )
