"""The bounds a peer cannot push the transports past (RFC 3261 18.3, 18.4; RFC 5626 4.4).

Bad or hostile input must cost a bounded amount of memory and time per peer:
these are those bounds. Every one has a default fit for a hosted PBX.
"""

from __future__ import annotations

from dataclasses import dataclass

from centrex.sip.parser import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_LINES

#: The largest UDP payload an IP datagram can carry (RFC 768 length field).
MAX_UDP_DATAGRAM = 65535


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Per-peer bounds of the UDP, TCP and TLS transports.

    * ``max_connections_per_address``: open inbound TCP/TLS connections from
      one remote IP address; a connection beyond it is accepted and closed at
      once. A whole office behind one NAT address shares it, hence the
      generous default.
    * ``max_header_bytes``, ``max_body_bytes``, ``max_lines``: one message; on
      a stream they bound what a connection buffers (``StreamFramer``), so a
      header block past them is answered 513 and the connection closed.
    * ``max_datagram_bytes``: a larger UDP datagram is dropped unread.
    * ``idle_timeout``: seconds without traffic either way after which a
      TCP/TLS connection is closed (None: never). Closing a connection ends
      the registrations made over it, so this should exceed the refresh
      interval of clients that send no keep-alives (about half their Expires).
    * ``connect_timeout``: seconds to open an outbound connection (including
      the TLS handshake) and to complete an inbound TLS handshake.
    * ``max_write_buffer_bytes``: bytes queued towards a peer that does not
      read; past it the connection is dropped.
    """

    max_connections_per_address: int = 256
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_lines: int = DEFAULT_MAX_LINES
    max_datagram_bytes: int = MAX_UDP_DATAGRAM
    idle_timeout: float | None = 3600.0
    connect_timeout: float = 10.0
    max_write_buffer_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        for name in (
            "max_connections_per_address",
            "max_header_bytes",
            "max_body_bytes",
            "max_lines",
            "max_datagram_bytes",
            "max_write_buffer_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"transport limit {name} must be at least 1")
        if self.max_datagram_bytes > MAX_UDP_DATAGRAM:
            raise ValueError(f"transport limit max_datagram_bytes must be <= {MAX_UDP_DATAGRAM}")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ValueError("transport limit idle_timeout must be positive (or None)")
        if self.connect_timeout <= 0:
            raise ValueError("transport limit connect_timeout must be positive")
