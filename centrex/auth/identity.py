"""Network-asserted identity (RFC 3325) and the trusted peers it depends on.

Inside the trust domain of a server, P-Asserted-Identity (RFC 3325 9.1) tells
the callee who the authenticated caller is. A server therefore adds it for a
caller it authenticated and removes one arriving from a source it does not
trust (RFC 3325 5: "the proxy MUST replace that header field's contents with a
new identity or remove the header field"). P-Preferred-Identity (9.2) is the
caller's wish; it is removed whenever an identity is asserted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from centrex.sip.address import Address
from centrex.sip.message import Request
from centrex.sip.uri import SipURI

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_source(ip: str) -> IPAddress | None:
    """A source address as an IP address: brackets and an IPv6 zone are dropped and
    an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) becomes the IPv4 address.
    None when ``ip`` is not an address."""
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str]) -> list[IPNetwork]:
    """Addresses or CIDR blocks (``192.0.2.7``, ``198.51.100.0/24``, ``2001:db8::/32``).

    ValueError naming the entry when one is neither.
    """
    networks: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip()
        if text.startswith("[") and "]" in text:
            text = text[1:].replace("]", "", 1)
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or CIDR block "
                '(e.g. "192.0.2.7", "198.51.100.0/24", "2001:db8::/32")'
            ) from None
    return networks


#: Sources whose trust is remembered (forgotten all at once past this many).
_MAX_REMEMBERED_SOURCES: Final = 4096


class TrustedPeers:
    """The sources that are not challenged: gateways, trunks, other proxies."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks = parse_networks(entries)
        # Every message asks (before it is parsed); the answer for one source
        # string never changes, so it is kept rather than parsed again.
        self._answers: dict[str, IPNetwork | None] = {}

    def match(self, source_ip: str) -> IPNetwork | None:
        """The trusted network ``source_ip`` belongs to, or None."""
        if not self.networks:
            return None
        answers = self._answers
        try:
            return answers[source_ip]
        except KeyError:
            pass
        found: IPNetwork | None = None
        address = parse_source(source_ip)
        if address is not None:
            for network in self.networks:
                if address.version == network.version and address in network:
                    found = network
                    break
        if len(answers) >= _MAX_REMEMBERED_SOURCES:
            answers.clear()
        answers[source_ip] = found
        return found

    def __contains__(self, source_ip: object) -> bool:
        return isinstance(source_ip, str) and self.match(source_ip) is not None


def assert_identity(
    request: Request, user: str, domain: str, *, display_name: str | None = None
) -> str:
    """Put ``sip:user@domain`` in P-Asserted-Identity for an authenticated caller.

    Replaces any P-Asserted-Identity and removes P-Preferred-Identity (RFC 3325
    5, 9.1, 9.2). The display name is only the one given (e.g. the user's
    description), never taken from the caller's own From. Returns the value set.
    """
    address = Address(SipURI(host=domain, user=user), display_name)
    value = str(address)
    request.remove("P-Preferred-Identity")
    request.set("P-Asserted-Identity", value)
    return value


def strip_untrusted_identity(request: Request) -> int:
    """Remove every P-Asserted-Identity of a request from an untrusted source
    (RFC 3325 5); returns how many header lines went."""
    return request.remove("P-Asserted-Identity")


__all__ = [
    "IPAddress",
    "IPNetwork",
    "TrustedPeers",
    "assert_identity",
    "parse_networks",
    "parse_source",
    "strip_untrusted_identity",
]
