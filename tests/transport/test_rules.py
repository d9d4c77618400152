"""The sans-IO rules: Via stamping, response routing, error answers (RFC 3261 18.2; RFC 3581)."""

from __future__ import annotations

import pytest

from centrex.sip.errors import ParseError
from centrex.sip.message import Request
from centrex.sip.parser import parse_message
from centrex.sip.via import Via
from centrex.transport.rules import (
    Destination,
    error_response,
    request_from_head,
    response_destination,
    stamp_received,
)
from tests.transport.helpers import request_bytes


def parsed(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def test_received_is_added_when_sent_by_differs_from_the_source() -> None:
    request = parsed(request_bytes(sent_by="192.0.2.10:5060", rport=False))
    assert stamp_received(request, "198.51.100.7", 5060)
    assert request.top_via.received == "198.51.100.7"
    assert not request.top_via.has_rport


def test_nothing_is_added_when_sent_by_is_the_source_and_there_is_no_rport() -> None:
    data = request_bytes(sent_by="192.0.2.10:5060", rport=False)
    request = parsed(data)
    assert not stamp_received(request, "192.0.2.10", 5060)
    assert request.to_bytes() == data


def test_bare_rport_is_filled_and_received_added_even_when_equal_to_sent_by() -> None:
    request = parsed(request_bytes(sent_by="192.0.2.10:5060", rport=True))
    assert stamp_received(request, "192.0.2.10", 40123)
    via = request.top_via
    assert (via.received, via.rport) == ("192.0.2.10", 40123)
    assert b";rport=40123;received=192.0.2.10" in request.to_bytes()


def test_host_name_sent_by_always_gets_received() -> None:
    request = parsed(request_bytes(sent_by="phone.example.com", rport=False))
    assert stamp_received(request, "192.0.2.10", 5060)
    assert request.top_via.received == "192.0.2.10"


def test_ipv6_sent_by_matches_the_source_in_any_spelling() -> None:
    request = parsed(request_bytes(sent_by="[0:0::1]:5060", rport=False))
    assert not stamp_received(request, "::1", 5060)


def test_ipv6_received_is_written_without_brackets() -> None:
    request = parsed(request_bytes(sent_by="[2001:db8::1]:5060", rport=True))
    stamp_received(request, "2001:db8::2", 5062)
    assert request.top_via.received == "2001:db8::2"
    assert request.top_via.rport == 5062


def test_a_wrong_received_from_the_client_is_replaced() -> None:
    data = request_bytes(sent_by="192.0.2.10", rport=False).replace(
        b";branch", b";received=203.0.113.1;branch"
    )
    request = parsed(data)
    assert stamp_received(request, "192.0.2.10", 5060)
    assert request.top_via.received == "192.0.2.10"


def test_only_the_top_via_is_edited() -> None:
    data = request_bytes(sent_by="192.0.2.10", rport=True).replace(
        b"Max-Forwards", b"Via: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKlower\r\nMax-Forwards"
    )
    request = parsed(data)
    stamp_received(request, "198.51.100.7", 6000)
    top, lower = request.vias
    assert top.received == "198.51.100.7" and top.branch is not None
    assert str(lower) == "SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKlower"


def via(text: str) -> Via:
    return Via.parse(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 3581 4: received + rport.
        ("SIP/2.0/UDP 10.0.0.1:5062;rport=40000;received=192.0.2.1", ("udp", "192.0.2.1", 40000)),
        # RFC 3261 18.2.2: received with the sent-by port, else 5060.
        ("SIP/2.0/UDP 10.0.0.1:5062;received=192.0.2.1", ("udp", "192.0.2.1", 5062)),
        ("SIP/2.0/UDP 10.0.0.1;received=192.0.2.1", ("udp", "192.0.2.1", 5060)),
        ("SIP/2.0/UDP 192.0.2.1", ("udp", "192.0.2.1", 5060)),
        ("SIP/2.0/UDP [2001:db8::1]:5070", ("udp", "2001:db8::1", 5070)),
        # maddr comes before received.
        (
            "SIP/2.0/UDP 10.0.0.1;maddr=239.255.255.1;received=192.0.2.1",
            ("udp", "239.255.255.1", 5060),
        ),
        # Reliable: a new connection to received (or sent-by) and the sent-by port;
        # rport is a UDP rule only.
        ("SIP/2.0/TCP 10.0.0.1:5070;rport=40000;received=192.0.2.1", ("tcp", "192.0.2.1", 5070)),
        ("SIP/2.0/TLS host.example.com", ("tls", "host.example.com", 5061)),
    ],
)
def test_response_destination_follows_the_via(value: str, expected: tuple[str, str, int]) -> None:
    assert response_destination(via(value)) == Destination(*expected)


def test_response_destination_is_none_for_a_transport_not_carried() -> None:
    assert response_destination(via("SIP/2.0/SCTP 192.0.2.1")) is None


def parse_error(data: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_message(data)
    return info.value


def test_error_response_carries_the_status_and_names_the_header() -> None:
    response = error_response(parse_error(request_bytes(omit=("Call-ID",))))
    assert response is not None
    assert (response.status, response.reason) == (400, "Missing Call-ID header")
    assert response.get("cseq") == "1 OPTIONS"


def test_a_malformed_ack_is_never_answered() -> None:
    assert error_response(parse_error(request_bytes("ACK", omit=("Call-ID",)))) is None


def test_garbage_is_never_answered() -> None:
    assert error_response(parse_error(b"\x16\x03\x01 hello\r\n\r\n")) is None


def test_request_from_head_drops_a_partial_last_line() -> None:
    head = request_bytes(extra=("X-Long: " + "a" * 100,))
    cut = head[: head.index(b"X-Long") + 20]
    request = request_from_head(cut)
    assert request is not None
    assert request.call_id == "call-1@example.com"
    assert "x-long" not in request


def test_request_from_head_of_a_response_is_none() -> None:
    assert request_from_head(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h\r\n") is None
