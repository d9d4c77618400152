"""Addresses: name-addr / addr-spec with header parameters (RFC 3261 20.10, 25.1).

The value of From, To, Contact, Route, Record-Route, Reply-To, Path, ...:
``[display-name] <uri> *(;param)`` or a bare ``uri *(;param)``. In the bare form
the ``;params`` after the URI belong to the header, not to the URI (RFC 3261
20.10), which is why a URI holding ';', '?' or ',' is always rendered in angle
brackets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from centrex.sip.errors import ParseError
from centrex.sip.fields import (
    MAX_UINT32,
    is_token,
    parse_params,
    parse_quoted_string,
    render_display_name,
    render_params,
    skip_lws,
    unquote,
)
from centrex.sip.headers import split_values
from centrex.sip.uri import URI, AbsoluteURI, parse_uri

#: What a malformed Contact ``expires`` parameter counts as (RFC 3261 20.10).
MALFORMED_EXPIRES: Final = 3600

# RFC 3261 20.10 qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE_RE: Final = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_LWS: Final = " \t\r\n"
_LWS_RE: Final = re.compile(r"[ \t\r\n]+")

#: The ``uri`` of a wildcard Contact (``*``), which has no URI; check ``wildcard``.
WILDCARD_URI: Final = AbsoluteURI("*", "")


def _bad(detail: str) -> ParseError:
    return ParseError(f"Bad address: {detail}", 400)


@dataclass(slots=True)
class Address:
    """A name-addr or addr-spec with header parameters (RFC 3261 20.10, 25.1).

    ``display_name`` is the unquoted, unescaped text ("" for ``"" <uri>``, None
    when absent). ``params`` are the header parameters (tag, expires, q, ...):
    lower-case names, values as written (a quoted-string keeps its quotes), None
    for a flag. ``wildcard`` is the Contact ``*`` of RFC 3261 10.2.2, whose
    ``uri`` is the placeholder ``WILDCARD_URI``.
    """

    uri: URI
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    wildcard: bool = False

    # Written out, not generated: a compiled build compiles this one (the
    # dataclass's own __init__ is made at import, and runs interpreted).
    def __init__(
        self,
        uri: URI,
        display_name: str | None = None,
        params: dict[str, str | None] | None = None,
        wildcard: bool = False,
    ) -> None:
        self.uri = uri
        self.display_name = display_name
        self.params = {} if params is None else params
        self.wildcard = wildcard

    @classmethod
    def wildcard_contact(cls) -> Address:
        """The ``Contact: *`` of a remove-all-bindings REGISTER (RFC 3261 10.2.2)."""
        return cls(WILDCARD_URI, wildcard=True)

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse one address; ParseError (400) when it is malformed."""
        s = text.strip(_LWS)
        if s == "*":
            return cls.wildcard_contact()
        display: str | None = None
        if s.startswith('"'):
            display, pos = parse_quoted_string(s, 0, "address")
            pos = skip_lws(s, pos)
            if pos >= len(s) or s[pos] != "<":
                raise _bad("display name without <uri>")
        else:
            pos = s.find("<")
            if pos < 0:
                return cls._parse_addr_spec(s)
            words = _LWS_RE.split(s[:pos].strip(_LWS)) if pos else [""]
            if words != [""]:
                if not all(is_token(w) for w in words):
                    raise _bad("display name must be tokens or a quoted string")
                display = " ".join(words)
        end = s.find(">", pos)
        if end < 0:
            raise _bad("missing '>'")
        uri = parse_uri(s[pos + 1 : end])
        # The class by name, not cls: compiled, that is a direct call of its
        # constructor, not a call through the type (about 300 ns).
        return Address(uri, display, parse_params(s, "address", end + 1))

    @classmethod
    def _parse_addr_spec(cls, s: str) -> Address:
        # A URI holding ';', '?' or ',' must be in angle brackets (RFC 3261
        # 20.10; RFC 4475 3.1.2.13), so the first ';' starts the header params.
        semi = s.find(";")
        uri_text = s if semi < 0 else s[:semi].rstrip(_LWS)
        if "?" in uri_text:
            raise _bad("a URI with '?' must be in angle brackets")
        uri = parse_uri(uri_text)
        if semi < 0:
            return Address(uri)
        return Address(uri, None, parse_params(s, "address", semi))

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        uri = f"<{self.uri}>"
        if self.display_name is not None:
            uri = f"{render_display_name(self.display_name)} {uri}"
        if self.params:
            return uri + render_params(self.params)
        return uri

    def param(self, name: str) -> str | None:
        """The value of header parameter ``name`` with quotes removed, or None."""
        value = self.params.get(name.lower())
        return None if value is None else unquote(value)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter of From / To (RFC 3261 19.3)."""
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter in seconds (RFC 3261 20.10), or None.

        A malformed value (no value, a word, an RFC 2543 absolute date) counts
        as 3600 and one above 2**32-1 as 2**32-1 (20.10, 10.2.1.1): an old
        phone is registered, not refused.
        """
        if "expires" not in self.params:
            return None
        text = (self.params["expires"] or "").strip(" \t")
        if not (text.isascii() and text.isdigit()):  # (int() takes other digits: "²")
            return MALFORMED_EXPIRES
        text = text.lstrip("0") or "0"
        return MAX_UINT32 if len(text) > 10 else min(int(text), MAX_UINT32)

    @property
    def q(self) -> float | None:
        """The Contact ``q`` preference 0..1 (RFC 3261 20.10), or None."""
        if "q" not in self.params:
            return None
        value = self.params["q"]
        if value is None or not _QVALUE_RE.fullmatch(value):
            raise ParseError("Bad q parameter: must be 0 to 1 with up to 3 decimals", 400)
        return float(value)


def parse_address_list(text: str) -> list[Address]:
    """Parse a Contact / Route / Record-Route / Path value: addresses separated by
    commas (RFC 3261 7.3.1, 20.10, 20.30, 20.34; RFC 3327). ``*`` gives a single
    wildcard Address, which may not be mixed with others (RFC 3261 10.3 step 6).
    """
    values = split_values(text)
    if not values:
        raise _bad("empty list")
    addresses = [Address.parse(v) for v in values]
    if len(addresses) > 1 and any(a.wildcard for a in addresses):
        raise _bad("'*' mixed with other contacts")
    return addresses
