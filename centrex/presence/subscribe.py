"""Reading a SUBSCRIBE: the checks of RFC 6665 4.2.1 that need no stored state.

Each function is pure and raises ``Rejection`` with the response to send:
489 for an Event that is missing or malformed (RFC 6665 4.2.1.1 answers an
unknown package with 489 and Allow-Events), 423 with Min-Expires for a too
short lifetime, 400 for a dialog-creating SUBSCRIBE without a usable Contact
(RFC 6665 4.1.2.1), 406 when Accept excludes the package's body type.
"""

from __future__ import annotations

from dataclasses import dataclass

from centrex.presence.settings import PresenceSettings
from centrex.registrar.request import Rejection
from centrex.sip.address import Address
from centrex.sip.errors import ParseError
from centrex.sip.fields import is_token, parse_params, unquote
from centrex.sip.message import Request

__all__ = [
    "DialogRequest",
    "EventHeader",
    "Rejection",
    "accepts",
    "granted_expires",
    "parse_event",
    "read_dialog",
]


@dataclass(frozen=True, slots=True)
class EventHeader:
    """An Event header value (RFC 6665 8.2.1): the package and its ``id``."""

    package: str
    id: str | None = None


def parse_event(value: str | None) -> EventHeader:
    """Read an Event value; Rejection(489) when there is none or it is malformed."""
    if value is None:
        raise Rejection(489, "Bad Event")
    package, semi, _ = value.partition(";")
    package = package.strip()
    if not is_token(package):
        raise Rejection(489, "Bad Event")
    event_id: str | None = None
    if semi:
        try:
            params = parse_params(value, "Event header", value.index(";"))
        except ParseError:
            raise Rejection(400, "Bad Event header") from None
        raw = params.get("id")
        event_id = None if raw is None else unquote(raw)
    return EventHeader(package, event_id)


def granted_expires(request: Request, settings: PresenceSettings) -> int:
    """The lifetime a 200 grants (RFC 6665 4.2.1.1): the package default when
    none is asked, at most ``max_expires``; 0 stays 0 (unsubscribe or fetch);
    below ``min_expires`` is Rejection(423) with Min-Expires."""
    try:
        asked = request.expires
    except ParseError:
        raise Rejection(400, "Bad Expires header") from None
    if asked is None:
        return settings.default_expires
    if asked == 0:
        return 0
    if asked < settings.min_expires:
        raise Rejection(423, "Interval Too Brief", (("Min-Expires", str(settings.min_expires)),))
    return min(asked, settings.max_expires)


@dataclass(frozen=True, slots=True)
class DialogRequest:
    """What a SUBSCRIBE gives the dialog it creates or refreshes (RFC 3261 12.1.1).

    ``remote_target`` is the Contact URI (None without Contact); ``route_set``
    the Record-Route values in the order they came, as a UAS keeps them.
    """

    call_id: str
    remote_tag: str
    local_tag: str | None
    local_uri: str
    remote_uri: str
    remote_target: str | None
    route_set: tuple[str, ...]
    cseq: int


def _without_tag(address: Address) -> str:
    params = {k: v for k, v in address.params.items() if k != "tag"}
    return str(Address(address.uri, address.display_name, params))


def read_dialog(request: Request) -> DialogRequest:
    """The dialog pieces of a SUBSCRIBE; Rejection(400) when Contact is unusable."""
    try:
        contacts = request.contacts
        route_set = tuple(str(a) for a in request.addresses("record-route"))
        local, remote = request.to_addr, request.from_addr
        cseq = request.cseq.number
    except ParseError as exc:
        raise Rejection(400, exc.reason) from None
    target: str | None = None
    if contacts:
        if len(contacts) != 1 or contacts[0].wildcard:
            raise Rejection(400, "SUBSCRIBE needs exactly one Contact")
        target = str(contacts[0].uri)
    return DialogRequest(
        call_id=request.call_id,
        remote_tag=remote.tag or "",
        local_tag=local.tag,
        local_uri=_without_tag(local),
        remote_uri=_without_tag(remote),
        remote_target=target,
        route_set=route_set,
        cseq=cseq,
    )


def accepts(request: Request, content_type: str) -> bool:
    """True when the SUBSCRIBE's Accept admits ``content_type`` (RFC 6665 4.2.1.1;
    no Accept means the package's default type, RFC 3261 20.1)."""
    values = request.get_all("accept")
    if not values:
        return True
    main, _, _ = content_type.partition("/")
    for value in values:
        media = value.split(";", 1)[0].strip().lower()
        if media in ("*/*", f"{main}/*", content_type):
            return True
    return False
