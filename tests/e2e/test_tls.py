"""SIP over TLS against a real ``centrex serve`` (uvloop, as it serves by default)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

from tests.e2e.conftest import HOST, CentrexServer, pick_free_port


def _register_over_tls(server: CentrexServer, source: str, user: str = "1001") -> bytes:
    """A REGISTER over a new TLS connection from ``source``; the response's bytes."""
    trust = ssl.create_default_context(cafile=str(server.certificate))
    assert server.tls_port is not None
    raw = socket.create_connection((HOST, server.tls_port), timeout=5, source_address=(source, 0))
    with trust.wrap_socket(raw, server_hostname=HOST) as tls:
        port = tls.getsockname()[1]
        tls.sendall(
            (
                "REGISTER sip:example.com SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS {source}:{port};branch=z9hG4bK-tls-{port};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{user}@example.com>;tag=t{port}\r\n"
                f"To: <sip:{user}@example.com>\r\n"
                f"Call-ID: tls-{port}@{source}\r\n"
                "CSeq: 1 REGISTER\r\n"
                f"Contact: <sip:{user}@{source}:{port};transport=tls>\r\n"
                "Expires: 60\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_register_over_tls_and_stalled_handshakes_stay_within_the_address_limit(
    make_server: Callable[..., CentrexServer],
) -> None:
    server = make_server(tls_port=pick_free_port())
    assert _register_over_tls(server, HOST).startswith(b"SIP/2.0 200 ")

    # 40 connections from one address that never start their handshake: the
    # server holds at most 32 (network.max_connections_per_address) and
    # closes the rest at once, where it used to hold every one for 10 s.
    assert server.tls_port is not None
    stalled = []
    for _ in range(40):
        sock = socket.create_connection(
            (HOST, server.tls_port), timeout=5, source_address=("127.0.0.3", 0)
        )
        stalled.append(sock)
    time.sleep(0.5)
    closed = 0
    for sock in stalled:
        sock.settimeout(0.05)
        try:
            closed += sock.recv(1) == b""
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed += 1
    try:
        assert closed >= 8, closed
        # Another address is served meanwhile; the full one is not.
        assert _register_over_tls(server, "127.0.0.4", "1002").startswith(b"SIP/2.0 200 ")
        refused = False
        try:
            _register_over_tls(server, "127.0.0.3")
        except (ssl.SSLError, OSError):
            refused = True
        assert refused
    finally:
        for sock in stalled:
            sock.close()
    # Nothing went wrong on the way (an exception in a handshake's task is
    # logged, not raised: the compiled build once logged one per connection).
    time.sleep(0.3)
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and "never retrieved" not in log, log[-5000:]


def _subscribe_over_tls(server: CentrexServer, uri: str, contact_scheme: str) -> bytes:
    """A SUBSCRIBE to the registrar's events over a new TLS connection; the
    first final response's bytes."""
    trust = ssl.create_default_context(cafile=str(server.certificate))
    assert server.tls_port is not None
    raw = socket.create_connection((HOST, server.tls_port), timeout=5)
    with trust.wrap_socket(raw, server_hostname=HOST) as tls:
        port = tls.getsockname()[1]
        tls.sendall(
            (
                f"SUBSCRIBE {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS {HOST}:{port};branch=z9hG4bK-sub-{port};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:1001@example.com>;tag=s{port}\r\n"
                f"To: <{uri}>\r\n"
                f"Call-ID: sub-{port}@{HOST}\r\n"
                "CSeq: 1 SUBSCRIBE\r\n"
                f"Contact: <{contact_scheme}:1001@{HOST}:{port};transport=tls>\r\n"
                "Event: user-available\r\n"
                "Expires: 600\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
        )
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            while b"\r\n\r\n" not in data:
                chunk = tls.recv(4096)
                if not chunk:
                    return data
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            if head.startswith(b"SIP/2.0 ") and not head.startswith(b"SIP/2.0 100 "):
                return head
        return b""


def test_the_registrars_contact_is_sips_when_the_subscribe_named_sips(
    make_server: Callable[..., CentrexServer],
) -> None:
    # RFC 3261 12.1.1: a SIPS Request-URI (or Contact, with no Record-Route)
    # asks for a SIPS Contact in the dialog; a SIP one over TLS gets a SIP
    # Contact with transport=tls.
    server = make_server(tls_port=pick_free_port())
    where = f"{HOST}:{server.tls_port}"
    for uri, contact, expected in (
        ("sips:Registrar@example.com", "sip", f"<sips:Registrar@{where}>"),
        ("sip:Registrar@example.com", "sips", f"<sips:Registrar@{where}>"),
        ("sip:Registrar@example.com", "sip", f"<sip:Registrar@{where};transport=tls>"),
    ):
        ok = _subscribe_over_tls(server, uri, contact)
        assert ok.startswith(b"SIP/2.0 200 "), ok.decode()
        lines = ok.decode().split("\r\n")
        assert [
            line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("contact:")
        ] == [expected], ok.decode()
