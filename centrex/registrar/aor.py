"""Address-of-record keys (RFC 3261 10.3 step 5, 19.1.4).

Every part of Centrex that looks a user up in the location service (the
registrar storing a binding, the proxy routing a call) turns a URI into the
same key with ``aor_of``, so ``sip:Alice@Example.COM;transport=tcp`` and
``sips:alice@example.com:5061`` find the same bindings.
"""

from __future__ import annotations

from centrex.sip.uri import URI, SipURI, parse_uri


def aor_of(uri: URI | str, *, case_sensitive: bool = False) -> str | None:
    """The canonical AOR of a SIP/SIPS ``uri`` (``sip:user@host``), or None.

    The scheme becomes ``sip``; password, port, parameters and headers go; the
    host is lower-cased without a trailing dot and needless escapes in the user
    part are decoded (RFC 3261 10.3 step 5, 19.1.4). The user part is
    lower-cased too unless ``case_sensitive``. Other schemes (tel, ...) have no
    AOR here and give None.
    """
    if isinstance(uri, str):
        uri = parse_uri(uri)
    if not isinstance(uri, SipURI):
        return None
    key = uri.aor()
    if case_sensitive or uri.user is None:
        return key
    at = key.rfind("@")
    return key[:at].lower() + key[at:]


def aor_user(aor: str) -> str | None:
    """The user part of a canonical AOR (``sip:user@host``), or None without one."""
    at = aor.rfind("@")
    return None if at < 0 else aor[4:at]


def aor_host(aor: str) -> str:
    """The host of a canonical AOR."""
    return aor[aor.rfind("@") + 1 :] if "@" in aor else aor[4:]


def normalize_domain(domain: str) -> str:
    """A served domain as AOR hosts are written: lower-case, no trailing dot,
    an IPv6 address in brackets and compressed form."""
    host = domain.strip()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return SipURI(host).aor_host()


def uri_host(uri: SipURI) -> str:
    """The host of ``uri`` as ``normalize_domain`` writes a domain."""
    return uri.aor_host()
