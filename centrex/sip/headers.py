"""Header names (RFC 3261 7.3, 20) and the splitting of header values.

Headers are looked up by a *key*: the lower-case long form of the name, so that
``v``, ``VIA`` and ``Via`` all find the same lines.
"""

from __future__ import annotations

from typing import Final

# RFC 3261 7.3.3 and the compact forms that extensions registered with IANA.
COMPACT_FORMS: Final[dict[str, str]] = {
    "a": "accept-contact",  # RFC 3841
    "b": "referred-by",  # RFC 3892
    "c": "content-type",
    "d": "request-disposition",  # RFC 3841
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",  # RFC 3841
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",  # RFC 6665
    "r": "refer-to",  # RFC 3515
    "s": "subject",
    "t": "to",
    "u": "allow-events",  # RFC 6665
    "v": "via",
    "x": "session-expires",  # RFC 4028
    "y": "identity",  # RFC 8224
}

# Names whose usual spelling is not plain Title-Case of the key.
_DISPLAY: Final[dict[str, str]] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
}

# Headers whose value is a comma-separated list (RFC 3261 7.3.1): only these are
# split on commas; any other header (Date, WWW-Authenticate, unknown ones) keeps
# its commas.
LIST_HEADERS: Final[frozenset[str]] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

_KEY_CACHE: Final[dict[str, str]] = {}
_KEY_CACHE_LIMIT: Final = 4096

#: What ``first_value`` trims around the rest: spaces and empty elements.
_SEPARATORS: Final = " ,"


def header_key(name: str) -> str:
    """The lookup key of a header name: lower-case, compact forms expanded."""
    key = _KEY_CACHE.get(name)
    if key is None:
        low = name.strip().lower()
        key = COMPACT_FORMS.get(low, low)
        # Bounded, so a peer sending random header names cannot grow it forever.
        if len(_KEY_CACHE) < _KEY_CACHE_LIMIT:
            _KEY_CACHE[name] = key
    return key


def display_name(name: str) -> str:
    """The usual spelling of a header name, used when Centrex writes the header."""
    key = header_key(name)
    spelled = _DISPLAY.get(key)
    if spelled is not None:
        return spelled
    return "-".join(part[:1].upper() + part[1:] for part in key.split("-"))


def split_values(value: str) -> list[str]:
    """Split a list header value on the commas outside quotes and angle brackets.

    Empty elements (``a,,b``) are dropped; surrounding whitespace is stripped.
    """
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    out: list[str] = []
    if '"' not in value and "<" not in value:
        # No quotes and no angle brackets (a Via list, say): every comma splits.
        for part in value.split(","):
            part = part.strip()
            if part:
                out.append(part)
        return out
    start = 0
    quoted = False
    angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            part = value[start:i].strip()
            if part:
                out.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        out.append(part)
    return out


def first_value(value: str) -> tuple[str, str]:
    """The first element of a list header value, and the elements after it.

    ``("a", "b, c")`` for ``"a, b, c"``; ``("", "")`` for a value with no
    element. The same elements as ``split_values``. The rest is kept as
    written (less the separators before it) when the value has no quotes, no
    angle brackets and no whitespace but spaces (a Via line); otherwise it is
    the other elements joined with ", ".
    """
    if '"' in value or "<" in value or not value.isprintable():
        values = split_values(value)
        if not values:
            return "", ""
        return values[0], ", ".join(values[1:])
    # Printable: the only whitespace is the space. The first element starts at
    # the first character that is neither a space nor a comma.
    value = value.strip(_SEPARATORS)
    comma = value.find(",")
    if comma < 0:
        return value, ""
    return value[:comma].rstrip(" "), value[comma + 1 :].strip(_SEPARATORS)
