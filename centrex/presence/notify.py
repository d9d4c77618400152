"""Building NOTIFY requests in the two wire forms.

In-dialog (RFC 6665 4.2.2, RFC 3261 12.2.1.1): Request-URI and Route from the
remote target and route set, From = the SUBSCRIBE's To with our tag, To = its
From with the subscriber's tag, its Call-ID, our CSeq one higher each time,
Event (with the SUBSCRIBE's ``id``), Subscription-State, Contact, Max-Forwards.

Lanscape (the original soft phones): a new request each time to the
subscriber's Contact, with its own Call-ID, ``From: <sip:<name>@<domain>>;tag=``
a new tag, ``To: <contact>`` without a tag, ``Contact: <sip:<name>@<domain>>``,
no Route and no Subscription-State. Its CSeq is the subscription's counter,
so it still grows from one NOTIFY to the next, which no phone can object to.

Neither form carries a Via: the sender adds its own (RFC 3261 8.1.1.7) and
keeps ``PresenceSettings.via_reserve`` bytes for it.
"""

from __future__ import annotations

import urllib.parse

from centrex.presence.dialog import Subscription
from centrex.sip.address import Address
from centrex.sip.errors import ParseError
from centrex.sip.message import Request
from centrex.sip.uri import SipURI

# RFC 3261 25.1 user part: unreserved / escaped / user-unreserved.
_USER_SAFE = "-_.!~*'()&=+$,;?/"


def registrar_uri(name: str, domain: str) -> str:
    """``sip:<name>@<domain>``, the URI of the registrar events (name escaped)."""
    return f"sip:{urllib.parse.quote(name, safe=_USER_SAFE)}@{domain}"


def _request_uri_and_routes(sub: Subscription) -> tuple[str, list[str]]:
    """RFC 3261 12.2.1.1: loose routing keeps the remote target as Request-URI;
    a strict router (no ``lr``) first becomes it, the target going last."""
    routes = list(sub.route_set)
    if not routes:
        return sub.remote_target, []
    try:
        first = Address.parse(routes[0])
    except ParseError:
        return sub.remote_target, routes
    if not isinstance(first.uri, SipURI) or first.uri.lr:
        return sub.remote_target, routes
    return str(first.uri), [*routes[1:], f"<{sub.remote_target}>"]


def next_hop(sub: Subscription) -> str:
    """Where an in-dialog NOTIFY goes first: the top Route's URI, else the target."""
    if not sub.route_set:
        return sub.remote_target
    try:
        return str(Address.parse(sub.route_set[0]).uri)
    except ParseError:
        return sub.remote_target


def in_dialog(
    sub: Subscription,
    *,
    contact: str,
    event: str,
    state: str,
    body: bytes = b"",
    content_type: str | None = None,
    user_agent: str = "",
) -> Request:
    """A NOTIFY inside ``sub``'s dialog (RFC 6665 4.2.2, RFC 3261 12.2.1.1).

    ``event`` is the whole Event value, ``state`` the Subscription-State value.
    Takes the next CSeq of the dialog.
    """
    uri, routes = _request_uri_and_routes(sub)
    headers: list[tuple[str, str]] = [("Max-Forwards", "70")]
    headers.extend(("Route", route) for route in routes)
    headers += [
        ("From", f"{sub.local_uri};tag={sub.local_tag}"),
        ("To", f"{sub.remote_uri};tag={sub.remote_tag}" if sub.remote_tag else sub.remote_uri),
        ("Call-ID", sub.call_id),
        ("CSeq", f"{sub.next_cseq()} NOTIFY"),
        ("Contact", f"<{contact}>"),
        ("Event", event),
        ("Subscription-State", state),
    ]
    if user_agent:
        headers.append(("User-Agent", user_agent))
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    headers.append(("Content-Length", str(len(body))))
    return Request.new("NOTIFY", uri, headers, body)


def lanscape(
    sub: Subscription,
    *,
    registrar: str,
    event: str,
    call_id: str,
    from_tag: str,
    user_agent: str = "",
) -> Request:
    """A NOTIFY as the original soft phones expect it: a new request each time
    (see the module docstring); ``registrar`` is ``sip:<name>@<domain>``."""
    headers: list[tuple[str, str]] = [
        ("Max-Forwards", "70"),
        ("From", f"<{registrar}>;tag={from_tag}"),
        ("To", f"<{sub.remote_target}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{sub.next_cseq()} NOTIFY"),
        ("Contact", f"<{registrar}>"),
        ("Event", event),
    ]
    if user_agent:
        headers.append(("User-Agent", user_agent))
    headers.append(("Content-Length", "0"))
    return Request.new("NOTIFY", sub.remote_target, headers)
