"""Finding the next hop for a SIP URI (RFC 3263, the parts a proxy needs).

* transport: the URI's ``transport`` parameter; ``sips`` means TLS; otherwise
  UDP (4.1);
* an IP address, or a name with an explicit port: an A/AAAA lookup (4.2);
* a name without a port: SRV records ``_sip._udp`` / ``_sip._tcp`` /
  ``_sips._tcp`` first (4.2), by priority then weight, else A/AAAA of the name
  itself on the default port.

SRV lookups use dnspython's async resolver; addresses come from the system
resolver (``getaddrinfo``), which also knows /etc/hosts.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from centrex.sip.uri import SipURI
from centrex.transport.address import Peer, default_port, ip_family, unbracketed

logger = logging.getLogger(__name__)

_SRV_PREFIX = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}


def uri_transport(uri: SipURI) -> str:
    """RFC 3263 4.1 with the transports Centrex has."""
    if uri.scheme == "sips":
        return "tls"
    param = (uri.transport or "udp").lower()
    return param if param in ("udp", "tcp", "tls") else "udp"


async def _srv(name: str, transport: str) -> list[tuple[str, int]]:
    import dns.asyncresolver  # dnspython: 13 MB, loaded with the first name to look up
    import dns.exception

    query = f"{_SRV_PREFIX[transport]}.{name}"
    try:
        answer = await dns.asyncresolver.resolve(query, "SRV", lifetime=3.0)
    except dns.exception.DNSException:
        return []
    records = sorted(answer, key=lambda r: (r.priority, -r.weight))
    return [(str(r.target).rstrip("."), int(r.port)) for r in records]


async def _address(host: str, port: int) -> str | None:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM), timeout=5.0
        )
    except (OSError, TimeoutError):
        return None
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            return str(sockaddr[0])
    return None


async def resolve_uri(uri: SipURI) -> Peer | None:
    """The transport, address and port to send a request for ``uri`` to."""
    transport = uri_transport(uri)
    target = uri.maddr or uri.host
    host = unbracketed(target)
    if ip_family(host) is not None:
        return Peer(transport, host, uri.port or default_port(transport))
    if uri.port is None:
        for name, port in await _srv(host, transport):
            address = await _address(name, port)
            if address is not None:
                return Peer(transport, address, port)
    port = uri.port or default_port(transport)
    address = await _address(host, port)
    if address is None:
        logger.info("next hop %s: cannot resolve %s", uri, host)
        return None
    return Peer(transport, address, port)
