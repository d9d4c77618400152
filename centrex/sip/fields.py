"""Small header values of RFC 3261 and the grammar pieces they share.

Tokens, quoted strings and ``;name=value`` parameter lists (RFC 3261 25.1) are
used by ``address`` and ``via`` as well; CSeq (20.16), the integer headers
(Expires 20.19, Max-Forwards 20.22, Content-Length 20.14, Min-Expires 20.23),
the authentication headers (20.7, 20.27, 20.28, 20.44; RFC 7616) and option-tag
lists (Allow 20.5, Supported 20.37, Require 20.32, ...) live here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from centrex.sip.errors import ParseError

# RFC 3261 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_CLASS: Final = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN_RE: Final = re.compile(rf"[{_TOKEN_CLASS}]+")
_TOKENS_RE: Final = re.compile(rf"[{_TOKEN_CLASS}]+(?: [{_TOKEN_CLASS}]+)*")
# gen-value = token / host / quoted-string; ':' '[' ']' admit IPv6 hosts, with or
# without brackets (Via received, RFC 3261 20.42).
_VALUE_RE: Final = re.compile(rf"[{_TOKEN_CLASS}:\[\]]+")
_LWS: Final = " \t"
# RFC 3261 25.1 qdtext: LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
_QDTEXT_RE: Final = re.compile(r"[ \t\x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]+")
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
_QUOTED_PAIR_OK: Final = frozenset(chr(c) for c in range(0x80)) - {"\r", "\n"}
_NEEDS_PAIR_RE: Final = re.compile(r'[\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')
# RFC 7235 2.1 token68, used by schemes other than Digest (e.g. Bearer, RFC 8898)
_TOKEN68_RE: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# A lenient unquoted auth-param value: visible ASCII up to a comma, no quotes.
_AUTH_VALUE_RE: Final = re.compile(r"[\x21\x23-\x2b\x2d-\x7e]+")
_DIGITS_RE: Final = re.compile(r"[0-9]+")
_SIMPLE_PARAMS_RE: Final = re.compile(rf"(?:;[{_TOKEN_CLASS}]+(?:=[{_TOKEN_CLASS}:\[\]]+)?)+")
_CSEQ_RE: Final = re.compile(rf"[ \t]*([0-9]{{1,10}})[ \t]+([{_TOKEN_CLASS}]+)[ \t]*")

MAX_UINT32: Final = 2**32 - 1
MAX_CSEQ: Final = 2**31 - 1


def is_token(text: str) -> bool:
    """True when ``text`` is a ``token`` (RFC 3261 25.1)."""
    return _TOKEN_RE.fullmatch(text) is not None


def skip_lws(text: str, pos: int) -> int:
    """The index of the first character at or after ``pos`` that is not SP or HTAB."""
    n = len(text)
    while pos < n and text[pos] in _LWS:
        pos += 1
    return pos


def parse_quoted_string(text: str, pos: int, what: str = "quoted string") -> tuple[str, int]:
    """Read the ``quoted-string`` starting at ``text[pos] == '"'`` (RFC 3261 25.1).

    Returns the unescaped content and the index just after the closing quote.
    """
    close = text.find('"', pos + 1)
    if close > pos:
        # The usual display name: printable, no escapes; no pattern needed.
        content = text[pos + 1 : close]
        if "\\" not in content and content.isprintable():
            return content, close + 1
    out: list[str] = []
    i = pos + 1
    n = len(text)
    while i < n:
        m = _QDTEXT_RE.match(text, i)
        if m:
            out.append(m.group())
            i = m.end()
            continue
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < n and text[i + 1] in _QUOTED_PAIR_OK:
            out.append(text[i + 1])
            i += 2
            continue
        raise ParseError(f"Bad {what}: illegal character in quoted string", 400)
    raise ParseError(f"Bad {what}: unterminated quoted string", 400)


def quote_string(value: str) -> str:
    """Render ``value`` as a quoted-string, escaping as RFC 3261 25.1 requires.

    CR and LF cannot appear in a quoted-string at all and become spaces.
    """
    value = value.replace("\r", " ").replace("\n", " ")
    return '"' + _NEEDS_PAIR_RE.sub(lambda m: "\\" + m.group(), value) + '"'


def unquote(value: str) -> str:
    """The content of a quoted-string, or ``value`` itself when it is not quoted."""
    if value.startswith('"'):
        content, end = parse_quoted_string(value, 0)
        if end == len(value):
            return content
    return value


def render_display_name(name: str) -> str:
    """A display-name (RFC 3261 25.1): bare tokens when possible, else quoted."""
    if _TOKENS_RE.fullmatch(name):
        return name
    return quote_string(name)


def parse_params(text: str, what: str, pos: int = 0) -> dict[str, str | None]:
    """Parse ``*( SEMI generic-param )`` from ``text[pos:]`` (RFC 3261 25.1).

    Names are lower-cased; values are kept as written (quoted strings keep their
    quotes); a flag parameter maps to None. LWS is allowed around ';' and '='.
    Anything else, or a repeated name, raises ParseError("Bad <what>: ...").
    """
    params: dict[str, str | None] = {}
    tail = text[pos:] if pos else text
    if not tail:
        return params
    if _SIMPLE_PARAMS_RE.fullmatch(tail):
        # The common shape (no LWS, no quotes): split instead of scanning.
        for item in tail[1:].split(";"):
            key, eq, text_value = item.partition("=")
            key = key.lower()
            if key in params:
                raise ParseError(f"Bad {what}: duplicate parameter", 400)
            params[key] = text_value if eq else None
        return params
    n = len(text)
    pos = skip_lws(text, pos)
    while pos < n:
        if text[pos] != ";":
            raise ParseError(f"Bad {what}: junk after value", 400)
        pos = skip_lws(text, pos + 1)
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ParseError(f"Bad {what}: bad parameter name", 400)
        name = m.group().lower()
        pos = skip_lws(text, m.end())
        value: str | None = None
        if pos < n and text[pos] == "=":
            pos = skip_lws(text, pos + 1)
            if pos < n and text[pos] == '"':
                _, end = parse_quoted_string(text, pos, what)
                value = text[pos:end]
                pos = end
            else:
                m = _VALUE_RE.match(text, pos)
                if not m:
                    raise ParseError(f"Bad {what}: bad parameter value", 400)
                value = m.group()
                pos = m.end()
            pos = skip_lws(text, pos)
        if name in params:
            raise ParseError(f"Bad {what}: duplicate parameter", 400)
        params[name] = value
    return params


def render_params(params: dict[str, str | None]) -> str:
    """``;name=value`` for each parameter, ``;name`` for flags."""
    # A loop, not a generator: compiled, a generator is an object of its own.
    parts: list[str] = []
    for k, v in params.items():
        parts.append(";" + k if v is None else f";{k}={v}")
    return "".join(parts)


def parse_non_negative_int(text: str, header_name: str) -> int:
    """A decimal value 0..2**32-1 (Expires, Max-Forwards, Content-Length, ...).

    RFC 3261 20.14, 20.19, 20.22, 20.23; ParseError naming the header otherwise.
    """
    value = text.strip(_LWS)
    if not _DIGITS_RE.fullmatch(value):
        raise ParseError(f"Bad {header_name}: not a non-negative integer", 400)
    # The length check keeps int() cheap on hostile input.
    if len(value) > 20 or int(value) > MAX_UINT32:
        raise ParseError(f"Bad {header_name}: value too large", 400)
    return int(value)


def parse_token_list(text: str, header_name: str) -> list[str]:
    """A comma-separated list of tokens: Allow, Supported, Require, Unsupported,
    Proxy-Require (RFC 3261 20.5, 20.37, 20.32, 20.40, 20.29). May be empty."""
    out: list[str] = []
    for item in text.split(","):
        item = item.strip(_LWS)
        if not item:
            continue
        if not _TOKEN_RE.fullmatch(item):
            raise ParseError(f"Bad {header_name}: not a token", 400)
        out.append(item)
    return out


#: The methods of RFC 3261 and its extensions: a CSeq naming one is read
#: without the regular expression, and the parser keeps one str of each.
METHOD_NAMES: Final = (
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE",
    "NOTIFY", "PUBLISH", "MESSAGE", "INFO", "PRACK", "UPDATE", "REFER",
)  # fmt: skip
_STANDARD_METHODS: Final = frozenset(METHOD_NAMES)


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header value (RFC 3261 20.16, 8.1.1.5): number and method."""

    number: int
    method: str

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, number: int, method: str) -> None:
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "method", method)

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``1*DIGIT LWS Method``; the number must be below 2**31."""
        # The usual form, "314159 REGISTER", without the regular expression.
        space = text.find(" ")
        number_text = text[:space]
        method = text[space + 1 :]
        if (
            space > 0
            and method in _STANDARD_METHODS
            and len(number_text) <= 10
            and number_text.isdigit()
            and number_text.isascii()
        ):
            number = int(number_text)
        else:
            m = _CSEQ_RE.fullmatch(text)
            if not m:
                raise ParseError("Bad CSeq", 400)
            number, method = int(m.group(1)), m.group(2)
        if number > MAX_CSEQ:
            raise ParseError("Bad CSeq: number too large", 400)
        return CSeq(number, method)  # by name, not cls: a direct call when compiled

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


# RFC 7616 3.3 / 3.4 and RFC 3261 25.1: these are quoted-strings in challenges
# and credentials alike. ``qop`` is quoted in challenges only, ``algorithm``,
# ``nc``, ``stale``, ``userhash`` never.
ALWAYS_QUOTED: Final = frozenset(
    {"realm", "nonce", "uri", "response", "opaque", "cnonce", "username", "domain"}
)


@dataclass(slots=True)
class AuthParams:
    """A challenge or credentials value (RFC 3261 20.7, 20.27, 20.28, 20.44, 25.1;
    RFC 7616 3.3, 3.4): the scheme and its parameters, or a token68.

    ``params`` has lower-case names and unquoted, unescaped values. ``quoted``
    names the parameters rendered as quoted-strings besides ``ALWAYS_QUOTED``
    and values that are not tokens; parsing records what the peer quoted.
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    quoted: set[str] = field(default_factory=set)
    token68: str | None = None

    @classmethod
    def challenge(cls, scheme: str, params: dict[str, str]) -> AuthParams:
        """A WWW-/Proxy-Authenticate value, with ``qop`` quoted (RFC 7616 3.3)."""
        return cls(scheme, dict(params), {"qop"} & params.keys())

    @classmethod
    def credentials(cls, scheme: str, params: dict[str, str]) -> AuthParams:
        """An Authorization / Proxy-Authorization value (RFC 7616 3.4)."""
        return cls(scheme, dict(params))

    @property
    def is_digest(self) -> bool:
        """True for the Digest scheme (scheme names are case-insensitive)."""
        return self.scheme.lower() == "digest"

    def get(self, name: str) -> str | None:
        """The value of parameter ``name`` (case-insensitive), or None."""
        return self.params.get(name.lower())

    @classmethod
    def parse(cls, text: str) -> AuthParams:
        """Parse ``auth-scheme [LWS (token68 / auth-param *(COMMA auth-param))]``."""
        m = _TOKEN_RE.match(text, skip_lws(text, 0))
        if not m:
            raise ParseError("Bad authentication header: no scheme", 400)
        scheme, pos, n = m.group(), m.end(), len(text)
        if pos < n and text[pos] not in _LWS:
            raise ParseError("Bad authentication header: no space after scheme", 400)
        rest = text[pos:].strip(_LWS)
        # Digest takes auth-params only (RFC 7616 3.3); other schemes may use token68.
        if scheme.lower() != "digest" and _TOKEN68_RE.fullmatch(rest):
            return cls(scheme, token68=rest)
        params: dict[str, str] = {}
        quoted: set[str] = set()
        pos = skip_lws(text, pos)
        while pos < n:
            if text[pos] == ",":
                pos = skip_lws(text, pos + 1)
                continue
            m = _TOKEN_RE.match(text, pos)
            if not m:
                raise ParseError("Bad authentication header: bad parameter name", 400)
            name = m.group().lower()
            pos = skip_lws(text, m.end())
            if pos >= n or text[pos] != "=":
                raise ParseError("Bad authentication header: parameter without value", 400)
            pos = skip_lws(text, pos + 1)
            if pos < n and text[pos] == '"':
                value, pos = parse_quoted_string(text, pos, "authentication header")
                quoted.add(name)
            else:
                m = _AUTH_VALUE_RE.match(text, pos)
                if not m:
                    raise ParseError("Bad authentication header: bad parameter value", 400)
                value, pos = m.group(), m.end()
            if name in params:
                raise ParseError("Bad authentication header: duplicate parameter", 400)
            params[name] = value
            pos = skip_lws(text, pos)
            if pos < n and text[pos] != ",":
                raise ParseError("Bad authentication header: missing comma", 400)
        return cls(scheme, params, quoted)

    def _render_value(self, name: str, value: str) -> str:
        if name in self.quoted or name in ALWAYS_QUOTED or not _AUTH_VALUE_RE.fullmatch(value):
            return quote_string(value)
        return value

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        if not self.params:
            return self.scheme
        body = ", ".join(f"{k}={self._render_value(k, v)}" for k, v in self.params.items())
        return f"{self.scheme} {body}"
