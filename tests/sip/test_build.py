"""Responses, ACK and CANCEL built from a request (RFC 3261 8.2.6, 17.1.1.3, 9.1)."""

from __future__ import annotations

from centrex.sip.build import make_ack, make_cancel, make_response
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message

from .samples import INVITE, RESPONSE_180


def invite() -> Request:
    message = parse_message(
        INVITE.replace(b"Contact:", b"Route: <sip:p1;lr>, <sip:p2;lr>\r\nTimestamp: 54\r\nContact:")
    )
    assert isinstance(message, Request)
    return message


def test_response_copies_via_from_to_call_id_cseq_and_adds_the_to_tag() -> None:
    response = make_response(invite(), 486, to_tag="xyz")
    parsed = parse_message(response.to_bytes())
    assert isinstance(parsed, Response)
    assert (parsed.status, parsed.reason) == (486, "Busy Here")
    assert parsed.to_tag == "xyz"
    assert parsed.from_tag == "1928301774"
    assert parsed.call_id == "a84b4c76e66710"
    assert str(parsed.cseq) == "1 INVITE"
    assert parsed.branch == "z9hG4bKnashds8"
    assert "Timestamp" not in parsed


def test_100_trying_gets_no_to_tag_but_copies_timestamp() -> None:
    response = make_response(invite(), 100, to_tag="xyz")
    assert response.to_tag is None
    assert response.get("Timestamp") == "54"


def test_response_keeps_an_existing_to_tag() -> None:
    request = invite()
    request.set("To", "Bob <sip:1234@example.com>;tag=old")
    assert make_response(request, 200, to_tag="new").to_tag == "old"


def test_ack_for_non_2xx_takes_to_from_the_response_and_one_via() -> None:
    response = parse_message(RESPONSE_180.replace(b"180 Ringing", b"486 Busy Here"))
    assert isinstance(response, Response)
    ack = make_ack(invite(), response)
    parsed = parse_message(ack.to_bytes())
    assert isinstance(parsed, Request)
    assert parsed.method == "ACK"
    assert parsed.uri == "sip:1234@example.com"
    assert parsed.to_tag == "a6c85cf"
    assert str(parsed.cseq) == "1 ACK"
    assert [v.branch for v in parsed.vias] == ["z9hG4bKnashds8"]
    assert parsed.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]


def test_cancel_matches_the_request_but_for_the_method() -> None:
    cancel = parse_message(make_cancel(invite()).to_bytes())
    assert isinstance(cancel, Request)
    assert cancel.method == "CANCEL"
    assert cancel.uri == "sip:1234@example.com"
    assert str(cancel.cseq) == "1 CANCEL"
    assert cancel.branch == "z9hG4bKnashds8"
    assert cancel.to_tag is None
    assert cancel.from_tag == "1928301774"
    assert cancel.body == b""


def test_a_response_goes_where_the_stamped_request_came_from() -> None:
    # The server stamps received/rport on the request's top Via; the response
    # made from it takes that Via as read (it is not parsed again) and the
    # Via line it carries is the stamped one.
    request = invite()
    top = request.top_via
    stamped = type(top)(top.transport, top.host, top.port, {**top.params, "received": "192.0.2.9"})
    request.set_top_via(str(stamped), stamped)
    response = make_response(request, 200)
    assert response.top_via is stamped
    assert response.top_via.received == "192.0.2.9"
    reparsed = parse_message(response.to_bytes())
    assert isinstance(reparsed, Response)
    assert reparsed.top_via.received == "192.0.2.9"
    assert [str(v) for v in reparsed.vias] == [str(v) for v in request.vias]
