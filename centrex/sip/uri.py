"""SIP, SIPS, tel and other URIs (RFC 3261 19.1, 25.1; RFC 3966).

Components are kept as written (escaped form) so that a URI renders back to the
text it was parsed from, apart from the scheme and parameter names, which are
lower-cased. Comparison follows RFC 3261 19.1.4 and works on unescaped values.

``parse_uri`` runs on the Request-URI of every request, so it uses ``str``
methods and a few compiled patterns rather than a general grammar engine.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from centrex.sip.errors import ParseError
from centrex.sip.fields import render_params

_V = TypeVar("_V")

_HEX: Final = "0-9A-Fa-f"
# RFC 3261 25.1: unreserved = alphanum / mark. Each class below admits '%'; the
# escapes themselves are checked once per URI by _BAD_ESCAPE_RE, which is much
# faster than an "(char|escape)+" alternation.
_UNRESERVED: Final = r"A-Za-z0-9\-_.!~*'()"
_USER_RE: Final = re.compile(rf"[{_UNRESERVED}&=+$,;?/%]+")
_PASSWORD_RE: Final = re.compile(rf"[{_UNRESERVED}&=+$,%]*")
_PCHARS: Final = rf"[{_UNRESERVED}\[\]/:&+$%]+"
_PARAMS_RE: Final = re.compile(rf"(?:;{_PCHARS}(?:={_PCHARS})?)*")
_HNAME_RE: Final = re.compile(rf"[{_UNRESERVED}\[\]/?:+$%]+")
_HVALUE_RE: Final = re.compile(rf"[{_UNRESERVED}\[\]/?:+$%]*")
_BAD_ESCAPE_RE: Final = re.compile(rf"%(?![{_HEX}]{{2}})")
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# RFC 2396 uric plus the '[', ']' and '#' of RFC 3986, for schemes we do not know.
_OPAQUE_RE: Final = re.compile(rf"[{_UNRESERVED};/?:@&=+$,\[\]#%]+")
# host = hostname / IPv4address / IPv6reference; a top label starts with a letter.
# Underscores are beyond RFC 3261 25.1 but common in real host names (container
# and SRV-style names), so they are accepted as Kamailio and OpenSIPS do.
_DOMAINLABEL: Final = r"[A-Za-z0-9_](?:[A-Za-z0-9\-_]*[A-Za-z0-9_])?"
_TOPLABEL: Final = r"[A-Za-z_](?:[A-Za-z0-9\-_]*[A-Za-z0-9_])?"
_HOST: Final = (
    r"(\[[0-9A-Fa-f:.]+\])|([0-9]{1,3}(?:\.[0-9]{1,3}){3})"
    rf"|((?:{_DOMAINLABEL}\.)*{_TOPLABEL}\.?)"
)
_HOST_RE: Final = re.compile(_HOST)
_HOSTPORT_RE: Final = re.compile(rf"(?:{_HOST})(?::([0-9]{{1,5}}))?")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
_ESCAPE_SEQ_RE: Final = re.compile(rf"%([{_HEX}]{{2}})")
# RFC 3966 5.1: global numbers are '+' and digits, local ones hex digits, '*', '#'.
# The lookahead asks for one real digit without the backtracking of a
# "sep* digit sep*" pattern, which is quadratic on long hostile input.
_TEL_GLOBAL_RE: Final = re.compile(r"\+(?=[0-9\-.()]*[0-9])[0-9\-.()]+")
_TEL_LOCAL_RE: Final = re.compile(r"(?=[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#])[0-9A-Fa-f*#\-.()]+")
_TEL_SEPARATORS: Final = str.maketrans("", "", "-.()")

# RFC 3261 19.1.4: these must match whenever either URI has them.
_ALWAYS_COMPARED: Final = ("user", "ttl", "method", "maddr", "transport")
_ABSENT: Final = "\x00absent"
_USER_SAFE: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;?/"
)


def _bad(detail: str) -> ParseError:
    # The reason phrase never echoes the input: it may hold CR/LF.
    return ParseError(f"Bad URI: {detail}", 400)


def _unescape_key(text: str) -> str:
    """Each ``%HH`` escape replaced by the one character with that code.

    Lossless (bytes read as Latin-1), so fit for comparison (RFC 3261 19.1.4).
    """
    if "%" not in text:
        return text
    return _ESCAPE_SEQ_RE.sub(lambda m: chr(int(m.group(1), 16)), text)


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes (RFC 3261 19.1.2) as UTF-8, for display and use.

    Invalid UTF-8 becomes U+FFFD; comparisons do not use this function.
    """
    if "%" not in text:
        return text
    return urllib.parse.unquote(text)


def _canonical_user(user: str) -> str:
    """User part with needless escapes decoded and the others in upper-case hex."""
    if "%" not in user:
        return user

    def fix(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if ch in _USER_SAFE else "%" + m.group(1).upper()

    return _ESCAPE_SEQ_RE.sub(fix, user)


def _host_key(host: str) -> str:
    """Host for comparison: case-folded, IPv6 references in their compressed form."""
    if host.startswith("["):
        try:
            return "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        except ValueError:
            return host.lower()
    return host.lower()


def _host_ok(ipv6: str | None, ipv4: str | None) -> bool:
    """The checks the host pattern cannot make: a real IPv6 address, octets <= 255."""
    if ipv6 is not None:
        try:
            ipaddress.IPv6Address(ipv6[1:-1])
        except ValueError:
            return False
    elif ipv4 is not None:
        return all(int(octet) <= 255 for octet in ipv4.split("."))
    return True


#: Hosts and host:ports checked lately, by their text, as ``_PARSED`` keeps
#: URIs: a server sees the same few domains and phone addresses in most
#: messages. Only valid ones are kept, this many at most, each this long at most.
HOST_CACHE_SIZE: Final = 1024
HOST_CACHE_MAX_TEXT: Final = 128
_VALID_HOSTS: Final[dict[str, bool]] = {}
_HOST_PORTS: Final[dict[str, tuple[str, int | None]]] = {}


def _remember(cache: dict[str, _V], text: str, value: _V, size: int, max_text: int) -> None:
    """Keep ``value`` under ``text`` in one of the bounded caches of this
    module: only short texts, at most ``size`` of them; a full cache starts
    over (a flood of distinct texts costs what it cost without one)."""
    if len(text) <= max_text:
        if len(cache) >= size:
            cache.clear()
        cache[text] = value


def is_valid_host(host: str) -> bool:
    """True for a hostname, IPv4address or IPv6reference (RFC 3261 25.1)."""
    if host in _VALID_HOSTS:
        return True
    m = _HOST_RE.fullmatch(host)
    if m is None or not _host_ok(m.group(1), m.group(2)):
        return False
    _remember(_VALID_HOSTS, host, True, HOST_CACHE_SIZE, HOST_CACHE_MAX_TEXT)
    return True


def parse_port(text: str) -> int:
    """A port number 0..65535; ValueError otherwise."""
    if not _PORT_RE.fullmatch(text):
        raise ValueError(text)
    port = int(text)
    if port > 65535:
        raise ValueError(text)
    return port


def parse_host_port(text: str) -> tuple[str, int | None]:
    """Split ``hostport`` (RFC 3261 25.1) into host and optional port.

    Raises ParseError("Bad URI: ...") on a bad host or port.
    """
    found = _HOST_PORTS.get(text)
    if found is not None:
        return found
    m = _HOSTPORT_RE.fullmatch(text)
    if m is None:
        raise _bad("bad host or port")
    ipv6, ipv4, name, port_text = m.groups()
    if not _host_ok(ipv6, ipv4):
        raise _bad("bad host")
    host = ipv6 or ipv4 or name
    port: int | None = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise _bad("bad port")
    found = (host, port)
    _remember(_HOST_PORTS, text, found, HOST_CACHE_SIZE, HOST_CACHE_MAX_TEXT)
    return found


def _parse_uri_params(text: str) -> dict[str, str | None]:
    """``*( ";" pname [ "=" pvalue ] )`` (RFC 3261 19.1.1, RFC 3966 3)."""
    if not _PARAMS_RE.fullmatch(text):
        raise _bad("bad parameter")
    # Matched whole: neither pname nor pvalue holds ';' or '=', and pvalue is
    # never empty, so a split gives the pairs (findall again cost a third of
    # the whole: 912 -> 580 ns for ";transport=UDP", compiled).
    params: dict[str, str | None] = {}
    if not text:
        return params
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        key = name.lower()
        if key in params:
            raise _bad("duplicate parameter")
        params[key] = value if eq else None
    return params


def _param_key(params: dict[str, str | None]) -> dict[str, str | None]:
    return {
        _unescape_key(k).lower(): None if v is None else _unescape_key(v).lower()
        for k, v in params.items()
    }


@dataclass(slots=True, eq=False)
class SipURI:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 19.1.1).

    ``user``, ``password``, parameter and header values are kept escaped, as
    written; use the ``unescaped_*`` accessors for their values. Equality and
    hashing follow RFC 3261 19.1.4. Treat instances as immutable: use
    :meth:`replace` to derive a changed URI.
    """

    host: str
    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    # Written out, not generated: a compiled build compiles this one (the
    # dataclass's own __init__ is made at import, and runs interpreted).
    def __init__(
        self,
        host: str,
        scheme: str = "sip",
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.scheme = scheme
        self.user = user
        self.password = password
        self.port = port
        self.params = {} if params is None else params
        self.headers = {} if headers is None else headers

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += (":", self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += (":", str(self.port))
        if self.params:
            parts.append(render_params(self.params))
        if self.headers:
            parts += ("?", "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(parts)

    # -- comparison (RFC 3261 19.1.4) -------------------------------------

    def _headers_key(self) -> dict[str, str]:
        return {_unescape_key(k).lower(): _unescape_key(v).lower() for k, v in self.headers.items()}

    def _base_key(self) -> tuple[object, ...]:
        return (
            self.scheme,
            None if self.user is None else _unescape_key(self.user),
            None if self.password is None else _unescape_key(self.password),
            _host_key(self.host),
            self.port,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipURI):
            return NotImplemented
        if self._base_key() != other._base_key():
            return False
        mine, theirs = _param_key(self.params), _param_key(other.params)
        for name in _ALWAYS_COMPARED:
            if mine.get(name, _ABSENT) != theirs.get(name, _ABSENT):
                return False
        for name, value in mine.items():
            if name in theirs and theirs[name] != value:
                return False
        return self._headers_key() == other._headers_key()

    def __hash__(self) -> int:
        params = _param_key(self.params)
        compared = tuple(params.get(name, _ABSENT) for name in _ALWAYS_COMPARED)
        return hash((self._base_key(), compared, frozenset(self._headers_key().items())))

    # -- accessors ----------------------------------------------------------

    @property
    def secure(self) -> bool:
        """True for a ``sips:`` URI (RFC 3261 19.1.1)."""
        return self.scheme == "sips"

    @property
    def unescaped_user(self) -> str | None:
        """The user part with ``%HH`` escapes decoded."""
        return None if self.user is None else unescape(self.user)

    @property
    def unescaped_password(self) -> str | None:
        """The password with ``%HH`` escapes decoded."""
        return None if self.password is None else unescape(self.password)

    def param(self, name: str) -> str | None:
        """The unescaped value of parameter ``name`` (None if absent or a flag)."""
        value = self.params.get(name.lower())
        return None if value is None else unescape(value)

    def unescaped_headers(self) -> dict[str, str]:
        """The URI headers (RFC 3261 19.1.5) with escapes decoded."""
        return {unescape(k): unescape(v) for k, v in self.headers.items()}

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased (RFC 3261 19.1.1)."""
        value = self.param("transport")
        return None if value is None else value.lower()

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter (RFC 3261 19.1.1)."""
        return self.param("maddr")

    @property
    def lr(self) -> bool:
        """True when the loose-routing flag ``lr`` is present (RFC 3261 19.1.1)."""
        return "lr" in self.params

    @property
    def user_param(self) -> str | None:
        """The ``user`` parameter (``phone``, ``ip``, ...), lower-cased."""
        value = self.param("user")
        return None if value is None else value.lower()

    @property
    def method_param(self) -> str | None:
        """The ``method`` parameter (RFC 3261 19.1.1), as written."""
        return self.param("method")

    @property
    def host_port(self) -> str:
        """``host`` or ``host:port`` as written in the URI."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def default_port(self) -> int:
        """The port to use when none is given: 5061 for SIPS or TLS, else 5060."""
        if self.port is not None:
            return self.port
        return 5061 if self.secure or self.transport == "tls" else 5060

    def aor(self) -> str:
        """The address-of-record key of this URI (RFC 3261 10.3 step 5).

        ``sip:user@host``: scheme forced to ``sip``, no password, port, parameters
        or headers; host lower-cased without a trailing dot; needless escapes in
        the user part removed, so equal users give equal keys.
        """
        host = self.aor_host()
        if self.user is None:
            return f"sip:{host}"
        return f"sip:{_canonical_user(self.user)}@{host}"

    def aor_host(self) -> str:
        """The host as the AOR key writes it: lower-cased, no trailing dot, an
        IPv6 reference compressed."""
        return _host_key(self.host).rstrip(".")

    def replace(self, **changes: Any) -> SipURI:
        """A copy with the given fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def copy(self) -> SipURI:
        """A copy whose ``params`` and ``headers`` can be changed independently."""
        return dataclasses.replace(self, params=dict(self.params), headers=dict(self.headers))


@dataclass(frozen=True, slots=True, eq=False)
class TelURI:
    """A ``tel:`` URI (RFC 3966): a telephone number and its parameters."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"tel:{self.number}{render_params(self.params)}"

    @property
    def is_global(self) -> bool:
        """True for a global (``+``-prefixed) number (RFC 3966 5.1.4)."""
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 5.1.1)."""
        return self.number.translate(_TEL_SEPARATORS)

    def _key(self) -> tuple[str, frozenset[tuple[str, str | None]]]:
        return self.digits.lower(), frozenset(_param_key(self.params).items())

    def __eq__(self, other: object) -> bool:
        """RFC 3966 4: separators ignored, parameters compared in any order."""
        if not isinstance(other, TelURI):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True, slots=True)
class AbsoluteURI:
    """A URI of any other scheme (RFC 3261 25.1 absoluteURI), kept opaque."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


URI = SipURI | TelURI | AbsoluteURI


def _parse_sip(scheme: str, rest: str) -> SipURI:
    if "%" in rest and _BAD_ESCAPE_RE.search(rest):
        raise _bad("bad escape")
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        # (letters and digits alone, the usual user part, need no pattern)
        if not (user.isalnum() and user.isascii()) and not _USER_RE.fullmatch(user):
            raise _bad("bad user part")
        if colon:
            if not _PASSWORD_RE.fullmatch(pw):
                raise _bad("bad password")
            password = pw
    headers: dict[str, str] = {}
    qmark = rest.find("?")
    if qmark >= 0:
        headers = _parse_headers(rest[qmark + 1 :])
        rest = rest[:qmark]
    params: dict[str, str | None] = {}
    semi = rest.find(";")
    if semi >= 0:
        params = _parse_uri_params(rest[semi:])
        rest = rest[:semi]
    host, port = parse_host_port(rest)
    return SipURI(host, scheme, user, password, port, params, headers)


def _parse_headers(text: str) -> dict[str, str]:
    """``header *( "&" header )`` (RFC 3261 19.1.1)."""
    values: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not eq or not _HNAME_RE.fullmatch(name) or not _HVALUE_RE.fullmatch(value):
            raise _bad("bad header")
        key = _unescape_key(name).lower()
        if key not in names:
            names[key] = name
            values[key] = []
        values[key].append(value)
    # Repeated header fields combine into one comma-separated value (RFC 3261
    # 7.3.1); the comma is escaped as hvalue requires.
    return {names[key]: "%2C".join(vals) for key, vals in values.items()}


def _parse_tel(rest: str) -> TelURI:
    if "%" in rest and _BAD_ESCAPE_RE.search(rest):
        raise _bad("bad escape")
    semi = rest.find(";")
    number = rest if semi < 0 else rest[:semi]
    if not (_TEL_GLOBAL_RE.fullmatch(number) or _TEL_LOCAL_RE.fullmatch(number)):
        raise _bad("bad telephone number")
    params = _parse_uri_params(rest[semi:]) if semi >= 0 else {}
    return TelURI(number, params)


#: SIP URIs parsed lately, by their text: the same few come again and again
#: (the Request-URI of every REGISTER, the To that repeats the From, a
#: dialog's Contacts and Routes). A URI is never changed once made (``replace``
#: makes a new one), so one object serves every message that names it. At
#: most this many; a full cache starts over (a flood of distinct URIs costs
#: what it cost without one).
PARSED_CACHE_SIZE: Final = 1024
#: Only URIs this long or shorter are kept: a phone's are under 200
#: characters, and a sender of 60 KB URIs must not make the cache hold
#: 1,024 of them (about 120 MB).
PARSED_CACHE_MAX_TEXT: Final = 256
_PARSED: Final[dict[str, SipURI]] = {}


def parse_uri(text: str) -> URI:
    """Parse a URI: SIP/SIPS (RFC 3261 19.1), tel (RFC 3966) or any other scheme.

    Raises ParseError("Bad URI: ...", 400) when the text is malformed.
    """
    found = _PARSED.get(text)
    if found is not None:
        return found
    colon = text.find(":")
    if colon <= 0:
        raise _bad("no scheme")
    scheme = text[:colon]
    rest = text[colon + 1 :]
    if scheme == "sip" or scheme == "sips":
        uri = _parse_sip(scheme, rest)
        _remember(_PARSED, text, uri, PARSED_CACHE_SIZE, PARSED_CACHE_MAX_TEXT)
        return uri
    if not _SCHEME_RE.fullmatch(scheme):
        raise _bad("bad scheme")
    scheme = scheme.lower()
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    if not _OPAQUE_RE.fullmatch(rest) or ("%" in rest and _BAD_ESCAPE_RE.search(rest)):
        raise _bad("bad characters")
    return AbsoluteURI(scheme, rest)
