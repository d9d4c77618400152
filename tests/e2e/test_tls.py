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
