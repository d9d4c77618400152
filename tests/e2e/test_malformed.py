"""Bad input over real sockets: a clear 4xx/5xx where RFC 3261 says so, silence
for garbage, and the server keeps serving afterwards (DESIGN.md, Principles)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e import wire
from tests.e2e.conftest import CentrexServer

TRANSPORTS = ["udp", "tcp"]

GARBAGE = {
    # Noise that is not text at all (here: the start of a TLS ClientHello).
    "binary": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
    # Text, but not SIP: an HTTP request line has no SIP-Version.
    "http": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
}


def assert_still_serving(server: CentrexServer) -> None:
    assert server.running, f"centrex serve died:\n{server.log()}"
    for transport in TRANSPORTS:
        status = wire.options_status(server.port, transport)
        assert status is not None and status.startswith("SIP/2.0 200 "), (
            f"OPTIONS over {transport} afterwards got {status!r}"
        )


def ask(server: CentrexServer, transport: str, build: Callable[[int], bytes]) -> bytes | None:
    """Send the request ``build(local_port)`` from a fresh socket; the final answer."""
    with wire.open_peer(server.port, transport) as peer:
        peer.send(build(peer.port))
        return wire.final_answer(peer, 2.0)


def ask_server(server: CentrexServer, transport: str, method: str, **fields: Any) -> bytes | None:
    """``method`` addressed to the server, with ``wire.request``'s ``fields``."""
    uri = f"sip:{wire.HOST}:{server.port}"
    return ask(
        server,
        transport,
        lambda port: wire.request(method, uri, transport=transport, local_port=port, **fields),
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_request_without_call_id_gets_400_whose_reason_names_call_id(
    server: CentrexServer, transport: str
) -> None:
    # RFC 3261 8.1.1 makes Call-ID mandatory; 8.2.2 / 16.3: 400, and the
    # reason phrase should say what was wrong.
    answer = ask_server(server, transport, "OPTIONS", omit=("Call-ID",))
    assert answer is not None, "no answer to a request without Call-ID"
    status = wire.status_line(answer)
    assert status.startswith("SIP/2.0 400 "), status
    assert "call-id" in status.lower(), f"reason phrase does not name Call-ID: {status!r}"
    assert_still_serving(server)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_register_with_a_bad_contact_gets_400_with_a_to_tag(
    server: CentrexServer, transport: str
) -> None:
    # RFC 3261 8.2.6.2: a response other than 100 MUST carry a To tag, the
    # answer to a request that failed to parse included; answered without a
    # transaction, a retransmission gets the same tag (8.2.7).
    with wire.open_peer(server.port, transport) as peer:
        request = wire.request(
            "REGISTER",
            f"sip:{wire.HOST}:{server.port}",
            transport=transport,
            local_port=peer.port,
            headers={"Contact": "<garbage"},
        )
        answers = []
        for _ in range(2):
            peer.send(request)
            answers.append(wire.final_answer(peer, 2.0))
    assert None not in answers, f"no answer to a REGISTER with a bad Contact: {answers}"
    tags = []
    for answer in answers:
        assert answer is not None
        assert wire.status_line(answer).startswith("SIP/2.0 400 "), wire.status_line(answer)
        (to,) = wire.headers(answer, "to")
        assert ";tag=" in to, f"the 400's To has no tag: {to!r}"
        tags.append(to)
    assert tags[0] == tags[1], f"a retransmission got another tag: {tags}"
    assert_still_serving(server)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_request_with_sip_version_7_gets_505(server: CentrexServer, transport: str) -> None:
    # RFC 3261 8.2.2 / 21.5.5: 505 Version Not Supported.
    answer = ask_server(server, transport, "OPTIONS", version="SIP/7.0")
    assert answer is not None, "no answer to a SIP/7.0 request"
    assert wire.status_line(answer).startswith("SIP/2.0 505 "), wire.status_line(answer)
    assert_still_serving(server)


@pytest.mark.parametrize("kind", sorted(GARBAGE))
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_garbage_gets_no_answer_and_the_server_keeps_serving(
    server: CentrexServer, transport: str, kind: str
) -> None:
    with wire.open_peer(server.port, transport) as peer:
        peer.send(GARBAGE[kind])
        answer = peer.drain(1.0)
    assert answer == b"", f"garbage ({kind}) over {transport} was answered: {answer!r}"
    assert_still_serving(server)
