"""Building blocks of the presence tests: real SUBSCRIBE bytes, a fake clock, a phone."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from centrex.config.settings import User
from centrex.directory import Directory
from centrex.presence import Notify, PresenceSettings, SubscriptionTable, parse_event_list
from centrex.registrar.binding import Binding, Source
from centrex.registrar.events import AorEvent, EventReason
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message

T0 = 1_700_000_000.0
DOMAIN = "example.com"
PHONE = Source("udp", "192.168.1.2", 10000, "udp:192.168.1.1:5060")
PHONE_CONTACT = "sip:1244@192.168.1.2:10000"
SUBSCRIBER = "sip:1244@example.com"

USERS = (
    ("voicemail", "The company voicemail server"),
    ("1234", "Engineering Lab"),
    ("1235", "Ted McGraw"),
    ("1244", "Reception"),
)

_branches = itertools.count(1)


def directory(users: Iterable[tuple[str, str]] = USERS) -> Directory:
    return Directory([User(user=name, description=text) for name, text in users], False)


def make_table(
    users: Iterable[tuple[str, str]] = USERS,
    *,
    bindings_of: Callable[[str, float], tuple[Binding, ...]] | None = None,
    **changes: Any,
) -> SubscriptionTable:
    """A table on ``users``; ``bindings_of`` stands for the location store's ``live``."""
    ids = itertools.count(1)
    tags = itertools.count(1)
    calls = itertools.count(1)
    return SubscriptionTable(
        PresenceSettings(**changes),
        directory(users),
        new_id=lambda: f"s{next(ids)}",
        new_tag=lambda: f"tag{next(tags)}",
        new_call_id=lambda: f"call{next(calls)}@{DOMAIN}",
        bindings_of=bindings_of,
    )


def subscribe(
    event: str = "user-available",
    *,
    expires: int | None = 3600,
    ruri: str = f"sip:Registrar@{DOMAIN}",
    to: str | None = None,
    to_tag: str | None = None,
    from_tag: str = "ph1",
    call_id: str = "sub-1@192.168.1.2",
    cseq: int = 1,
    contact: str | None = f"<{PHONE_CONTACT}>",
    extra: Iterable[str] = (),
) -> Request:
    """A SUBSCRIBE as a phone sends it, parsed from bytes."""
    to_value = f"<{to or ruri}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"SUBSCRIBE {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.168.1.2:10000;branch=z9hG4bK{next(_branches)};rport",
        "Max-Forwards: 70",
        f"From: <sip:1244@{DOMAIN}>;tag={from_tag}",
        f"To: {to_value}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines.append(f"Event: {event}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines.extend(extra)
    lines.append("Content-Length: 0")
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def within(response: Response, request: Request, **changes: Any) -> Request:
    """A follow-up SUBSCRIBE inside the dialog ``response`` created."""
    assert response.to_tag is not None
    fields: dict[str, Any] = {
        "event": request.get("event") or "",
        "call_id": request.call_id,
        "from_tag": request.from_tag or "",
        "to_tag": response.to_tag,
        "cseq": request.cseq.number + 1,
    }
    fields.update(changes)
    return subscribe(**fields)


_binding_ids = itertools.count(1)


def binding(user: str, now: float = T0, *, expires: float = 3600, **changes: Any) -> Binding:
    fields: dict[str, Any] = {
        "id": f"b{next(_binding_ids)}",
        "aor": f"sip:{user}@{DOMAIN}",
        "contact": f"sip:{user}@192.168.1.{50 + len(user)}:5060",
        "expires_at": now + expires,
        "q": None,
        "call_id": f"reg-{user}",
        "cseq": 7,
        "source": Source("udp", "192.168.1.50", 5060),
        "created_at": now,
        "updated_at": now,
    }
    fields.update(changes)
    return Binding(**fields)


def came(user: str, now: float = T0) -> AorEvent:
    """The registrar's event: ``user`` registered its first binding."""
    return AorEvent("available", f"sip:{user}@{DOMAIN}", "registered", now, (binding(user, now),))


def left(user: str, now: float = T0, reason: EventReason = "unregistered") -> AorEvent:
    """The registrar's event: ``user``'s last binding went."""
    return AorEvent("unavailable", f"sip:{user}@{DOMAIN}", reason, now)


def names(notifies: Iterable[Notify]) -> list[str]:
    """The users the NOTIFYs name, in order."""
    out: list[str] = []
    for notify in notifies:
        _, _, entries = parse_event_list(notify.request.get("Event") or "")
        out.extend(entry.name for entry in entries)
    return out


def answer_all(table: SubscriptionTable, first: list[Notify], now: float) -> list[Notify]:
    """Answer every NOTIFY 200 as the phone would, collecting all that were sent."""
    sent: list[Notify] = []
    todo = list(first)
    while todo:
        notify = todo.pop(0)
        sent.append(notify)
        if not notify.final:
            todo += table.notify_result(notify.id, 200, now)
    return sent


def reparse(notify: Notify) -> Request:
    """The NOTIFY as the phone receives it (with a Via, as the sender adds one)."""
    request = notify.request.copy()
    request.push_via("SIP/2.0/UDP 192.168.1.1:5060;branch=z9hG4bKcx0123456789ab-1")
    message = parse_message(request.to_bytes())
    assert isinstance(message, Request)
    return message
