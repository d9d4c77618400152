"""The connection table: open TCP/TLS connections by id and by peer (RFC 3261 18.1.1, 18.2.2).

A connection is found by the id a message carried (``Peer.connection_id``) or
by (transport, remote host, remote port), so a request to a peer reuses the
connection that peer opened and a response goes back over the one its request
came on. The table also counts inbound connections per remote address, and
opens outbound connections, one attempt per peer however many callers wait.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from centrex.transport.address import STREAM_TRANSPORTS, Peer
from centrex.transport.connection import StreamConnection
from centrex.transport.limits import TransportLimits
from centrex.transport.tls import client_context

logger = logging.getLogger(__name__)

Key = tuple[str, str, int]


class ConnectionTable:
    """Open connections, the per-address count, and outbound connecting."""

    def __init__(self, limits: TransportLimits, client_tls: ssl.SSLContext | None) -> None:
        self.limits = limits
        self._client_tls = client_tls
        self._by_id: dict[int, StreamConnection] = {}
        self._by_key: dict[Key, StreamConnection] = {}
        self._per_host: dict[str, int] = {}
        # Inbound TLS connections still in their handshake, by address: they
        # hold a descriptor each, so they count toward the same limit.
        self._handshaking: dict[str, int] = {}
        self._connecting: dict[Key, asyncio.Future[StreamConnection | None]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def connections(self) -> list[StreamConnection]:
        return list(self._by_id.values())

    def find(self, peer: Peer) -> StreamConnection | None:
        """The open connection for ``peer``: by ``connection_id``, else by address."""
        if peer.transport not in STREAM_TRANSPORTS:
            return None
        if peer.connection_id is not None:
            connection = self._by_id.get(peer.connection_id)
            if connection is not None and connection.is_open:
                return connection
        connection = self._by_key.get(peer.key)
        return connection if connection is not None and connection.is_open else None

    def admit(self, connection: StreamConnection) -> bool:
        """Enter a connection that is up; False when its address is at the limit."""
        peer = connection.peer
        assert peer is not None
        if connection.inbound:
            count = self._held_by(peer.host)
            if count >= self.limits.max_connections_per_address:
                logger.warning("connection from %s refused: %d already open", peer, count)
                return False
            self._per_host[peer.host] = self._per_host.get(peer.host, 0) + 1
        self._by_id[connection.connection_id] = connection
        self._by_key[peer.key] = connection
        return True

    def begin_handshake(self, host: str) -> bool:
        """Count an inbound TLS connection from ``host`` whose handshake starts
        now; False (nothing counted) when ``host`` is at the limit already."""
        count = self._held_by(host)
        if count >= self.limits.max_connections_per_address:
            logger.warning("TLS connection from %s refused: %d already open", host, count)
            return False
        self._handshaking[host] = self._handshaking.get(host, 0) + 1
        return True

    def _held_by(self, host: str) -> int:
        """The inbound connections ``host`` holds: open, or in their TLS handshake."""
        return self._per_host.get(host, 0) + self._handshaking.get(host, 0)

    def end_handshake(self, host: str) -> None:
        """The handshake ``begin_handshake`` counted is over, done or failed."""
        left = self._handshaking.get(host, 1) - 1
        if left > 0:
            self._handshaking[host] = left
        else:
            self._handshaking.pop(host, None)

    def forget(self, connection: StreamConnection) -> bool:
        """Remove a closed connection; False when it was never admitted."""
        if self._by_id.pop(connection.connection_id, None) is None:
            return False
        peer = connection.peer
        assert peer is not None
        if self._by_key.get(peer.key) is connection:
            del self._by_key[peer.key]
        if connection.inbound:
            left = self._per_host.get(peer.host, 1) - 1
            if left > 0:
                self._per_host[peer.host] = left
            else:
                self._per_host.pop(peer.host, None)
        return True

    async def connect(
        self,
        peer: Peer,
        server_name: str | None,
        make: Callable[[str, int], StreamConnection],
        next_id: Callable[[], int],
        source: str | None = None,
    ) -> StreamConnection | None:
        """Open a connection to ``peer``; concurrent callers share one attempt.

        ``make(transport, connection_id)`` builds the protocol object.
        ``server_name`` is the TLS identity to check (RFC 5922 7.2; default:
        the peer's host). ``source``: the local address to connect from (any
        port; None: the kernel's choice). None when it fails within
        ``connect_timeout``.
        """
        key = peer.key
        pending = self._connecting.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[StreamConnection | None] = asyncio.get_running_loop().create_future()
        self._connecting[key] = future
        connection: StreamConnection | None = None
        try:
            connection = await self._open(peer, server_name, make, next_id(), source)
        finally:
            del self._connecting[key]
            future.set_result(connection)
        return connection

    async def _open(
        self,
        peer: Peer,
        server_name: str | None,
        make: Callable[[str, int], StreamConnection],
        connection_id: int,
        source: str | None,
    ) -> StreamConnection | None:
        context: ssl.SSLContext | None = None
        if peer.transport == "tls":
            if self._client_tls is None:
                self._client_tls = client_context()
            context = self._client_tls
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: make(peer.transport, connection_id),
                    peer.host,
                    peer.port,
                    ssl=context,
                    server_hostname=(server_name or peer.host) if context else None,
                    local_addr=None if source is None else (source, 0),
                ),
                self.limits.connect_timeout,
            )
        except OSError as exc:  # includes ssl.SSLError and TimeoutError
            logger.info("cannot connect to %s: %s", peer, exc)
            return None
        return connection if connection.is_open else None
