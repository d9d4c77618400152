"""Framing SIP messages on a byte stream (TCP, TLS): RFC 3261 18.3, RFC 5626 4.4.1.

``StreamFramer`` is fed arbitrary chunks and hands back whole messages framed by
Content-Length. CRLFs between messages are skipped (7.5); a double CRLF is the
RFC 5626 keep-alive ping, answered by the caller with a single CRLF (``Ping``).
Limits bound the memory one connection can take; exceeding one is a
``ParseError`` after which the connection must be closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from centrex.sip.errors import ParseError
from centrex.sip.parser import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_LINES,
)

# Content-Length or its compact form l, at the start of a header line.
_CONTENT_LENGTH: Final = re.compile(
    rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE
)

PONG: Final = b"\r\n"


def _bare_lf(buf: bytearray) -> bool:
    """True when the start-line in ``buf`` ends in a bare LF (no CR)."""
    first = buf.find(b"\n")
    return first > 0 and buf[first - 1] != 13


@dataclass(frozen=True, slots=True)
class FramedMessage:
    """The bytes of one whole message, ready for ``parse_message(..., stream=True)``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """An RFC 5626 double-CRLF keep-alive: answer it with ``PONG``."""


PING: Final = Ping()
StreamEvent = FramedMessage | Ping


class FramingError(ParseError):
    """The stream cannot be framed any further; the connection must close.

    ``events`` are the whole messages (and pings) that came before the fault
    in the same chunk, to be handled first; ``head`` is the start of the bytes
    that could not be framed, enough to build the error response from.
    """

    def __init__(self, error: ParseError, events: list[StreamEvent], head: bytes) -> None:
        super().__init__(error.reason, error.status)
        self.events = events
        self.head = head


class StreamFramer:
    """Incremental Content-Length framing of one connection's inbound bytes."""

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_lines: int = DEFAULT_MAX_LINES,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.max_lines = max_lines
        self._buffer = bytearray()
        self._need: int | None = None  # whole length of the message being read
        self._search_from = 0  # where to resume looking for the end of headers

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Take a chunk; return every event it completes, in order.

        Raises ``FramingError`` (carrying the events completed before the fault)
        when the stream breaks a limit or cannot be framed.
        """
        self._buffer += data
        events: list[StreamEvent] = []
        while True:
            try:
                event = self._next()
            except ParseError as exc:
                head = bytes(self._buffer[: self.max_header_bytes])
                raise FramingError(exc, events, head) from None
            if event is None:
                return events
            events.append(event)

    def _next(self) -> StreamEvent | None:
        buf = self._buffer
        if self._need is None:
            skipped = self._skip_crlfs()
            if skipped is PING:
                return PING
            if skipped or not buf:
                return None
            if _bare_lf(buf):
                # Bare LF line ends, as the datagram parser tolerates them:
                # the header block ends at the first empty line of that kind.
                end, gap = buf.find(b"\n\n", max(0, self._search_from - 1)), 2
            else:
                end, gap = buf.find(b"\r\n\r\n", max(0, self._search_from - 3)), 4
            if end < 0:
                if len(buf) > self.max_header_bytes:
                    raise ParseError("Header block too large", 513)
                self._search_from = len(buf)
                return None
            if end > self.max_header_bytes:
                raise ParseError("Header block too large", 513)
            head = bytes(buf[:end])
            if gap == 2:
                head = head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if head.count(b"\r\n") + 1 > self.max_lines:
                raise ParseError("Too many header lines", 513)
            self._need = end + gap + self._body_length(head)
            self._search_from = 0
        need = self._need
        if len(buf) < need:
            return None
        message = bytes(buf[:need])
        del buf[:need]
        self._need = None
        return FramedMessage(message)

    def _skip_crlfs(self) -> Ping | bool:
        """Drop line ends before a start-line (7.5); a CRLF pair there is a ping.

        Returns PING, True when more bytes are needed to tell, else False.
        """
        buf = self._buffer
        while buf and buf[0] in b"\r\n":
            if buf[:4] == b"\r\n\r\n":
                del buf[:4]
                return PING
            if len(buf) < 4 and b"\r\n\r\n".startswith(buf):
                return True
            del buf[: 2 if buf[:2] == b"\r\n" else 1]
        return False

    def _body_length(self, head: bytes) -> int:
        found = _CONTENT_LENGTH.findall(head)
        if not found:
            # 18.3: mandatory on streams. Without it the stream cannot be framed.
            raise ParseError("Missing Content-Length on a stream transport")
        if len(found) > 1 and len(set(v.strip() for v in found)) > 1:
            raise ParseError("Conflicting Content-Length headers")
        text = found[0].strip()
        if not text.isdigit() or len(text) > 10:
            raise ParseError("Bad Content-Length header")
        length = int(text)
        if length > self.max_body_bytes:
            raise ParseError("Body too large", 413)
        return length
