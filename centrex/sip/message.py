"""SIP requests and responses (RFC 3261 section 7), parsed lazily.

A message keeps its header block as the list of raw header lines it arrived
with. The list is indexed by header key once; a value is decoded and parsed the
first time it is read, and the typed view is cached until that header changes.
Forwarding edits (push / pop Via, add Record-Route, decrement Max-Forwards,
rewrite the Request-URI) replace or insert single lines, so ``to_bytes`` joins
the untouched lines as they came instead of rendering every header again; an
unedited message renders as the very bytes it was parsed from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

from centrex.sip.address import Address, parse_address_list
from centrex.sip.errors import ParseError
from centrex.sip.fields import CSeq, parse_non_negative_int
from centrex.sip.headers import LIST_HEADERS, display_name, first_value, header_key, split_values
from centrex.sip.uri import AbsoluteURI, SipURI, TelURI, parse_uri
from centrex.sip.via import Via, parse_first_via, parse_via_list

URI = SipURI | TelURI | AbsoluteURI
_T = TypeVar("_T")
_MISSING: Final[Any] = object()

# The cached typed views that an edit of a header key makes stale.
_VIEWS_OF: Final[dict[str, tuple[str, ...]]] = {
    "via": ("vias", "top_via", "branch"),
    "from": ("from", "from_tag"),
    "to": ("to", "to_tag"),
    "call-id": ("call_id",),
    "cseq": ("cseq",),
    "contact": ("contacts",),
    "max-forwards": ("max_forwards",),
    "expires": ("expires",),
    "content-length": ("content_length",),
}

_SPELLING: Final[dict[str, str]] = {}


def _spelling(name: str) -> str:
    """How Centrex writes header ``name`` (cached: edits run per message)."""
    spelled = _SPELLING.get(name)
    if spelled is None:
        spelled = display_name(name)
        if len(_SPELLING) < 1024:
            _SPELLING[name] = spelled
    return spelled


_FOLD: Final = re.compile(r"\r?\n[ \t]+")
#: A comma, as the byte ``in`` looks for (``_COMMA in line``).
_COMMA: Final = ord(",")
# Fast reads of the two parameters every transaction needs. They only run on
# the part of the value where a header parameter can stand (see _param_tail).
_TAG: Final = re.compile(r";[ \t]*tag[ \t]*=[ \t]*([^;, \t>]+)", re.IGNORECASE)
_BRANCH: Final = re.compile(r";[ \t]*branch[ \t]*=[ \t]*([^;, \t]+)", re.IGNORECASE)
_TOKEN_NAME: Final = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]+")

# Raw header name (as bytes on the wire) -> key. Bounded like headers._KEY_CACHE.
_BYTES_KEY: Final[dict[bytes, str]] = {}
_BYTES_KEY_LIMIT: Final = 4096


def bytes_key(name: bytes) -> str:
    """The lookup key of a raw header name, or ParseError if it is not a token."""
    key = _BYTES_KEY.get(name)
    if key is not None:
        return key
    stripped = name.rstrip(b" \t")
    if not _TOKEN_NAME.fullmatch(stripped):
        shown = stripped[:40].decode("utf-8", "replace")
        raise ParseError(f"Malformed header name {shown!r}")
    key = header_key(stripped.decode("ascii"))
    if len(_BYTES_KEY) < _BYTES_KEY_LIMIT:
        _BYTES_KEY[name] = key
    return key


def decode_text(raw: bytes) -> str:
    """Header bytes as text: UTF-8, any other byte kept by ``surrogateescape``
    (``encode_text`` gives it back)."""
    # Strict first: compiled, that is mypyc's own call of the UTF-8 decoder,
    # where naming an error handler takes its general decode, which converts
    # both names and normalises the encoding's at every call.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape")


def encode_text(text: str) -> bytes:
    """``decode_text`` undone: UTF-8, escaped bytes as they came."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _param_tail(value: str) -> str:
    """The part of a From/To/Contact value where header parameters stand.

    With a name-addr the URI ends at the last '>'; with an addr-spec every
    ';param' is a header parameter (RFC 3261 20.10).
    """
    gt = value.rfind(">")
    if gt >= 0:
        return value[gt + 1 :]
    return value


class Message:
    """What requests and responses share: the header lines and the body."""

    __slots__ = ("_body", "_cache", "_index", "_keys", "_length_ok", "_lines", "_multi", "_raw")

    def __init__(
        self,
        lines: list[bytes],
        keys: list[str],
        body: bytes,
        raw: bytes | None,
    ) -> None:
        self._lines = lines
        self._keys = keys
        # Header key -> position of its first line, made at the first lookup
        # and dropped whenever a line is added or removed; ``_multi`` holds the
        # line count of each key on more than one line. A message is looked up
        # by name dozens of times: a search of ``_keys`` compares the key
        # with every line before it (all of them for an absent header).
        self._index: dict[str, int] | None = None
        self._multi: dict[str, int] | None = None
        self._cache: dict[str, Any] = {}
        self._raw = raw
        self._body = body
        # True while the Content-Length line is known to equal len(body).
        self._length_ok = False

    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, body: bytes) -> None:
        self._body = body
        self._raw = None
        self._length_ok = False

    # -- start line (subclasses) ---------------------------------------------

    def start_line(self) -> bytes:
        raise NotImplementedError

    # -- the header index ------------------------------------------------------

    def _indexed(self) -> dict[str, int]:
        index = self._index
        if index is None:
            index = {}
            multi: dict[str, int] = {}
            for pos, key in enumerate(self._keys):
                if key in index:
                    multi[key] = multi.get(key, 1) + 1
                else:
                    index[key] = pos
            self._index = index
            self._multi = multi or None
        return index

    def _reindex(self) -> None:
        """Lines were added or removed: the positions are looked up afresh."""
        self._index = None

    def _positions(self, key: str) -> list[int]:
        first = self._indexed().get(key, -1)
        if first < 0:
            return []
        multi = self._multi
        if multi is None or key not in multi:
            return [first]
        keys = self._keys
        return [pos for pos in range(first, len(keys)) if keys[pos] == key]

    def _first(self, key: str) -> int:
        """Position of the first line of ``key``, or -1."""
        return self._indexed().get(key, -1)

    def _line_value(self, pos: int) -> str:
        # Decoded first: find, `in` and strip of a str are compiled inline in
        # the compiled build, where those of bytes are method calls by name.
        text = decode_text(self._lines[pos])
        value = text[text.find(":") + 1 :]
        if "\n" in value:
            value = _FOLD.sub(" ", value)
        return value.strip(" \t")

    def _changed(self, key: str) -> None:
        """Forget the rendering and the typed views that depend on header ``key``."""
        self._raw = None
        if key == "content-length":
            self._length_ok = False
        cache = self._cache
        if cache:
            for slot in _VIEWS_OF.get(key, (key,)):
                cache.pop(slot, None)

    def forget_views(self) -> None:
        """Drop the typed views read so far; a later read parses its header again.

        A transaction that waits out Timer J keeps its request and response
        for up to 32 s. Without their views (URIs, addresses, Vias, dicts) a
        pair is a few objects instead of dozens, which keeps the garbage
        collector's passes over the long-lived generation short.
        """
        self._cache.clear()
        self._index = self._multi = None  # made again by the next read

    # -- generic header access -------------------------------------------------

    def get(self, name: str) -> str | None:
        """The value of the first line of header ``name`` (any spelling or compact form)."""
        pos = self._first(header_key(name))
        return None if pos < 0 else self._line_value(pos)

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``: all its lines, list headers split on commas."""
        key = header_key(name)
        if key not in self._indexed():
            return []
        values = [self._line_value(pos) for pos in self._positions(key)]
        if key in LIST_HEADERS:
            return [part for value in values for part in split_values(value)]
        return values

    def __contains__(self, name: str) -> bool:
        return header_key(name) in self._indexed()

    def count(self, name: str) -> int:
        """How many lines carry header ``name``."""
        return self.count_of_key(header_key(name))

    def count_of_key(self, key: str) -> int:
        """``count`` of a lookup key (``header_key``) the caller has already."""
        if key not in self._indexed():
            return 0
        multi = self._multi
        return 1 if multi is None else multi.get(key, 1)

    def has_repeated(self) -> bool:
        """True when some header has more than one line."""
        self._indexed()
        return self._multi is not None

    def raw_lines(self, name: str) -> list[bytes]:
        """The lines of header ``name`` exactly as they are in the message."""
        return self.raw_lines_of_key(header_key(name))

    def raw_lines_of_key(self, key: str) -> list[bytes]:
        """``raw_lines`` of a lookup key (``header_key``) the caller has already."""
        return [self._lines[pos] for pos in self._positions(key)]

    def header_items(self) -> list[tuple[str, str]]:
        """(name as written, value) for every header line, in order."""
        out = []
        for pos, line in enumerate(self._lines):
            name = line[: line.index(b":")].rstrip(b" \t")
            out.append((decode_text(name), self._line_value(pos)))
        return out

    def set(self, name: str, value: str) -> None:
        """Replace every line of header ``name`` with one line (in place of the first)."""
        key = header_key(name)
        positions = self._positions(key)
        line = encode_text(f"{_spelling(name)}: {value}")
        if not positions:
            self._lines.append(line)
            self._keys.append(key)
            self._reindex()
        else:
            first = positions[0]
            self._lines[first] = line
            if len(positions) > 1:
                for pos in reversed(positions[1:]):
                    del self._lines[pos]
                    del self._keys[pos]
                self._reindex()
        self._changed(key)

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Add a line for header ``name``: after its last line, or before its first.

        A header not yet present goes at the end, or at the top with ``first``.
        """
        key = header_key(name)
        positions = self._positions(key)
        line = encode_text(f"{_spelling(name)}: {value}")
        if first:
            at = positions[0] if positions else 0
        else:
            at = positions[-1] + 1 if positions else len(self._lines)
        self._lines.insert(at, line)
        self._keys.insert(at, key)
        self._reindex()
        self._changed(key)

    def remove(self, name: str) -> int:
        """Remove every line of header ``name``; return how many went."""
        key = header_key(name)
        positions = self._positions(key)
        for pos in reversed(positions):
            del self._lines[pos]
            del self._keys[pos]
        if positions:
            self._reindex()
            self._changed(key)
        return len(positions)

    def _pop_first_value(self, key: str) -> str | None:
        """Remove the first value of a list header (one value of a line, or the line)."""
        positions = self._positions(key)
        if not positions:
            return None
        pos = positions[0]
        first, rest = first_value(self._line_value(pos))
        if rest:
            # The values after the first (as written, for a Via line).
            line = self._lines[pos]
            name = line[: line.index(b":")].rstrip(b" \t")
            self._lines[pos] = name + b": " + encode_text(rest)
        else:
            del self._lines[pos]
            del self._keys[pos]
            self._reindex()
        self._changed(key)
        return first or None

    # -- typed views (cached) -----------------------------------------------------

    def _required(self, key: str) -> str:
        pos = self._first(key)
        if pos < 0:
            raise ParseError(f"Missing {display_name(key)} header")
        return self._line_value(pos)

    def _parsed(self, key: str, parse: Callable[[str], _T]) -> _T:
        text = self._required(key)
        try:
            return parse(text)
        except ParseError as exc:
            raise ParseError(f"Bad {display_name(key)} header: {exc.reason}") from None

    def _address_list(self, key: str) -> list[Address]:
        out: list[Address] = []
        for pos in self._positions(key):
            try:
                out.extend(parse_address_list(self._line_value(pos)))
            except ParseError as exc:
                raise ParseError(f"Bad {display_name(key)} header: {exc.reason}") from None
        return out

    def _optional_int(self, key: str) -> int | None:
        pos = self._first(key)
        if pos < 0:
            return None
        text = self._line_value(pos)
        if text.isascii() and text.isdigit() and len(text) < 10:
            return int(text)
        return parse_non_negative_int(text, display_name(key))

    @property
    def vias(self) -> list[Via]:
        """Every Via, topmost first."""
        found = self._cache.get("vias", _MISSING)
        if found is _MISSING:
            positions = self._positions("via")
            vias: list[Via] = []
            top = self._cache.get("top_via")
            for pos in positions:
                text = self._line_value(pos)
                try:
                    if top is not None:
                        # The first Via is read already: parse the rest of its line.
                        vias.append(top)
                        top = None
                        text = first_value(text)[1]
                        if not text:
                            continue
                    vias.extend(parse_via_list(text))
                except ParseError as exc:
                    raise ParseError(f"Bad Via header: {exc.reason}") from None
            if not vias:
                raise ParseError("Missing Via header")
            found = self._cache["vias"] = vias
        return found  # type: ignore[no-any-return]

    @property
    def top_via(self) -> Via:
        """The topmost Via value; only that value is parsed for it."""
        cache = self._cache
        vias = cache.get("vias")
        if vias is not None:
            return vias[0]  # type: ignore[no-any-return]
        found = cache.get("top_via")
        if found is None:
            pos = self._first("via")
            if pos < 0:
                raise ParseError("Missing Via header")
            try:
                found = cache["top_via"] = parse_first_via(self._line_value(pos))
            except ParseError as exc:
                raise ParseError(f"Bad Via header: {exc.reason}") from None
        return found

    def share_top_via(self, other: Message) -> None:
        """Take ``other``'s topmost Via as already read, when it has been: for a
        response made from a request, whose Via lines are the request's."""
        cache = other._cache
        vias = cache.get("vias")
        found = vias[0] if vias is not None else cache.get("top_via")
        if found is not None:
            self._cache["top_via"] = found

    @property
    def branch(self) -> str | None:
        """The branch parameter of the topmost Via (fast path, no full Via parse)."""
        cache = self._cache
        found = cache.get("branch", _MISSING)
        if found is _MISSING:
            vias = cache.get("vias")
            top = vias[0] if vias is not None else cache.get("top_via")
            found = top.branch if top is not None else self._branch_of_line()
            cache["branch"] = found
        return found  # type: ignore[no-any-return]

    def _branch_of_line(self) -> str | None:
        """The branch read off the first Via line, without parsing the Via."""
        pos = self._first("via")
        if pos < 0:
            return None
        value = self._line_value(pos)
        if '"' in value:
            # A quoted parameter could hold ";branch=": parse properly.
            return self.top_via.branch
        if "," in value:
            value = first_value(value)[0]
        match = _BRANCH.search(value)
        return match.group(1) if match else None

    @property
    def call_id(self) -> str:
        found = self._cache.get("call_id", _MISSING)
        if found is _MISSING:
            found = self._cache["call_id"] = self._required("call-id")
        return found  # type: ignore[no-any-return]

    @property
    def cseq(self) -> CSeq:
        found = self._cache.get("cseq", _MISSING)
        if found is _MISSING:
            found = self._cache["cseq"] = self._parsed("cseq", CSeq.parse)
        return found  # type: ignore[no-any-return]

    @property
    def from_addr(self) -> Address:
        found = self._cache.get("from", _MISSING)
        if found is _MISSING:
            found = self._cache["from"] = self._parsed("from", Address.parse)
        return found  # type: ignore[no-any-return]

    @property
    def to_addr(self) -> Address:
        found = self._cache.get("to", _MISSING)
        if found is _MISSING:
            found = self._cache["to"] = self._parsed("to", Address.parse)
        return found  # type: ignore[no-any-return]

    def _tag(self, key: str) -> str | None:
        value = self._required(key)
        tail = _param_tail(value)
        if '"' in tail:
            # A quoted header parameter may hold '>' or ";tag=": parse properly.
            address: Address = self._parsed(key, Address.parse)
            return address.tag
        match = _TAG.search(tail)
        return match.group(1) if match else None

    @property
    def from_tag(self) -> str | None:
        cache = self._cache
        found = cache.get("from_tag", _MISSING)
        if found is _MISSING:
            parsed = cache.get("from")  # (read already: its tag, no second look)
            found = cache["from_tag"] = parsed.tag if parsed is not None else self._tag("from")
        return found  # type: ignore[no-any-return]

    @property
    def to_tag(self) -> str | None:
        cache = self._cache
        found = cache.get("to_tag", _MISSING)
        if found is _MISSING:
            parsed = cache.get("to")
            found = cache["to_tag"] = parsed.tag if parsed is not None else self._tag("to")
        return found  # type: ignore[no-any-return]

    @property
    def contacts(self) -> list[Address]:
        """Every Contact value; a ``*`` is one Address with ``wildcard`` set."""
        found = self._cache.get("contacts", _MISSING)
        if found is _MISSING:
            found = self._cache["contacts"] = self._address_list("contact")
        return found  # type: ignore[no-any-return]

    def addresses(self, name: str) -> list[Address]:
        """Every value of an address-list header (Route, Record-Route, Path, ...)."""
        return self._address_list(header_key(name))

    @property
    def max_forwards(self) -> int | None:
        found = self._cache.get("max_forwards", _MISSING)
        if found is _MISSING:
            found = self._cache["max_forwards"] = self._optional_int("max-forwards")
        return found  # type: ignore[no-any-return]

    @property
    def expires(self) -> int | None:
        found = self._cache.get("expires", _MISSING)
        if found is _MISSING:
            found = self._cache["expires"] = self._optional_int("expires")
        return found  # type: ignore[no-any-return]

    @property
    def content_length(self) -> int | None:
        found = self._cache.get("content_length", _MISSING)
        if found is _MISSING:
            found = self._cache["content_length"] = self._optional_int("content-length")
        return found  # type: ignore[no-any-return]

    # -- forwarding edits (splice a line, leave the rest as it came) -----------

    def push_via(self, value: str) -> None:
        """Add ``value`` as the new topmost Via (RFC 3261 16.6 step 8)."""
        self.add("Via", value, first=True)

    def set_top_via(self, value: str, parsed: Via | None = None) -> None:
        """Replace the topmost Via value in place (18.2.1 received / RFC 3581 rport).

        ``parsed`` is ``value`` as a ``Via`` when the caller has it: the Vias
        already read then stay read, with it on top, instead of being parsed
        again on the next read.
        """
        pos = self._first("via")
        if pos < 0:
            raise ParseError("Missing Via header")
        line = self._lines[pos]
        # A line without a comma holds one Via value: nothing follows it. (The
        # comma as a number: ``bytes in bytes`` first tries its needle as an
        # integer, and raises and clears a TypeError inside.)
        rest = first_value(self._line_value(pos))[1] if _COMMA in line else ""
        name = line[: line.index(b":")].rstrip(b" \t")
        self._lines[pos] = name + b": " + encode_text(f"{value}, {rest}" if rest else value)
        cache = self._cache
        vias = cache.get("vias")
        self._changed("via")
        if parsed is not None:
            cache["top_via"] = parsed
            if vias is not None:
                cache["vias"] = [parsed, *vias[1:]]

    def pop_via(self) -> str | None:
        """Remove the topmost Via value and return it (RFC 3261 16.7 step 3)."""
        return self._pop_first_value("via")

    def pop_route(self) -> str | None:
        """Remove the topmost Route value and return it (RFC 3261 16.4, 16.6 step 6)."""
        return self._pop_first_value("route")

    def add_record_route(self, value: str) -> None:
        """Add ``value`` as the topmost Record-Route (RFC 3261 16.6 step 4)."""
        self.add("Record-Route", value, first=True)

    def decrement_max_forwards(self, default: int = 70) -> int:
        """Decrement Max-Forwards, or add it with ``default`` when absent (16.6 step 3).

        Returns the new value.
        """
        current = self.max_forwards
        new = default if current is None else current - 1
        pos = self._first("max-forwards")
        if pos < 0:
            self._lines.append(b"Max-Forwards: %d" % new)
            self._keys.append("max-forwards")
            self._reindex()
        else:
            self._lines[pos] = b"Max-Forwards: %d" % new
        self._changed("max-forwards")
        self._cache["max_forwards"] = new
        return new

    # -- rendering ----------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.header_items())

    def to_bytes(self) -> bytes:
        """The message on the wire. Content-Length is kept equal to the body."""
        raw = self._raw
        if raw is not None:
            return raw
        if not self._length_ok:
            self._fix_length()
        raw = b"\r\n".join([self.start_line(), *self._lines]) + b"\r\n\r\n" + self.body
        self._raw = raw
        return raw

    def _fix_length(self) -> None:
        """Make the message carry one Content-Length line saying ``len(body)``.

        The line is compared as bytes, without indexing or decoding the
        headers: a response made here is rendered without any other read.
        Any other spelling of the value ("00", folded) is written again.
        """
        length = str(len(self._body))
        keys = self._keys
        count = keys.count("content-length")
        if count == 1:
            line = self._lines[keys.index("content-length")]
            if line[line.index(b":") + 1 :].strip(b" \t") == length.encode("ascii"):
                self._length_ok = True
                return
        if count == 0:
            self._lines.append(b"Content-Length: " + length.encode("ascii"))
            keys.append("content-length")
            self._reindex()
            self._changed("content-length")
        else:
            self.set("Content-Length", length)
        self._length_ok = True

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def copy_lines(self) -> tuple[list[bytes], list[str]]:
        return list(self._lines), list(self._keys)


def _lines_from(headers: Iterable[tuple[str, str]]) -> tuple[list[bytes], list[str]]:
    lines: list[bytes] = []
    keys: list[str] = []
    for name, value in headers:
        lines.append(encode_text(f"{name}: {value}"))
        keys.append(header_key(name))
    return lines, keys


class Request(Message):
    """A SIP request (RFC 3261 7.1)."""

    __slots__ = ("method", "uri", "version")

    def __init__(
        self,
        method: str,
        uri: str,
        lines: list[bytes],
        keys: list[str],
        body: bytes = b"",
        raw: bytes | None = None,
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(lines, keys, body, raw)
        self.method = method
        self.uri = uri
        self.version = version

    @classmethod
    def new(
        cls, method: str, uri: str, headers: Iterable[tuple[str, str]], body: bytes = b""
    ) -> Request:
        """A request built by Centrex itself; Content-Length follows the body."""
        lines, keys = _lines_from(headers)
        return cls(method, uri, lines, keys, body)

    def start_line(self) -> bytes:
        return encode_text(f"{self.method} {self.uri} {self.version}")

    @property
    def request_uri(self) -> URI:
        """The parsed Request-URI."""
        found = self._cache.get("request_uri", _MISSING)
        if found is _MISSING:
            found = self._cache["request_uri"] = parse_uri(self.uri)
        return found  # type: ignore[no-any-return]

    def set_uri(self, uri: str | URI) -> None:
        """Rewrite the Request-URI (RFC 3261 16.6 step 2, 16.5 retargeting)."""
        self.uri = str(uri)
        self._cache.pop("request_uri", None)
        self._raw = None

    def copy(self) -> Request:
        """An independent copy (for forking: RFC 3261 16.6 step 1)."""
        lines, keys = self.copy_lines()
        return Request(self.method, self.uri, lines, keys, self.body, self._raw, self.version)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response (RFC 3261 7.2)."""

    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str,
        lines: list[bytes],
        keys: list[str],
        body: bytes = b"",
        raw: bytes | None = None,
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(lines, keys, body, raw)
        self.status = status
        self.reason = reason
        self.version = version

    @classmethod
    def new(
        cls, status: int, reason: str, headers: Iterable[tuple[str, str]], body: bytes = b""
    ) -> Response:
        lines, keys = _lines_from(headers)
        return cls(status, reason, lines, keys, body)

    def start_line(self) -> bytes:
        return encode_text(f"{self.version} {self.status} {self.reason}")

    def set_status(self, status: int, reason: str) -> None:
        """Change the status line (a proxy turning a 503 into 500, 16.7 step 6)."""
        self.status = status
        self.reason = reason
        self._raw = None

    def copy(self) -> Response:
        lines, keys = self.copy_lines()
        return Response(self.status, self.reason, lines, keys, self.body, self._raw, self.version)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"
