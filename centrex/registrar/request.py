"""Reading a REGISTER: the checks of RFC 3261 10.3 that need no stored binding.

``read_target`` covers steps 1, 2 and 5 (served domain, Require, the AOR of
To); ``read_contacts`` covers step 6 and the per-contact part of step 7 that
depends on the request alone (expiration intervals, 423). Both are pure and
raise ``Rejection`` with the response to send.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

from centrex.config.settings import RegistrarSettings
from centrex.registrar.aor import aor_of, aor_user, uri_host
from centrex.registrar.binding import Source
from centrex.sip.address import Address
from centrex.sip.errors import ParseError
from centrex.sip.fields import parse_token_list
from centrex.sip.message import Request
from centrex.sip.uri import URI, SipURI

#: Option tags this registrar implements (RFC 3261 8.2.2.3): Path (RFC 3327).
SUPPORTED_OPTIONS: Final = frozenset({"path"})
_MAX_REG_ID: Final = 2**31 - 1


class Rejection(Exception):
    """The final response a REGISTER gets instead of 200: ``status``,
    ``reason`` phrase and extra ``headers`` (Min-Expires, Unsupported, ...)."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers


@dataclass(frozen=True, slots=True)
class Target:
    """Whose bindings a REGISTER is about (RFC 3261 10.3 step 5)."""

    aor: str
    user: str | None

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, aor: str, user: str | None) -> None:
        object.__setattr__(self, "aor", aor)
        object.__setattr__(self, "user", user)


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """One Contact of a REGISTER with its granted expiration (0 removes it)."""

    uri: URI
    text: str
    expires: int
    q: float | None = None
    instance: str | None = None
    reg_id: int | None = None

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        uri: URI,
        text: str,
        expires: int,
        q: float | None = None,
        instance: str | None = None,
        reg_id: int | None = None,
    ) -> None:
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "expires", expires)
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "instance", instance)
        object.__setattr__(self, "reg_id", reg_id)


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """What the decision of RFC 3261 10.3 steps 6 to 8 needs from a REGISTER.

    No ``contacts`` and no ``wildcard`` is a query (10.3 step 8 lists the
    bindings and changes nothing).
    """

    aor: str
    call_id: str
    cseq: int
    source: Source
    contacts: tuple[ContactRequest, ...] = ()
    wildcard: bool = False
    path: tuple[str, ...] = ()
    path_supported: bool = False
    user_agent: str | None = None

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        aor: str,
        call_id: str,
        cseq: int,
        source: Source,
        contacts: tuple[ContactRequest, ...] = (),
        wildcard: bool = False,
        path: tuple[str, ...] = (),
        path_supported: bool = False,
        user_agent: str | None = None,
    ) -> None:
        object.__setattr__(self, "aor", aor)
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "cseq", cseq)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "contacts", contacts)
        object.__setattr__(self, "wildcard", wildcard)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "path_supported", path_supported)
        object.__setattr__(self, "user_agent", user_agent)

    @property
    def is_query(self) -> bool:
        """True for a REGISTER without Contact (RFC 3261 10.2.3)."""
        return not self.contacts and not self.wildcard


def _bad(reason: str) -> Rejection:
    return Rejection(400, reason)


def read_target(
    request: Request,
    domains: Collection[str],
    *,
    case_sensitive: bool,
    alias: Callable[[str], str | None] | None = None,
) -> Target:
    """Steps 1, 2 and 5 of RFC 3261 10.3.

    1. The Request-URI must name a domain this registrar serves (404; 416 for a
       URI that is not SIP or SIPS). ``domains`` are normalized host names
       (``normalize_domain``).
    2. Every option tag in Require must be supported (420 with Unsupported,
       8.2.2.3).
    5. The AOR is the To URI, canonicalized (``aor_of``); it must be a SIP URI
       with a user part in a served domain (404).
    """
    try:
        ruri = request.request_uri
    except ParseError as exc:
        raise _bad(exc.reason) from None
    if not isinstance(ruri, SipURI):
        raise Rejection(416, "Request-URI must be a SIP or SIPS URI")
    if _served(uri_host(ruri), domains, alias) is None:
        raise Rejection(404, "Domain not served here")
    try:
        required = [t for v in request.get_all("Require") for t in parse_token_list(v, "Require")]
        to_uri = request.to_addr.uri
    except ParseError as exc:
        raise _bad(exc.reason) from None
    unsupported = [t for t in required if t.lower() not in SUPPORTED_OPTIONS]
    if unsupported:
        raise Rejection(420, "Bad Extension", (("Unsupported", ", ".join(unsupported)),))
    if not isinstance(to_uri, SipURI):
        raise Rejection(404, "To must be a SIP or SIPS URI")
    aor = aor_of(to_uri, case_sensitive=case_sensitive)
    if aor is None or to_uri.user is None:
        raise Rejection(404, "To has no user part")
    domain = _served(uri_host(to_uri), domains, alias)
    if domain is None:
        raise Rejection(404, "Domain of To not served here")
    # An address of this server stands for its domain: phones often register
    # to an IP, and calls to that user name the domain (or the same IP).
    aor = f"{aor[: aor.rfind('@') + 1]}{domain}"
    return Target(aor, aor_user(aor))


def _served(
    host: str, domains: Collection[str], alias: Callable[[str], str | None] | None
) -> str | None:
    """The served domain ``host`` names: itself, or the one an address of ours stands for."""
    if host in domains:
        return host
    return alias(host) if alias is not None else None


def read_register(
    request: Request,
    target: Target,
    source: Source,
    settings: RegistrarSettings,
) -> RegisterRequest:
    """Steps 6 and the request-only part of step 7 of RFC 3261 10.3.

    6. ``Contact: *`` is only allowed alone and with ``Expires: 0`` (400).
    7. Each contact's interval is its ``expires`` parameter, else the Expires
       header, else ``default_expires``; a non-zero interval below
       ``min_expires`` gets 423 with Min-Expires (10.2.8, 10.3 step 7), one
       above ``max_expires`` is cut to it. Zero removes the binding.
    Path values are kept for the binding (RFC 3327 5.3).
    """
    try:
        contacts = request.contacts
        header_expires = request.expires
        call_id = request.call_id
        cseq = request.cseq.number
        path = tuple(str(a) for a in request.addresses("Path"))
        supported = {
            t.lower()
            for v in request.get_all("Supported")
            for t in parse_token_list(v, "Supported")
        }
        wanted = _unique(
            [_contact(a, header_expires, settings) for a in contacts if not a.wildcard]
        )
    except ParseError as exc:
        raise _bad(exc.reason) from None
    wildcard = any(a.wildcard for a in contacts)
    if wildcard:
        if len(contacts) > 1:
            raise _bad("Contact * must be the only contact")
        if header_expires != 0:
            raise _bad("Contact * requires Expires: 0")
    too_brief = [c for c in wanted if 0 < c.expires < settings.min_expires]
    if too_brief:
        raise Rejection(423, "Interval Too Brief", (("Min-Expires", str(settings.min_expires)),))
    granted = tuple(
        c if c.expires <= settings.max_expires else _with_expires(c, settings.max_expires)
        for c in wanted
    )
    return RegisterRequest(
        aor=target.aor,
        call_id=call_id,
        cseq=cseq,
        source=source,
        contacts=granted,
        wildcard=wildcard,
        path=path,
        path_supported="path" in supported,
        user_agent=request.get("User-Agent"),
    )


def _unique(contacts: list[ContactRequest]) -> list[ContactRequest]:
    """One request per contact URI (19.1.4 equality): the last one listed wins,
    so a phone repeating its Contact gets one binding, not two that both ring."""
    if len(contacts) < 2:
        return contacts  # the usual REGISTER: no URI to hash (19.1.4 keys cost)
    last: dict[URI, ContactRequest] = {}
    for contact in contacts:
        last.pop(contact.uri, None)
        last[contact.uri] = contact
    return list(last.values())


def _contact(
    address: Address, header_expires: int | None, settings: RegistrarSettings
) -> ContactRequest:
    expires = address.expires
    if expires is None:
        expires = settings.default_expires if header_expires is None else header_expires
    instance = address.param("+sip.instance")
    reg_id: int | None = None
    if instance is not None:
        # RFC 5626 6: reg-id means nothing without +sip.instance.
        reg_id = _reg_id(address.param("reg-id"))
    return ContactRequest(
        uri=address.uri,
        text=str(address.uri),
        expires=expires,
        q=address.q,
        instance=instance,
        reg_id=reg_id,
    )


def _reg_id(text: str | None) -> int | None:
    """The ``reg-id`` Contact parameter: 1 to 2**31-1 (RFC 5626 4.2)."""
    if text is None:
        return None
    digits = text.isascii() and text.isdigit()  # int() refuses other digits ("²")
    if not digits or len(text) > 10 or not 1 <= int(text) <= _MAX_REG_ID:
        raise ParseError("Bad reg-id parameter", 400)
    return int(text)


def _with_expires(contact: ContactRequest, expires: int) -> ContactRequest:
    return ContactRequest(
        contact.uri, contact.text, expires, contact.q, contact.instance, contact.reg_id
    )
