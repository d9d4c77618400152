"""Host names and socket addresses as they are written in the configuration file.

A listen address is ``transport:host:port``; an IPv6 host goes in brackets
(``udp:[::]:5060``), the way RFC 3261 25.1 writes it in a SIP URI. The parsers
raise ``ValueError`` with a message meant for a person editing the file.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

Transport = Literal["udp", "tcp", "tls", "ws", "wss"]
TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp", "tls", "ws", "wss")
SECURE_TRANSPORTS: frozenset[Transport] = frozenset({"tls", "wss"})

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")


def is_host_name(text: str) -> bool:
    """True for a DNS host name (RFC 1123 labels), not an IP address."""
    if not text or len(text) > 254 or _HOSTNAME.fullmatch(text) is None:
        return False
    # "10.0.0.300" has the shape of a host name but is a broken IPv4 address.
    return _DOTTED_NUMBERS.fullmatch(text) is None


def is_ip_address(text: str) -> bool:
    """True for an IPv4 or (unbracketed) IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_host(text: str, *, allow_bare_ipv6: bool = False) -> str:
    """Return ``text`` if it is a host name, an IPv4 address or a bracketed IPv6 address.

    The brackets stay on: the returned value is written as the user wrote it.
    """
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1]
        if _is_ipv6(inner):
            return text
        raise ValueError(f'"{inner}" in brackets is not an IPv6 address')
    if allow_bare_ipv6 and _is_ipv6(text):
        return text
    if ":" in text:
        host = _host_alone(text)
        if host is not None and host != text:
            raise ValueError(f'takes a host alone, without a scheme or port: write "{host}"')
        raise ValueError(
            "must be a host name or an IP address; an IPv6 address goes in brackets, "
            "e.g. [2001:db8::1]"
        )
    if is_ip_address(text) or is_host_name(text):
        return text
    raise ValueError("must be a host name (e.g. pbx.example.com) or an IP address")


def _host_alone(text: str) -> str | None:
    """The host of ``sip:host:port``, ``host:port`` or ``[v6]:port`` (what
    one writes for a host and its port), or None when ``text`` is none of
    these (a bare IPv6 address, say)."""
    scheme, colon, rest = text.partition(":")
    if colon and scheme.lower() in ("sip", "sips"):
        text = rest
    if text.startswith("["):
        close = text.find("]")
        return text[: close + 1] if close > 0 and _is_ipv6(text[1:close]) else None
    name, colon, port = text.partition(":")
    if name and (not port or port.isdigit()) and (is_ip_address(name) or is_host_name(name)):
        return name
    return None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _parse_port(text: str, example: str) -> int:
    if not text:
        raise ValueError(f"needs a port after the last ':', e.g. {example}")
    if not text.isascii() or not text.isdigit():
        raise ValueError(f'port "{text}" is not a number, e.g. {example}')
    port = int(text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0 to 65535)")
    return port


def parse_host_port(text: str, *, example: str = "127.0.0.1:8080") -> tuple[str, int]:
    """Split ``host:port`` or ``[ipv6]:port``; the host is returned without brackets."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"missing ']' after the IPv6 address, e.g. {example}")
        host, rest = text[1:end], text[end + 1 :]
        if not _is_ipv6(host):
            raise ValueError(f'"{host}" in brackets is not an IPv6 address')
        if not rest.startswith(":"):
            raise ValueError(f"needs ':port' after the IPv6 address, e.g. {example}")
        return host, _parse_port(rest[1:], example)
    host, colon, port_text = text.rpartition(":")
    if not colon:
        raise ValueError(f"needs a port, e.g. {example}")
    if ":" in host:
        raise ValueError("an IPv6 address must be written in brackets, e.g. [::1]:5060")
    if not host:
        raise ValueError(f"needs a host before the port, e.g. {example}")
    check_host(host)
    return host, _parse_port(port_text, example)


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """One socket the server listens on; ``host`` is without IPv6 brackets."""

    transport: Transport
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """Parse ``transport:host:port``, e.g. ``tcp:0.0.0.0:5060`` or ``udp:[::]:5060``."""
        transport, colon, rest = text.partition(":")
        transport = transport.strip().lower()
        if not colon or not rest:
            raise ValueError('must be "transport:host:port", e.g. "udp:0.0.0.0:5060"')
        if transport not in TRANSPORTS:
            raise ValueError(
                f'transport "{transport}" is not one of'
                f" {', '.join(TRANSPORTS)} "
                '(write "transport:host:port", e.g. "udp:0.0.0.0:5060")'
            )
        host, port = parse_host_port(rest, example=f"{transport}:0.0.0.0:5060")
        return cls(transport, host, port)

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def is_secure(self) -> bool:
        """True for TLS and secure WebSocket, which need a certificate."""
        return self.transport in SECURE_TRANSPORTS

    @property
    def is_reliable(self) -> bool:
        """True for stream transports (RFC 3261 18: everything but UDP)."""
        return self.transport != "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return f"{self.transport}:{host}:{self.port}"
