"""The user list of the registrar events, carried in the Event header.

The original soft phones read who is (un)available from one Event header
parameter, name and description pairs joined by '|'::

    Event: user-available;param=voicemail|The company voicemail server|1234|Engineering Lab

The value is written as the phones expect it: unquoted, spaces kept. So that
the header stays parseable (RFC 3261 7.3.1, RFC 6665 8.2.1 ``event-param``)
whatever a description holds, the characters that would end or split the
value are percent-escaped as ``%XX`` (upper-case hex): '%' itself, the pair
separator '|', the parameter separator ';', ',', '"', '\\' and every control
character (CR, LF, TAB, ...). Leading and trailing blanks are dropped.
Non-ASCII text stays UTF-8. ``parse_event_list`` reverses all of it.

A ``;id=`` parameter (RFC 6665 8.2.1) is written before ``param`` so that the
list is always the last thing on the line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_NEEDS_ESCAPE = re.compile(r'[%|;,"\\\x00-\x1f\x7f]')
_ESCAPED = re.compile(r"%([0-9A-Fa-f]{2})")
#: What the list adds to the Event value before its first entry.
PARAM_PREFIX = ";param="


def escape_field(text: str) -> str:
    """``text`` as one '|'-separated field of the list (see the module docstring)."""
    text = text.strip()
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _NEEDS_ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def name_prefix(name: str) -> str:
    """How every entry of the user ``name`` begins, whatever its description
    (a directory reload may change that): its name field and the separator."""
    return escape_field(name) + "|"


def unescape_field(text: str) -> str:
    """The text of one field as ``escape_field`` wrote it."""
    if "%" not in text:
        return text
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


@dataclass(frozen=True, slots=True)
class UserEntry:
    """One user of the list: its name (the user part) and its description."""

    name: str
    description: str = ""

    def encoded(self) -> str:
        """``name|description``, escaped for the Event header."""
        return name_prefix(self.name) + escape_field(self.description)


def event_value(event: str, encoded: Sequence[str], event_id: str | None = None) -> str:
    """The Event header value naming the ``encoded`` entries (none: no ``param``)."""
    value = event if event_id is None else f"{event};id={event_id}"
    if encoded:
        value += PARAM_PREFIX + "|".join(encoded)
    return value


def pack(sizes: Sequence[int], room: int, start: int = 0, *, at_least_one: bool = True) -> int:
    """The end index of the entries from ``start`` that fit in ``room`` bytes.

    ``sizes`` are the encoded byte lengths; entries are joined by one '|'.
    With ``at_least_one`` the first entry is taken even when it alone is too
    large: a user is never dropped from the list for its long description.
    """
    end = start
    used = 0
    while end < len(sizes):
        grow = sizes[end] + (1 if end > start else 0)
        if used + grow > room and (end > start or not at_least_one):
            break
        used += grow
        end += 1
    return end


def encode_all(entries: Sequence[UserEntry]) -> tuple[list[str], list[int]]:
    """The encoded entries and their UTF-8 byte lengths."""
    encoded = [entry.encoded() for entry in entries]
    return encoded, [len(text.encode("utf-8", "surrogateescape")) for text in encoded]


def parse_event_list(value: str) -> tuple[str, dict[str, str], list[UserEntry]]:
    """Read an Event value written by ``event_value``: package, other params, users.

    For the tests and tools; a ValueError when the list has an odd number of
    fields.
    """
    package, _, rest = value.partition(";")
    params: dict[str, str] = {}
    entries: list[UserEntry] = []
    for item in rest.split(";") if rest else ():
        key, _, text = item.partition("=")
        key = key.strip().lower()
        if key == "param":
            fields = text.split("|")
            if len(fields) % 2:
                raise ValueError("the user list has an odd number of fields")
            entries.extend(
                UserEntry(unescape_field(fields[i]), unescape_field(fields[i + 1]))
                for i in range(0, len(fields), 2)
            )
        else:
            params[key] = text.strip()
    return package.strip(), params, entries
