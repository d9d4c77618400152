"""Typed errors of the SIP protocol core.

Every error says what the receiver should do about it: answer with ``status``
(and ``reason`` as the reason phrase), or drop the input silently when
``status`` is None (garbage, or a malformed response, which RFC 3261 18.1.2 says
is discarded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from centrex.sip.message import Request


class SIPError(Exception):
    """Base class of every error raised by ``centrex.sip``."""


class ParseError(SIPError):
    """Input that is not a valid SIP message (or header value).

    ``status`` is the response a server must send (400, 413, 505, 513, ...) or
    None when the input must be dropped. ``request`` is the partly parsed request
    when there is enough of it to build that response.
    """

    def __init__(
        self,
        reason: str,
        status: int | None = 400,
        *,
        request: Request | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.request = request

    @property
    def drop(self) -> bool:
        """True when the input gets no answer at all."""
        return self.status is None

    def __repr__(self) -> str:
        return f"ParseError({self.reason!r}, status={self.status!r})"
