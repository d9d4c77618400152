"""Session Description Protocol (RFC 8866, formerly RFC 4566): parse, read, rewrite, render.

Enough structure for a media relay: origin, connection addresses, media ports and
attributes are typed and editable; every other line (i=, u=, e=, p=, b=, t=, r=,
z=, k=, unknown types) is kept verbatim in its place. A modelled line that is not
edited renders exactly as received, even with non-canonical spacing, so
parse-then-render changes only what the caller changed. Input may use LF or CRLF
line ends; output uses CRLF (RFC 8866 5). Malformed input raises ParseError (400).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal, TypeAlias, cast

from centrex.sip.errors import ParseError

Direction: TypeAlias = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
#: The media direction attributes (RFC 8866 6.7.1-6.7.4).
DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")

_LINE_TYPES = frozenset(string.ascii_lowercase)  # RFC 8866 9: one lower-case letter
_PAYLOAD_TYPES = frozenset(str(n) for n in range(128))  # RTP payload types (RFC 3551 6)


def _bad(what: str) -> ParseError:
    return ParseError(f"Bad SDP: {what}", 400)


def _number(text: str, what: str, maximum: int) -> int:
    """``text`` as a decimal integer in ``0..maximum``, else ParseError naming ``what``."""
    # ASCII only: isdigit() also accepts '²', which int() refuses; the length bound
    # keeps int() far from its digit limit.
    if not (0 < len(text) <= len(str(maximum)) and text.isascii() and text.isdigit()):
        raise _bad(what)
    value = int(text)
    if value > maximum:
        raise _bad(what)
    return value


@dataclass
class _Verbatim:
    """A modelled line that renders its received text for as long as its fields are unchanged."""

    _source: tuple[tuple[object, ...], str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def _fields(self) -> tuple[object, ...]:
        # Lists are copied: an in-place edit of one must not also edit the snapshot.
        values = (getattr(self, f.name) for f in fields(self) if f.init and f.name != "lines")
        return tuple(tuple(v) if isinstance(v, list) else v for v in values)

    def _render(self) -> str:
        raise NotImplementedError

    def _remember(self, text: str) -> None:
        self._source = (self._fields(), text)

    def _text(self) -> str:
        source = self._source
        if source is not None and source[0] == self._fields():
            return source[1]
        return self._render()

    def __str__(self) -> str:
        return self._text()


@dataclass
class RawLine:
    """A line this module does not model (b=, t=, k=, ...), kept as received (RFC 8866 5)."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


@dataclass
class Attribute:
    """An a= line (RFC 8866 5.13): ``a=name`` (a flag, value None) or ``a=name:value``."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        """The attribute from the text after ``a=``; any text is a valid attribute."""
        name, colon, value = text.partition(":")
        return cls(name, value if colon else None)

    def __str__(self) -> str:
        return f"a={self.name}" if self.value is None else f"a={self.name}:{self.value}"


@dataclass
class Origin(_Verbatim):
    """The o= line (RFC 8866 5.2): who created the session and which version of it this is.

    A changed description must carry a higher ``sess_version`` (RFC 3264 8).
    """

    username: str
    sess_id: str
    sess_version: int
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, text: str) -> Origin:
        """The origin from the text after ``o=``."""
        parts = text.split()
        if len(parts) != 6:
            raise _bad("bad o= line")
        user, sess_id, version, nettype, addrtype, address = parts
        version_number = _number(version, "bad o= line", 10**40)
        origin = cls(user, sess_id, version_number, nettype, addrtype, address)
        origin._remember("o=" + text)
        return origin

    def _render(self) -> str:
        return (
            f"o={self.username} {self.sess_id} {self.sess_version} {self.nettype} "
            f"{self.addrtype} {self.address}"
        )


@dataclass
class Connection(_Verbatim):
    """A c= line (RFC 8866 5.7): ``c=IN IP4 203.0.113.5``.

    A multicast address carries a suffix: ``/ttl[/count]`` for IP4, ``/count``
    for IP6. An address of another address type is kept whole.
    """

    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None

    @classmethod
    def parse(cls, text: str) -> Connection:
        """The connection from the text after ``c=``."""
        parts = text.split()
        if len(parts) != 3:
            raise _bad("bad c= line")
        nettype, addrtype, address = parts
        ttl = count = None
        kind = addrtype.upper()
        if kind in ("IP4", "IP6") and "/" in address:
            address, *suffix = address.split("/")
            if kind == "IP4" and len(suffix) <= 2:
                ttl = _number(suffix[0], "bad c= line", 255)
                if len(suffix) == 2:
                    count = _number(suffix[1], "bad c= line", 65535)
            elif kind == "IP6" and len(suffix) == 1:
                count = _number(suffix[0], "bad c= line", 65535)
            else:
                raise _bad("bad c= line")
        if not address:
            raise _bad("bad c= line")
        connection = cls(nettype, addrtype, address, ttl, count)
        connection._remember("c=" + text)
        return connection

    @property
    def is_hold(self) -> bool:
        """True for the RFC 2543 way of putting a call on hold, c=0.0.0.0 (RFC 3264 8.4)."""
        return self.address == "0.0.0.0"

    def _render(self) -> str:
        suffix = "".join(f"/{n}" for n in (self.ttl, self.count) if n is not None)
        return f"c={self.nettype} {self.addrtype} {self.address}{suffix}"


Line: TypeAlias = RawLine | Attribute | Origin | Connection

_PARSERS: dict[str, Callable[[str], Line]] = {
    "a": Attribute.parse,
    "c": Connection.parse,
    "o": Origin.parse,
}


@dataclass(frozen=True)
class RtpMap:
    """An a=rtpmap value (RFC 8866 6.6): ``96 opus/48000/2``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, text: str) -> RtpMap:
        """The mapping from the text after ``a=rtpmap:``."""
        bad = "bad rtpmap attribute"
        pt, _, rest = text.strip().partition(" ")
        encoding, *rate = rest.strip().split("/")
        if not encoding or not 1 <= len(rate) <= 2:
            raise _bad(bad)
        channels = _number(rate[1], bad, 255) if len(rate) == 2 else None
        return cls(_number(pt, bad, 127), encoding, _number(rate[0], bad, 10**9), channels)

    def __str__(self) -> str:
        channels = "" if self.channels is None else f"/{self.channels}"
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{channels}"


@dataclass(frozen=True)
class Rtcp:
    """An a=rtcp value (RFC 3605 2.1): the RTCP port, and its address when given."""

    port: int
    address: str | None = None
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, text: str) -> Rtcp:
        """The RTCP target from the text after ``a=rtcp:``."""
        parts = text.split()
        if len(parts) not in (1, 4):
            raise _bad("bad rtcp attribute")
        port = _number(parts[0], "bad rtcp attribute", 65535)
        return cls(port) if len(parts) == 1 else cls(port, parts[3], parts[2], parts[1])

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.nettype} {self.addrtype} {self.address}"


class _Section:
    """What the session level and a media section share: lines, attributes, c=, direction."""

    lines: list[Line]
    # Line types a new c= line goes in front of (RFC 8866 5 fixes the order of lines).
    _BEFORE_CONNECTION: ClassVar[str]

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        """The a= lines in order; edit through the objects or add/set/remove."""
        return tuple(line for line in self.lines if isinstance(line, Attribute))

    def get(self, name: str) -> Attribute | None:
        """The first attribute called ``name`` (names are compared exactly), or None."""
        return next((a for a in self.attributes if a.name == name), None)

    def get_all(self, name: str) -> list[Attribute]:
        """Every attribute called ``name``, in order."""
        return [a for a in self.attributes if a.name == name]

    def has(self, name: str) -> bool:
        """True when an attribute called ``name`` is present."""
        return self.get(name) is not None

    def add(self, name: str, value: str | None = None) -> Attribute:
        """Append an attribute at the end of the section, where RFC 8866 5 puts a= lines."""
        attribute = Attribute(name, value)
        self.lines.append(attribute)
        return attribute

    def set(self, name: str, value: str | None = None) -> Attribute:
        """Give the first ``name`` attribute this value in place and drop the others; else add."""
        existing = self.get_all(name)
        if not existing:
            return self.add(name, value)
        existing[0].value = value
        self._drop(existing[1:])
        return existing[0]

    def remove(self, name: str) -> int:
        """Remove every attribute called ``name``; return how many there were."""
        existing = self.get_all(name)
        self._drop(existing)
        return len(existing)

    def _drop(self, lines: list[Attribute] | list[Connection]) -> None:
        doomed = {id(line) for line in lines}  # by identity: equal a= lines are still two
        self.lines[:] = [line for line in self.lines if id(line) not in doomed]

    @property
    def connection(self) -> Connection | None:
        """This section's own c= line (RFC 8866 5.7), or None."""
        return next((c for c in self.lines if isinstance(c, Connection)), None)

    @connection.setter
    def connection(self, connection: Connection | None) -> None:
        existing = [c for c in self.lines if isinstance(c, Connection)]
        if connection is None:
            self._drop(existing)
        elif existing:
            self.lines[self.lines.index(existing[0])] = connection
            self._drop(existing[1:])
        else:
            kinds = [str(line)[:1] for line in self.lines]
            at = next((i for i, k in enumerate(kinds) if k in self._BEFORE_CONNECTION), len(kinds))
            self.lines.insert(at, connection)

    @property
    def direction(self) -> Direction | None:
        """This section's own direction attribute (RFC 8866 6.7), or None when it has none."""
        attribute = next((a for a in self.attributes if a.name in DIRECTIONS), None)
        return None if attribute is None else cast(Direction, attribute.name)

    @direction.setter
    def direction(self, direction: Direction | None) -> None:
        existing = [a for a in self.attributes if a.name in DIRECTIONS]
        if direction is None:
            self._drop(existing)
        elif existing:
            existing[0].name, existing[0].value = direction, None
            self._drop(existing[1:])
        else:
            self.add(direction)


@dataclass
class MediaDescription(_Verbatim, _Section):
    """A media section (RFC 8866 5.14): the m= line and the lines up to the next m=.

    ``formats`` are the RTP payload types for RTP profiles and other tokens for
    other protocols; ``str()`` renders the whole section, ``m_line`` the m= line.
    """

    media: str
    port: int
    proto: str
    formats: list[str] = field(default_factory=list)
    port_count: int | None = None
    lines: list[Line] = field(default_factory=list)

    _BEFORE_CONNECTION: ClassVar[str] = "bka"

    @classmethod
    def parse(cls, text: str) -> MediaDescription:
        """The section, without its other lines yet, from the text after ``m=``."""
        parts = text.split()
        if len(parts) < 3:
            raise _bad("bad m= line")
        media, port_text, proto, *formats = parts
        port_text, slash, count_text = port_text.partition("/")
        port = _number(port_text, "bad m= line", 65535)
        count = _number(count_text, "bad m= line", 65535) if slash else None
        section = cls(media, port, proto, formats, count)
        section._remember("m=" + text)
        return section

    @property
    def rejected(self) -> bool:
        """True for a stream refused or removed with port zero (RFC 3264 6, 8.2)."""
        return self.port == 0

    @property
    def payload_types(self) -> list[int]:
        """The formats that are RTP payload type numbers (0-127)."""
        return [int(f) for f in self.formats if f in _PAYLOAD_TYPES]

    def rtpmaps(self) -> list[RtpMap]:
        """Every well-formed a=rtpmap; malformed ones are ignored (RFC 8866 5.13)."""
        maps = []
        for attribute in self.get_all("rtpmap"):
            try:
                maps.append(RtpMap.parse(attribute.value or ""))
            except ParseError:
                continue
        return maps

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The a=rtpmap of one payload type, or None."""
        return next((m for m in self.rtpmaps() if m.payload_type == payload_type), None)

    def fmtp(self, payload_type: int) -> str | None:
        """The format parameters of one payload type (RFC 8866 6.15), or None."""
        for attribute in self.get_all("fmtp"):
            pt, _, params = (attribute.value or "").partition(" ")
            if pt == str(payload_type):
                return params
        return None

    @property
    def rtcp(self) -> Rtcp | None:
        """The a=rtcp target (RFC 3605), or None when absent or malformed."""
        attribute = self.get("rtcp")
        try:
            return None if attribute is None else Rtcp.parse(attribute.value or "")
        except ParseError:
            return None

    @rtcp.setter
    def rtcp(self, rtcp: Rtcp | None) -> None:
        if rtcp is None:
            self.remove("rtcp")
        else:
            self.set("rtcp", str(rtcp))

    @property
    def m_line(self) -> str:
        """The m= line alone."""
        return self._text()

    def _render(self) -> str:
        count = "" if self.port_count is None else f"/{self.port_count}"
        formats = "".join(f" {f}" for f in self.formats)
        return f"m={self.media} {self.port}{count} {self.proto}{formats}"

    def __str__(self) -> str:
        return "".join(f"{line}\r\n" for line in [self.m_line, *self.lines])


@dataclass
class SessionDescription(_Section):
    """A whole SDP body (RFC 8866 5): session-level lines, then media sections."""

    lines: list[Line] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    _BEFORE_CONNECTION: ClassVar[str] = "btrzka"

    @classmethod
    def parse(cls, body: bytes | str) -> SessionDescription:
        """Parse an SDP body; LF or CRLF line ends, UTF-8 (RFC 8866 5).

        Bytes that are not UTF-8 are carried through unchanged (surrogate escapes):
        a relay must not alter s= or i= text written in another charset.
        """
        if isinstance(body, bytes):
            text = body.decode("utf-8", "surrogateescape")
        else:
            try:
                body.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise _bad("not encodable as UTF-8") from None
            text = body
        raw = [line.removesuffix("\r") for line in text.split("\n")]
        while raw and not raw[-1]:
            raw.pop()  # the final line end, and blank lines some peers append
        if not raw or not raw[0].startswith("v="):
            raise _bad("missing v= line")
        _number(raw[0][2:], "bad v= line", 9)
        sdp = cls()
        lines = sdp.lines
        for number, line in enumerate(raw, 1):
            if len(line) < 2 or line[1] != "=" or line[0] not in _LINE_TYPES:
                raise _bad(f"line {number} is not of the form x=...")
            kind, value = line[0], line[2:]
            if kind == "m":
                sdp.media.append(MediaDescription.parse(value))
                lines = sdp.media[-1].lines
            else:
                parser = _PARSERS.get(kind)
                lines.append(RawLine(kind, value) if parser is None else parser(value))
        return sdp

    def _raw(self, kind: str) -> RawLine | None:
        return next((x for x in self.lines if isinstance(x, RawLine) and x.kind == kind), None)

    @property
    def version(self) -> int:
        """The protocol version from v= (RFC 8866 5.1): 0."""
        line = self._raw("v")
        return 0 if line is None else int(line.value)

    @property
    def origin(self) -> Origin | None:
        """The o= line (RFC 8866 5.2), edited in place; None only when a peer omitted it."""
        return next((o for o in self.lines if isinstance(o, Origin)), None)

    @property
    def session_name(self) -> str | None:
        """The s= text (RFC 8866 5.3), or None when a peer omitted it."""
        line = self._raw("s")
        return None if line is None else line.value

    def effective_connection(self, media: MediaDescription) -> Connection | None:
        """Where a stream's media goes: its own c= line, else the session's (RFC 8866 5.7)."""
        return media.connection or self.connection

    def effective_direction(self, media: MediaDescription) -> Direction:
        """A stream's direction: its own, else the session's, else sendrecv (RFC 8866 6.7)."""
        return media.direction or self.direction or "sendrecv"

    def set_connection_address(
        self, address: str, addrtype: str | None = None, *, rtcp: bool = True, origin: bool = False
    ) -> None:
        """Point every c= line at ``address``, as a media relay does (RFC 8866 5.7).

        ``addrtype`` defaults to IP6 for an address with a colon, else IP4. Any
        TTL or count suffix is dropped (a relay address is unicast). With
        ``rtcp``, a=rtcp lines that name an address follow it (RFC 3605 2.1); with
        ``origin``, so does the o= address. When a stream has no c= line and the
        session has none either, a session-level one is added.
        """
        addrtype = addrtype or ("IP6" if ":" in address else "IP4")
        sections: list[_Section] = [self, *self.media]
        for line in (x for section in sections for x in section.lines):
            if isinstance(line, Connection):
                line.nettype, line.addrtype, line.address = "IN", addrtype, address
                line.ttl = line.count = None
        if self.connection is None and any(m.connection is None for m in self.media):
            self.connection = Connection("IN", addrtype, address)
        for attribute in (a for m in self.media if rtcp for a in m.get_all("rtcp")):
            try:
                target = Rtcp.parse(attribute.value or "")
            except ParseError:
                continue  # malformed: ignored, as RFC 8866 5.13 says
            if target.address is not None:  # all of them: duplicates are kept, not lost
                attribute.value = str(Rtcp(target.port, address, addrtype, "IN"))
        if origin and self.origin is not None:
            self.origin.nettype, self.origin.addrtype = "IN", addrtype
            self.origin.address = address

    def __str__(self) -> str:
        session = "".join(f"{line}\r\n" for line in self.lines)
        return session + "".join(str(media) for media in self.media)

    def to_bytes(self) -> bytes:
        """The body as sent: CRLF line ends, UTF-8 (and any received non-UTF-8 bytes)."""
        return str(self).encode("utf-8", "surrogateescape")

    def __bytes__(self) -> bytes:
        return self.to_bytes()
