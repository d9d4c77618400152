"""Digest arithmetic of SIP authentication (RFC 3261 22.4, RFC 7616 3.4, RFC 8760).

Only what a server needs to check a client: the hash of an algorithm, HA1 (what
the directory stores), HA2 for ``qop=auth`` and the ``response`` value, plus a
constant-time comparison.

Algorithms: ``SHA-256`` and ``MD5`` (RFC 8760 2; RFC 7616 3.2). The ``-sess``
variants, ``SHA-512-256`` and ``qop=auth-int`` are not offered, so a response
using them is never valid here.

The RFC 2069 form without ``qop`` (``H(HA1:nonce:HA2)``, RFC 3261 22.4 item 8)
is computed by :func:`response` for completeness, but the authenticator refuses
it: the server always offers ``qop="auth"``, a client then has to use it (RFC
7616 3.4: "its value MUST be one of the alternatives the server indicated"),
and without ``nc``/``cnonce`` a captured answer could be replayed for the whole
nonce lifetime.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

MD5: Final = "MD5"
SHA256: Final = "SHA-256"

#: The algorithms offered, most preferred first (RFC 8760 2: one challenge per
#: algorithm, in order of preference).
ALGORITHMS: Final[tuple[str, ...]] = (SHA256, MD5)

_HASHES: Final = {MD5: hashlib.md5, SHA256: hashlib.sha256}
_HEX_LENGTH: Final = {MD5: 32, SHA256: 64}
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def normalize_algorithm(name: str | None) -> str | None:
    """The canonical name of an ``algorithm`` parameter value, or None if unsupported.

    An absent parameter means MD5 (RFC 7616 3.3, RFC 3261 22.4); names are
    compared case-insensitively (RFC 7616 3.3 "algorithm").
    """
    if name is None:
        return MD5
    upper = name.strip().upper()
    if upper == MD5:
        return MD5
    if upper == SHA256:
        return SHA256
    return None


def hex_length(algorithm: str) -> int:
    """How many hex digits a hash of ``algorithm`` has (32 for MD5, 64 for SHA-256)."""
    return _HEX_LENGTH[algorithm]


def is_hash(algorithm: str, text: str) -> bool:
    """True when ``text`` looks like a hash of ``algorithm``: that many hex digits."""
    return len(text) == _HEX_LENGTH[algorithm] and set(text) <= _HEX_DIGITS


def digest_hex(algorithm: str, text: str) -> str:
    """``H(text)`` in lower-case hex (RFC 7616 3.4: ``H(data)``), text as UTF-8."""
    return _HASHES[algorithm](text.encode("utf-8")).hexdigest()


def ha1(algorithm: str, user: str, realm: str, password: str) -> str:
    """``H(username:realm:password)``: A1 of RFC 7616 3.4.2 for a non-session algorithm."""
    return digest_hex(algorithm, f"{user}:{realm}:{password}")


def ha2(algorithm: str, method: str, uri: str) -> str:
    """``H(method:digest-uri)``: A2 of RFC 7616 3.4.3 for ``qop=auth`` (or no qop)."""
    return digest_hex(algorithm, f"{method}:{uri}")


def response(
    algorithm: str,
    ha1_hex: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The ``response`` a client must send (RFC 7616 3.4.1, RFC 3261 22.4).

    With ``qop`` (only ``auth`` is computed here):
    ``H(HA1:nonce:nc:cnonce:qop:HA2)``; without it, the RFC 2069 form
    ``H(HA1:nonce:HA2)``. ``nc`` is used exactly as the client wrote it.
    """
    a2 = ha2(algorithm, method, uri)
    if qop is None:
        return digest_hex(algorithm, f"{ha1_hex}:{nonce}:{a2}")
    if nc is None or cnonce is None:
        raise ValueError("qop needs nc and cnonce")
    return digest_hex(algorithm, f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{a2}")


def responses_equal(expected: str, received: str) -> bool:
    """Compare two hex responses in constant time, so timing tells nothing of the answer.

    Hex case is ignored; ``received`` may be any text a client sent.
    """
    return hmac.compare_digest(
        expected.lower().encode("utf-8"), received.lower().encode("utf-8", "replace")
    )


__all__ = [
    "ALGORITHMS",
    "MD5",
    "SHA256",
    "digest_hex",
    "ha1",
    "ha2",
    "hex_length",
    "is_hash",
    "normalize_algorithm",
    "response",
    "responses_equal",
]
