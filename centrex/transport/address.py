"""Where a message came from and where Centrex listens (RFC 3261 18, 18.1.1, 19.1.2).

``Peer`` names the far end of one message: the transport, the remote address
and, on a stream transport, the connection it came over, so that a response
can go back over that very connection (RFC 3261 18.2.2). ``LocalSocket`` names
Centrex's end. ``ListenAddress`` is one ``transport:host:port`` entry of the
configuration.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Final, Literal

from centrex.sip.uri import is_valid_host

TransportName = Literal["udp", "tcp", "tls"]

TRANSPORTS: Final = frozenset({"udp", "tcp", "tls"})
STREAM_TRANSPORTS: Final = frozenset({"tcp", "tls"})

#: RFC 3261 19.1.2: 5060 for sip over UDP and TCP, 5061 for TLS.
DEFAULT_PORTS: Final[dict[str, int]] = {"udp": 5060, "tcp": 5060, "tls": 5061}


def default_port(transport: str) -> int:
    """The port a SIP element listens on for ``transport`` (RFC 3261 19.1.2)."""
    return DEFAULT_PORTS[transport]


# Bound once: compiled, a module's attribute is looked up by name at every use.
_AF_INET: Final = socket.AF_INET
_AF_INET6: Final = socket.AF_INET6
_inet_pton: Final = socket.inet_pton


def ip_family(host: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 for an IP literal (no brackets), None for a host name."""
    family = _AF_INET6 if ":" in host else _AF_INET
    try:
        _inet_pton(family, host.partition("%")[0])
    except OSError:
        return None
    return family


def route_source(peer_host: str) -> str | None:
    """The local address the system would send from to reach ``peer_host`` (an
    IP literal): a UDP socket connected to it, nothing sent; None when there
    is no route."""
    family = socket.AF_INET6 if ":" in peer_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer_host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return None


def bracketed(host: str) -> str:
    """``host`` as it is written before ``:port``: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def unbracketed(host: str) -> str:
    """``host`` as the socket API wants it: an IPv6 reference without brackets."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


@dataclass(frozen=True, slots=True)
class Peer:
    """The far end of a message (RFC 3261 18.2.1, 18.2.2).

    ``host`` is an IP address as the socket API gives it (IPv6 without
    brackets) or, for an outbound destination, possibly a host name.
    ``connection_id`` identifies the TCP/TLS connection a message came over
    (None for UDP and for a destination not yet connected); bindings made over
    a connection go when ``on_connection_closed`` reports it (RFC 5626 5.3).
    """

    transport: str
    host: str
    port: int
    connection_id: int | None = None

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        transport: str,
        host: str,
        port: int,
        connection_id: int | None = None,
    ) -> None:
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "connection_id", connection_id)

    @property
    def reliable(self) -> bool:
        """True for TCP and TLS (RFC 3261 17.1.1.2: no retransmissions)."""
        return self.transport in STREAM_TRANSPORTS

    @property
    def key(self) -> tuple[str, str, int]:
        """The connection-table key: transport, remote host, remote port (18.1.1)."""
        return (self.transport, self.host, self.port)

    @property
    def hostport(self) -> str:
        """``host:port`` with an IPv6 host in brackets."""
        return f"{bracketed(self.host)}:{self.port}"

    def __str__(self) -> str:
        tail = "" if self.connection_id is None else f"#{self.connection_id}"
        return f"{self.transport}:{self.hostport}{tail}"


@dataclass(frozen=True, slots=True)
class LocalSocket:
    """Centrex's end of a message: the socket it arrived on or leaves from.

    For UDP this is the bound address of the listening socket (a wildcard
    address when bound to one); for TCP/TLS it is the local address of the
    connection, so it names the interface the peer reached.
    """

    transport: str
    host: str
    port: int

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, transport: str, host: str, port: int) -> None:
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)

    # Written out too, for the same reason: a reply over UDP looks up the
    # socket it leaves from by its LocalSocket (TransportLayer._udp_endpoint).
    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, LocalSocket):
            return NotImplemented
        return (
            self.port == other.port
            and self.host == other.host
            and self.transport == other.transport
        )

    def __hash__(self) -> int:
        return hash((self.transport, self.host, self.port))

    @property
    def hostport(self) -> str:
        """``host:port`` with an IPv6 host in brackets (a Via sent-by, 20.42)."""
        return f"{bracketed(self.host)}:{self.port}"

    def __str__(self) -> str:
        return f"{self.transport}:{self.hostport}"

    @classmethod
    def parse(cls, text: str) -> LocalSocket | None:
        """Read back ``str(socket)`` (``udp:192.0.2.1:5060``, ``ws:[::1]:8080``),
        as a binding or a subscription keeps it; None for anything else (an
        empty string from a file written before it was kept)."""
        transport, _, hostport = text.partition(":")
        host, colon, port = hostport.rpartition(":")
        if not colon or not host or not port.isdigit() or not transport.isalpha():
            return None
        return cls(transport, unbracketed(host), int(port))


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """One listening socket from the configuration: ``transport:host[:port]``.

    ``host`` keeps an IPv6 literal without brackets; ``port`` 0 asks the
    system for a free port (see ``TransportLayer.bound``).
    """

    transport: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """Parse ``udp:0.0.0.0:5060``, ``tcp:[::]:5060``, ``tls:sip.example.com``.

        A missing port is the transport's default (RFC 3261 19.1.2). IPv6
        addresses must be in brackets. ValueError names the entry and what is
        expected.
        """
        transport, colon, rest = text.strip().partition(":")
        transport = transport.lower()
        if not colon or transport not in TRANSPORTS:
            raise ValueError(
                f"listen address {text!r}: expected 'udp:', 'tcp:' or 'tls:' "
                "followed by host[:port]"
            )
        if rest.startswith("["):
            close = rest.find("]")
            if close < 0:
                raise ValueError(f"listen address {text!r}: missing ']' after the IPv6 address")
            host, tail = rest[: close + 1], rest[close + 1 :]
            if tail and not tail.startswith(":"):
                raise ValueError(f"listen address {text!r}: expected ':port' after ']'")
            port_text = tail[1:] if tail else None
        else:
            if rest.count(":") > 1:
                raise ValueError(
                    f"listen address {text!r}: write an IPv6 address in brackets, "
                    "e.g. 'udp:[::]:5060'"
                )
            host, colon, port_text_found = rest.partition(":")
            port_text = port_text_found if colon else None
        if not host or not is_valid_host(host):
            raise ValueError(f"listen address {text!r}: {host!r} is not a host name or address")
        if port_text is None:
            port = default_port(transport)
        elif port_text.isdigit() and len(port_text) <= 5 and int(port_text) <= 65535:
            port = int(port_text)
        else:
            raise ValueError(f"listen address {text!r}: port must be a number 0..65535")
        return cls(transport, unbracketed(host), port)

    def __str__(self) -> str:
        return f"{self.transport}:{bracketed(self.host)}:{self.port}"
