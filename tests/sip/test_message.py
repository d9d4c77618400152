"""The message model: header access, typed views and forwarding edits."""

from __future__ import annotations

import pytest

from centrex.sip.errors import ParseError
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message

from .samples import INVITE, REGISTER, RESPONSE_180, SDP


def req(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def test_header_lookup_ignores_case_and_compact_forms() -> None:
    message = req(
        b"OPTIONS sip:example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"f: <sip:a@example.com>;tag=1\r\nt: <sip:b@example.com>\r\n"
        b"i: abc\r\nCSEQ: 1 OPTIONS\r\nm: <sip:a@h>\r\nl: 0\r\n"
        b"o: presence\r\nu: dialog\r\nk: path\r\ns: hi\r\nc: text/plain\r\n"
        b"e: gzip\r\nr: <sip:c@x>\r\nb: <sip:d@x>\r\nx: 1800\r\n\r\n"
    )
    assert message.get("Call-ID") == "abc"
    assert message.get("call-id") == "abc"
    assert message.get("i") == "abc"
    assert message.get("Via") == "SIP/2.0/UDP h;branch=z9hG4bK1"
    assert message.get("Event") == "presence"
    assert message.get("Allow-Events") == "dialog"
    assert message.get("Supported") == "path"
    assert message.get("Subject") == "hi"
    assert message.get("Content-Type") == "text/plain"
    assert message.get("Content-Encoding") == "gzip"
    assert message.get("Refer-To") == "<sip:c@x>"
    assert message.get("Referred-By") == "<sip:d@x>"
    assert message.get("Session-Expires") == "1800"
    assert message.get("Contact") == "<sip:a@h>"
    assert message.content_length == 0
    assert message.get("X-Absent") is None


def test_list_header_values_split_on_commas_outside_quotes_and_brackets() -> None:
    message = req(
        b"OPTIONS sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
        b"Call-ID: abc\r\nCSeq: 1 OPTIONS\r\n"
        b'Contact: "Doe, John" <sip:j,x@h;a=1>, <sip:k@h>\r\n'
        b"Contact: <sip:l@h>\r\n"
        b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n\r\n"
    )
    assert message.get_all("Contact") == [
        '"Doe, John" <sip:j,x@h;a=1>',
        "<sip:k@h>",
        "<sip:l@h>",
    ]
    # Date is not a list header: its commas stay.
    assert message.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert [c.uri.user for c in message.contacts] == ["j,x", "k", "l"]  # type: ignore[union-attr]


def test_folded_header_value_reads_as_one_line_and_renders_unchanged() -> None:
    data = REGISTER.replace(
        b"User-Agent: Test Phone 1.0\r\n", b"User-Agent: Test\r\n   Phone\r\n\t1.0\r\n"
    )
    message = req(data)
    assert message.get("User-Agent") == "Test Phone 1.0"
    assert message.to_bytes() == data


def test_unknown_headers_are_kept_byte_for_byte_after_an_edit() -> None:
    data = REGISTER.replace(b"User-Agent", b'X-Weird-Thing :   a,,b ;; "q"\r\nUser-Agent')
    message = req(data)
    message.decrement_max_forwards()
    assert b'X-Weird-Thing :   a,,b ;; "q"\r\n' in message.to_bytes()


def test_unedited_message_renders_as_received() -> None:
    assert req(INVITE).to_bytes() == INVITE
    response = parse_message(RESPONSE_180)
    assert response.to_bytes() == RESPONSE_180


def test_typed_views_of_the_mandatory_headers() -> None:
    message = req(REGISTER)
    assert message.method == "REGISTER"
    assert message.branch == "z9hG4bK776asdhds"
    assert message.from_tag == "1928301774"
    assert message.to_tag is None
    assert message.call_id == "a84b4c76e66710@pc33.example.com"
    assert message.cseq.number == 314159
    assert message.cseq.method == "REGISTER"
    assert message.from_addr.display_name == "Ted McGraw"
    assert str(message.to_addr.uri) == "sip:1235@example.com"
    assert message.max_forwards == 70
    assert message.contacts[0].expires == 3600
    assert message.top_via.host == "192.0.2.10"
    assert message.top_via.port == 5060


def test_response_reads_status_reason_and_to_tag() -> None:
    response = parse_message(RESPONSE_180)
    assert isinstance(response, Response)
    assert response.status == 180
    assert response.reason == "Ringing"
    assert response.to_tag == "a6c85cf"
    assert response.branch == "z9hG4bKproxy1"
    assert [v.branch for v in response.vias] == ["z9hG4bKproxy1", "z9hG4bKnashds8"]


def test_from_tag_inside_a_quoted_display_name_is_not_the_tag() -> None:
    message = req(
        REGISTER.replace(
            b'From: "Ted McGraw" <sip:1235@example.com>;tag=1928301774',
            b'From: "x;tag=fake" <sip:1235@example.com;tag=urip>;tag=real',
        )
    )
    assert message.from_tag == "real"


def test_push_and_pop_via_splice_only_the_top_line() -> None:
    message = req(INVITE)
    message.push_via("SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKproxy")
    data = message.to_bytes()
    assert data.startswith(
        b"INVITE sip:1234@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKproxy\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds8\r\n"
    )
    assert message.branch == "z9hG4bKproxy"
    assert data.endswith(SDP)
    assert message.pop_via() == "SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKproxy"
    assert message.to_bytes() == INVITE


def test_pop_via_from_a_line_with_two_values_keeps_the_second() -> None:
    response = parse_message(RESPONSE_180)
    assert response.pop_via() == "SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKproxy1"
    assert response.branch == "z9hG4bKnashds8"
    assert b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds8\r\n" in response.to_bytes()


def test_record_route_goes_on_top_of_existing_ones() -> None:
    message = req(INVITE.replace(b"Contact:", b"Record-Route: <sip:p1;lr>\r\nContact:"))
    message.add_record_route("<sip:p2;lr>")
    assert message.get_all("Record-Route") == ["<sip:p2;lr>", "<sip:p1;lr>"]


def test_decrement_max_forwards_rewrites_the_line() -> None:
    message = req(INVITE)
    assert message.decrement_max_forwards() == 69
    assert b"\r\nMax-Forwards: 69\r\n" in message.to_bytes()


def test_missing_max_forwards_is_added_as_70() -> None:
    # RFC 3261 16.6 step 3: added with 70, not decremented.
    message = req(INVITE.replace(b"Max-Forwards: 70\r\n", b""))
    assert message.decrement_max_forwards() == 70
    assert message.max_forwards == 70


def test_rewrite_request_uri_changes_only_the_start_line() -> None:
    message = req(INVITE)
    message.set_uri("sip:1234@192.0.2.50:5062")
    data = message.to_bytes()
    assert data.startswith(b"INVITE sip:1234@192.0.2.50:5062 SIP/2.0\r\n")
    assert data[data.index(b"\r\n") :] == INVITE[INVITE.index(b"\r\n") :]
    assert message.request_uri.host == "192.0.2.50"  # type: ignore[union-attr]


def test_copy_is_independent_of_the_original() -> None:
    message = req(INVITE)
    branch = message.copy()
    branch.push_via("SIP/2.0/UDP p;branch=z9hG4bKx")
    assert message.to_bytes() == INVITE
    assert branch.count("Via") == 2


def test_changing_the_body_updates_content_length() -> None:
    message = req(INVITE)
    message.body = b"v=0\r\n"
    data = message.to_bytes()
    assert b"\r\nContent-Length: 5\r\n" in data
    assert data.endswith(b"\r\n\r\nv=0\r\n")


def test_content_length_is_written_again_when_it_does_not_say_the_body() -> None:
    # Edited or repeated, the line that goes out is one
    # Content-Length saying the body's length.
    message = req(REGISTER)
    message.to_bytes()
    message.set("Content-Length", "5")
    assert b"\r\nContent-Length: 0\r\n" in message.to_bytes()
    doubled = Request.new("OPTIONS", "sip:x", [("Content-Length", "0"), ("l", "0")])
    data = doubled.to_bytes()
    assert data.count(b"Content-Length") + data.count(b"\r\nl:") == 1
    assert b"\r\nContent-Length: 0\r\n" in data


def test_new_request_gets_a_content_length() -> None:
    message = Request.new("OPTIONS", "sip:x", [("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")])
    assert message.to_bytes() == (
        b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n"
    )


def test_set_replaces_every_line_and_remove_deletes_them() -> None:
    message = req(INVITE.replace(b"Contact:", b"X-A: 1\r\nX-A: 2\r\nContact:"))
    message.set("x-a", "3")
    assert message.get_all("X-A") == ["3"]
    assert message.remove("X-A") == 1
    assert "X-A" not in message


def test_bad_header_value_is_a_parse_error_naming_the_header() -> None:
    message = parse_message(
        REGISTER.replace(b"User-Agent", b"Expires: 12x\r\nUser-Agent"),
        validate=False,
    )
    with pytest.raises(ParseError, match="Expires"):
        message.expires  # noqa: B018


def test_set_top_via_replaces_only_the_first_value_of_a_combined_line() -> None:
    response = parse_message(RESPONSE_180)
    response.set_top_via("SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKproxy1;received=10.0.0.1")
    assert response.get_all("Via") == [
        "SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKproxy1;received=10.0.0.1",
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds8",
    ]
    assert response.top_via.received == "10.0.0.1"
    assert response.count("Via") == 1


def test_changing_the_status_of_an_unedited_response_renders_the_new_status() -> None:
    response = parse_message(RESPONSE_180)
    assert isinstance(response, Response)
    response.set_status(183, "Session Progress")
    assert response.to_bytes().startswith(b"SIP/2.0 183 Session Progress\r\n")


def test_forgotten_views_read_the_same_and_render_the_same_bytes() -> None:
    message = req(INVITE)
    before = (
        message.request_uri,
        message.vias,
        message.from_addr,
        message.to_addr,
        message.cseq,
        message.contacts,
        message.max_forwards,
    )
    message.decrement_max_forwards()
    edited = message.to_bytes()
    message.forget_views()
    assert message.to_bytes() == edited
    assert message.max_forwards == before[-1] - 1  # type: ignore[operator]
    assert (
        message.request_uri,
        message.vias,
        message.from_addr,
        message.to_addr,
        message.cseq,
        message.contacts,
    ) == before[:-1]


def test_stamped_top_via_reads_the_same_as_a_fresh_parse() -> None:
    from centrex.transport.rules import stamp_received

    message = req(
        b"OPTIONS sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP phone.example.com:5062;branch=z9hG4bK1;rport\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK0\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
        b"Call-ID: abc\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    assert len(message.vias) == 2
    assert stamp_received(message, "192.0.2.7", 40000)
    fresh = parse_message(message.to_bytes())
    assert message.vias == fresh.vias
    assert message.top_via == fresh.top_via
    assert message.top_via.params["received"] == "192.0.2.7"
    assert message.top_via.params["rport"] == "40000"


@pytest.mark.parametrize("stamp", [False, True])
def test_vias_read_after_the_top_via_are_every_via_in_order(stamp: bool) -> None:
    from centrex.transport.rules import stamp_received

    message = parse_message(
        b"OPTIONS sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com"
        b";branch=z9hG4bK2\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK3\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
        b"Call-ID: abc\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        validate=False,  # the Vias are not read yet
    )
    assert isinstance(message, Request)
    assert message.top_via.host == "a.example.com"
    if stamp:
        assert stamp_received(message, "192.0.2.7", 40000)
    assert [v.branch for v in message.vias] == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"]
    assert message.vias == parse_message(message.to_bytes()).vias


def test_headers_read_after_lines_are_added_and_removed_are_the_right_ones() -> None:
    # Every lookup by name goes through an index of positions made at the first
    # read; each edit that adds or removes a line must leave the reads right.
    message = req(INVITE.replace(b"Contact:", b"X-A: 1\r\nX-A: 2\r\nContact:"))
    assert message.get("Call-ID") == "a84b4c76e66710"  # the index is made here
    message.add("Route", "<sip:p0;lr>", first=True)  # above every line
    message.push_via("SIP/2.0/UDP p1;branch=z9hG4bKp1")
    message.add_record_route("<sip:p2;lr>")
    assert message.get("Call-ID") == "a84b4c76e66710"
    assert message.count("Via") == 2 and message.count("X-A") == 2
    assert message.get_all("X-A") == ["1", "2"]
    assert message.cseq.number == 1
    message.set("X-A", "3")  # two lines become one
    assert message.count("X-A") == 1 and message.get("Contact") == "<sip:1235@192.0.2.10>"
    assert message.pop_via() == "SIP/2.0/UDP p1;branch=z9hG4bKp1"
    assert message.remove("Route") == 1 and "Route" not in message
    message.remove("Max-Forwards")
    assert message.decrement_max_forwards() == 70  # added back at the end
    assert message.get("Max-Forwards") == "70" and message.get("X-A") == "3"
    assert message.get("Record-Route") == "<sip:p2;lr>" and message.count("Via") == 1
    assert message.get("Content-Type") == "application/sdp"


def test_a_folded_header_reads_as_one_line() -> None:
    message = req(INVITE.replace(b"Contact:", b"Subject: a\r\n  b\r\nContact:"))
    assert message.get("Subject") == "a b"
