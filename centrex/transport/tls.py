"""TLS contexts for SIP over TLS (RFC 3261 26.2.1, 26.3.1; RFC 5630; RFC 7525).

A server context is made from a certificate chain and key in PEM files; a
client context trusts the system store or a given CA file. TLS 1.2 is the
floor (RFC 7525 3.1.1).
"""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(
    cert_path: str | Path,
    key_path: str | Path,
    *,
    ca_path: str | Path | None = None,
    require_client_certificate: bool = False,
) -> ssl.SSLContext:
    """The context of the ``tls:`` listeners.

    ``ca_path`` is what client certificates are checked against (mutual TLS,
    RFC 3261 26.3.2.2, e.g. for trunks); without ``require_client_certificate``
    a client certificate is asked for only when ``ca_path`` is given and is
    optional. Raises OSError or ssl.SSLError naming the file on a bad path or
    PEM content.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror or str(exc)  # (one argument makes a tuple of its str)
        text = f"TLS certificate {cert_path} / key {key_path}: {reason}"
        raise type(exc)(exc.errno, text) from exc
    if ca_path is not None:
        context.load_verify_locations(str(ca_path))
        context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
    elif require_client_certificate:
        raise ValueError("require_client_certificate needs ca_path to check certificates with")
    return context


def client_context(
    ca_path: str | Path | None = None,
    *,
    verify: bool = True,
    cert_path: str | Path | None = None,
    key_path: str | Path | None = None,
) -> ssl.SSLContext:
    """The context of outbound TLS connections.

    Servers are verified against ``ca_path``, or the system store without it
    (RFC 5922 names the identity to check; the caller passes it as
    ``server_name``). ``verify=False`` is for tests and closed networks only.
    ``cert_path``/``key_path`` present a client certificate.
    """
    context = ssl.create_default_context(cafile=None if ca_path is None else str(ca_path))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_path is not None:
        context.load_cert_chain(str(cert_path), None if key_path is None else str(key_path))
    return context
