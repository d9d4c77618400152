"""The Via header value (RFC 3261 20.42, 18.2, 25.1; RFC 3581 rport).

``SIP/2.0/UDP host:port;branch=z9hG4bK...;received=...;rport=...``. LWS is
allowed around '/', ':' and ';' (RFC 3261 25.1 SLASH, COLON, SEMI; RFC 4475
3.1.1.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from centrex.sip.errors import ParseError
from centrex.sip.fields import parse_params, render_params
from centrex.sip.headers import first_value, split_values
from centrex.sip.uri import is_valid_host, parse_host_port, parse_port

#: RFC 3261 8.1.1.7: branches of RFC 3261 elements start with this cookie.
MAGIC_COOKIE: Final = "z9hG4bK"

RELIABLE_TRANSPORTS: Final = frozenset({"TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})

_TOKEN: Final = r"[A-Za-z0-9\-.!%*_+`'~]+"
_VIA_RE: Final = re.compile(
    rf"[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]+"
    r"(\[[^\]]*\]|[^ \t:;\[\]]+)(?:[ \t]*:[ \t]*([^ \t;]*))?"
)
_TTL_RE: Final = re.compile(r"[0-9]{1,3}")
#: The transports the usual form of a Via names, as ``Via.parse`` returns them.
_USUAL_TRANSPORTS: Final = frozenset({"UDP", "TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})


def _bad(detail: str) -> ParseError:
    return ParseError(f"Bad Via: {detail}", 400)


def is_rfc3261_branch(branch: str | None) -> bool:
    """True when ``branch`` carries the magic cookie (RFC 3261 17.2.3)."""
    return branch is not None and branch.startswith(MAGIC_COOKIE)


@dataclass(slots=True)
class Via:
    """One Via value (RFC 3261 20.42): sent-protocol, sent-by and parameters.

    ``transport`` is upper-case; ``host`` keeps an IPv6 reference in brackets;
    ``params`` has lower-case names and values as written (None for a flag,
    e.g. a bare ``rport`` of RFC 3581).
    """

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol_name: str = "SIP"
    version: str = "2.0"

    # Written out, not generated: a compiled build compiles this one (the
    # dataclass's own __init__ is made at import, and runs interpreted).
    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        protocol_name: str = "SIP",
        version: str = "2.0",
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.params = {} if params is None else params
        self.protocol_name = protocol_name
        self.version = version

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one via-parm; ParseError("Bad Via: ...", 400) when malformed."""
        if text.startswith("SIP/2.0/"):
            # The usual form, "SIP/2.0/UDP host:port;params" with no LWS inside
            # the sent-by, is cut with find; any other goes to the pattern.
            space = text.find(" ", 8)
            transport = text[8:space]
            if space > 8 and transport in _USUAL_TRANSPORTS:
                semi = text.find(";", space)
                try:
                    sent_by = parse_host_port(
                        text[space + 1 :] if semi < 0 else text[space + 1 : semi]
                    )
                except ParseError:
                    pass  # the pattern's way gives the error
                else:
                    params = parse_params(text, "Via", semi) if semi >= 0 else {}
                    _check_params(params)
                    # (Via by name, not cls: a direct call when compiled)
                    return Via(transport, sent_by[0], sent_by[1], params)
        m = _VIA_RE.match(text)
        if not m:
            raise _bad("expected SIP/2.0/<transport> <host>")
        name, version, transport, host, port_text = m.groups()
        if not is_valid_host(host):
            raise _bad("bad host")
        port: int | None = None
        if port_text is not None:
            try:
                port = parse_port(port_text)
            except ValueError:
                raise _bad("bad port") from None
        params = parse_params(text, "Via", m.end())
        _check_params(params)
        return Via(transport.upper(), host, port, params, name.upper(), version)

    def __str__(self) -> str:
        sent_by = self.host if self.port is None else f"{self.host}:{self.port}"
        head = f"{self.protocol_name}/{self.version}/{self.transport} {sent_by}"
        return head + render_params(self.params) if self.params else head

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """The sent-by host and port (RFC 3261 18.2.1)."""
        return self.host, self.port

    @property
    def branch(self) -> str | None:
        """The ``branch`` transaction identifier (RFC 3261 8.1.1.7)."""
        return self.params.get("branch")

    @property
    def is_rfc3261_branch(self) -> bool:
        """True when the branch starts with ``MAGIC_COOKIE`` (RFC 3261 17.2.3)."""
        return is_rfc3261_branch(self.branch)

    @property
    def received(self) -> str | None:
        """The ``received`` source address a server added (RFC 3261 18.2.1)."""
        return self.params.get("received")

    @property
    def has_rport(self) -> bool:
        """True when ``rport`` is present, with or without a value (RFC 3581 4)."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The ``rport`` value a server filled in (RFC 3581 4), None if absent or bare."""
        value = self.params.get("rport")
        return None if value is None else int(value)

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter (RFC 3261 18.2.2)."""
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        """The ``ttl`` parameter for multicast (RFC 3261 18.1.1), or None."""
        value = self.params.get("ttl")
        return None if value is None else int(value)

    @property
    def reliable(self) -> bool:
        """True for a stream or otherwise reliable transport (RFC 3261 17.1.1.2)."""
        return self.transport in RELIABLE_TRANSPORTS


def _check_params(params: dict[str, str | None]) -> None:
    """Check the values of the parameters RFC 3261 20.42 and RFC 3581 define."""
    for name in ("branch", "received", "maddr"):
        if name in params:
            value = params[name]
            if value is None or value.startswith('"'):
                raise _bad(f"{name} needs a value")
    maddr = params.get("maddr")
    if maddr is not None and not is_valid_host(maddr):
        raise _bad("bad maddr")
    rport = params.get("rport")
    if rport is not None:
        try:
            parse_port(rport)
        except ValueError:
            raise _bad("bad rport") from None
    if "ttl" in params:
        ttl = params["ttl"]
        if ttl is None or not _TTL_RE.fullmatch(ttl) or int(ttl) > 255:
            raise _bad("bad ttl")


def parse_via_list(text: str) -> list[Via]:
    """Parse a Via header value holding one or more comma-separated via-parms."""
    values = split_values(text)
    if not values:
        raise _bad("empty")
    return [Via.parse(v) for v in values]


def parse_first_via(text: str) -> Via:
    """Parse the first via-parm of a Via header value, not the ones after it."""
    first = first_value(text)[0]
    if not first:
        raise _bad("empty")
    return Via.parse(first)
