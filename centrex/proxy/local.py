"""Who "myself" is: the served domains and the addresses Centrex listens on.

RFC 3261 16.4 asks a proxy whether a Request-URI or a Route value names itself;
16.6 step 4 and 8 need the address to put in Record-Route and Via. This module
answers both from the listening sockets, the configured domains and, for
wildcard listeners, the advertised (or detected) address.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Final

from centrex.sip.uri import URI, SipURI
from centrex.transport.address import route_source

_WILDCARDS: Final = frozenset({"0.0.0.0", "::"})
_DETECT_LIMIT: Final = 1024


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass
class LocalIdentity:
    """The domains Centrex serves and the sockets it listens on.

    ``listening`` holds (transport, host, port) of every bound socket; a
    wildcard host (0.0.0.0, ::) stands for every local address, and the
    address written into Via and Record-Route for it is ``advertised`` or, when
    empty, the local address the system routes to the peer through.
    """

    domains: list[str]
    listening: list[tuple[str, str, int]]
    advertised: str = ""
    names: set[str] = field(default_factory=set)
    #: ``registrar.related_domains`` not served here: their users are ours too.
    related: frozenset[str] = frozenset()
    _detected: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.domains = [d.lower() for d in self.domains]
        # Every local address is ours only on a wildcard listener of its
        # family; with listeners on given addresses, only those are (another
        # instance on this machine, on another address and the same port, is
        # someone else: its Record-Route is not ours to take off).
        self._wildcards = {":" in host for _, host, _ in self.listening if host in _WILDCARDS}
        hosts: set[str] = set()
        if False in self._wildcards:
            hosts |= {"127.0.0.1", "localhost", socket.gethostname().lower()}
        if True in self._wildcards:
            hosts |= {"::1", "localhost", socket.gethostname().lower()}
        for _, host, _ in self.listening:
            if host not in _WILDCARDS:
                hosts.add(host.lower())
        if self.advertised:
            hosts.add(_unbracket(self.advertised.lower()))
        self.names |= hosts
        self._ports = {port for _, _, port in self.listening}

    # -- is it me? --------------------------------------------------------------------

    def is_served_domain(self, host: str) -> bool:
        return _unbracket(host.lower()).rstrip(".") in self.domains

    def is_local_host(self, host: str) -> bool:
        host = _unbracket(host.lower()).rstrip(".")
        return host in self.names or host in self.domains or self._is_local_address(host)

    def _is_local_address(self, host: str) -> bool:
        """An IP literal we could bind to is ours. Names are never resolved here
        (that would block the event loop): a name is ours only if configured."""
        if host in self._detected.values():
            return True
        if not _is_ip_literal(host) or (":" in host) not in self._wildcards:
            return False
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((host, 0))
        except OSError:
            return False
        if len(self.names) < _DETECT_LIMIT:
            self.names.add(host)
        return True

    def is_myself(self, uri: URI) -> bool:
        """True when ``uri`` names this proxy: a local host or served domain on our port.

        A served domain with no port counts (the domain's SIP service is us);
        an address counts with our port or none.
        """
        if not isinstance(uri, SipURI):
            return False
        host = uri.host
        if uri.port is None:
            return self.is_local_host(host)
        return uri.port in self._ports and self.is_local_host(host)

    def canonical_domain(self, host: str, port: int | None = None) -> str | None:
        """The served domain ``host`` stands for: itself, or for one of our
        addresses (on our port) the first served domain (phones often register
        to an IP). Another port on one of our addresses is someone else."""
        host = _unbracket(host.lower()).rstrip(".")
        if host in self.domains:
            return host
        if port is not None and port not in self._ports:
            return None
        if self.domains and self.is_local_host(host):
            return self.domains[0]
        return None

    def related_domain(self, host: str) -> str | None:
        """``host`` when it is one of ``related`` (compared as a domain)."""
        host = _unbracket(host.lower()).rstrip(".")
        return host if host in self.related else None

    # -- what to write ------------------------------------------------------------------

    def socket_for(self, transport: str, family_host: str) -> tuple[str, int] | None:
        """The listening (host, port) to send ``transport`` from, toward ``family_host``."""
        ipv6 = ":" in family_host
        fallback: tuple[str, int] | None = None
        for kind, host, port in self.listening:
            if kind != transport:
                continue
            if (":" in host) == ipv6:
                return host, port
            fallback = fallback or (host, port)
        return fallback

    def address_toward(self, local_host: str, peer_host: str) -> str:
        """The address to advertise for ``local_host`` when talking to ``peer_host``."""
        if local_host not in _WILDCARDS:
            return _bracket(local_host)
        if self.advertised:
            return self.advertised
        detected = self._detected.get(peer_host)
        if detected is None and not _is_ip_literal(peer_host):
            detected = "::1" if ":" in local_host else "127.0.0.1"
        if detected is None:
            detected = route_source(peer_host) or ("::1" if ":" in peer_host else "127.0.0.1")
            if len(self._detected) < _DETECT_LIMIT:
                self._detected[peer_host] = detected
        return _bracket(detected)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
