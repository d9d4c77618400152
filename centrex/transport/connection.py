"""One TCP or TLS connection (RFC 3261 18.3; RFC 5626 4.4.1 keep-alives).

The inbound bytes are framed by ``StreamFramer``: each whole message goes to
the owner (the ``TransportLayer``), a double-CRLF ping is answered with a CRLF
pong here, and a framing error is reported with the start of the unframed
bytes (for the error response) before the connection is closed. An idle
timer closes a connection nobody uses.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

from centrex.sip.errors import ParseError
from centrex.sip.framing import PONG, FramedMessage, FramingError, StreamFramer
from centrex.transport.address import LocalSocket, Peer
from centrex.transport.limits import TransportLimits

logger = logging.getLogger(__name__)


class ConnectionOwner(Protocol):
    """What a connection reports to (implemented by ``TransportLayer``)."""

    def connection_opened(self, connection: StreamConnection) -> bool:
        """A connection is up; False to refuse it (it is then closed at once)."""
        ...

    def connection_closed(self, connection: StreamConnection) -> None:
        """A connection opened before has gone, for whatever reason."""
        ...

    def stream_message(self, data: bytes, connection: StreamConnection) -> None:
        """The bytes of one whole framed message."""
        ...

    def framing_failed(self, connection: StreamConnection, error: ParseError, head: bytes) -> None:
        """Framing failed; ``head`` is the start of the bytes that could not be framed."""
        ...


class StreamConnection(asyncio.Protocol):
    """An asyncio protocol for one TCP or TLS connection, inbound or outbound.

    ``peer`` and ``local`` are set once the connection is made (for TLS, once
    the handshake is done). ``closed`` resolves when it is gone.
    """

    def __init__(
        self,
        owner: ConnectionOwner,
        transport_name: str,
        connection_id: int,
        limits: TransportLimits,
        *,
        inbound: bool,
    ) -> None:
        self._owner = owner
        self.transport_name = transport_name
        self.connection_id = connection_id
        self.inbound = inbound
        self._limits = limits
        self._framer = StreamFramer(
            max_header_bytes=limits.max_header_bytes,
            max_body_bytes=limits.max_body_bytes,
            max_lines=limits.max_lines,
        )
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._last_activity = self._loop.time()
        self._idle_handle: asyncio.TimerHandle | None = None
        self._closing = False
        self.peer: Peer | None = None
        self.local: LocalSocket | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()
        # An inbound TLS connection's address while its handshake counts
        # toward the per-address limit (``TransportLayer._handshake``).
        self._handshake_host: str | None = None

    def count_handshake(self, host: str) -> None:
        """Mark this connection's handshake as counted for ``host``."""
        self._handshake_host = host

    def take_handshake(self) -> str | None:
        """The host whose handshake count this connection still holds, once
        (None after the first call): whoever takes it ends that count.

        (A method, not an attribute the layer reads back: the compiled layer
        would take an attribute it set to a ``str`` for one ever after.)
        """
        host, self._handshake_host = self._handshake_host, None
        return host

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = self._transport = cast(asyncio.Transport, base)
        peername = transport.get_extra_info("peername")
        sockname = transport.get_extra_info("sockname")
        if not peername or not sockname:
            # Gone before we could look at it.
            self._closing = True
            transport.abort()
            return
        self.peer = Peer(self.transport_name, peername[0], peername[1], self.connection_id)
        self.local = LocalSocket(self.transport_name, sockname[0], sockname[1])
        if not self._owner.connection_opened(self):
            self._closing = True
            transport.abort()
            return
        self._last_activity = self._loop.time()
        if self._limits.idle_timeout is not None:
            self._arm_idle(self._limits.idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_activity = self._loop.time()
        failure: FramingError | None = None
        try:
            events = self._framer.feed(data)
        except FramingError as exc:
            events, failure = exc.events, exc
        for event in events:
            if self._closing:
                return
            if isinstance(event, FramedMessage):
                self._owner.stream_message(event.data, self)
            else:
                self.write(PONG)
        if failure is not None and not self._closing:
            try:
                self._owner.framing_failed(self, failure, failure.head)
            finally:
                self.close()

    def eof_received(self) -> bool | None:
        # The peer half-closed: nothing more can arrive, so close our side too.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if exc is not None:
            logger.debug("connection %s lost: %s", self.peer, exc)
        try:
            if self.peer is not None:
                self._owner.connection_closed(self)
        finally:
            if not self.closed.done():
                self.closed.set_result(None)

    # -- used by the layer -----------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True while messages can be written to the connection."""
        transport = self._transport
        return not self._closing and transport is not None and not transport.is_closing()

    def write(self, data: bytes) -> bool:
        """Queue ``data`` for the peer; False when the connection is closed.

        A peer that lets more than ``max_write_buffer_bytes`` pile up is cut
        off: it is not reading, and its queue would grow without bound.
        """
        transport = self._transport
        if self._closing or transport is None or transport.is_closing():
            return False
        transport.write(data)
        self._last_activity = self._loop.time()
        if transport.get_write_buffer_size() > self._limits.max_write_buffer_bytes:
            logger.warning("connection %s: peer is not reading; dropping it", self.peer)
            self.abort()
            return False
        return True

    def close(self) -> None:
        """Close after the queued bytes are written."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping whatever is queued."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    # -- internals ---------------------------------------------------------------

    def _arm_idle(self, delay: float) -> None:
        self._idle_handle = self._loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        # One timer per idle period, not one per packet: re-armed for the rest
        # of the period when there was traffic since it was set.
        timeout = self._limits.idle_timeout
        if timeout is None or self._closing:
            return
        remaining = self._last_activity + timeout - self._loop.time()
        if remaining > 0:
            self._arm_idle(remaining)
            return
        logger.debug("connection %s idle for %ss: closing", self.peer, timeout)
        self._idle_handle = None
        self.close()
