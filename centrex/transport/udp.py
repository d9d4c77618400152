"""One UDP socket (RFC 3261 18.1.1, 18.2.1; RFC 768).

Each datagram is one message (18.3): no framing, no state per peer. The
socket is made here rather than by asyncio so that an IPv6 one is IPv6-only
and can share its port number with an IPv4 one, as the TCP listeners do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Final, Protocol, cast

from centrex.transport.address import LocalSocket, Peer

logger: Final = logging.getLogger(__name__)


class DatagramOwner(Protocol):
    """What a UDP endpoint hands its datagrams to (``TransportLayer``)."""

    def datagram(self, data: bytes, peer: Peer, local: LocalSocket) -> None: ...


class UdpEndpoint(asyncio.DatagramProtocol):
    """The asyncio protocol of one bound UDP socket."""

    def __init__(self, owner: DatagramOwner, max_datagram_bytes: int) -> None:
        self._owner = owner
        self._max = max_datagram_bytes
        self.transport: asyncio.DatagramTransport | None = None
        self.local = LocalSocket("udp", "", 0)
        self.family = socket.AF_INET

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        self.family = sock.family
        host, port = transport.get_extra_info("sockname")[:2]
        self.local = LocalSocket("udp", host, port)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) > self._max:
            logger.debug("udp %s: %d-byte datagram from %s dropped", self.local, len(data), addr)
            return
        self._owner.datagram(data, Peer("udp", str(addr[0]), int(addr[1])), self.local)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable and the like) for earlier sends: the
        # transaction layer's timers deal with the silence (17.1.4).
        logger.debug("udp %s: %s", self.local, exc)

    def sendto(self, data: bytes, host: str, port: int) -> bool:
        """Send one datagram; False when the socket is closed."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.sendto(data, (host, port))
        return True


#: Receive buffer asked for each UDP listening socket.
RECEIVE_BUFFER_BYTES: Final = 8 * 1024 * 1024


def bind_udp_socket(
    family: socket.AddressFamily, sockaddr: tuple[str | int, ...], *, reuse_port: bool = False
) -> socket.socket:
    """A non-blocking UDP socket bound to ``sockaddr``; IPv6 sockets IPv6-only.

    ``reuse_port``: SO_REUSEPORT, for the workers that share the address
    (the kernel hands each datagram to one of them by a hash of its source).
    """
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # A burst (a flood, or many phones re-registering at once) must not
        # overflow the kernel's queue and drop honest packets with it: ask for
        # a large receive buffer; the kernel caps it at net.core.rmem_max.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        sock.bind(sockaddr)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
