"""parse_message: datagram framing rules (RFC 3261 18.3) and typed errors."""

from __future__ import annotations

import pytest

from centrex.sip.errors import ParseError
from centrex.sip.message import Request, Response
from centrex.sip.parser import check_response, parse_message, validate_response

from .samples import INVITE, REGISTER, RESPONSE_180, SDP


def error_of(data: bytes, **kwargs: object) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_message(data, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_request_and_response_are_told_apart_by_the_start_line() -> None:
    assert isinstance(parse_message(REGISTER), Request)
    assert isinstance(parse_message(RESPONSE_180), Response)


def test_datagram_body_is_cut_at_content_length() -> None:
    message = parse_message(INVITE + b"trailing junk")
    assert message.body == SDP


def test_datagram_without_content_length_takes_the_rest_as_body() -> None:
    data = INVITE.replace(b"Content-Length: " + str(len(SDP)).encode() + b"\r\n", b"")
    assert parse_message(data).body == SDP


def test_content_length_beyond_the_datagram_is_400() -> None:
    error = error_of(INVITE[:-10])
    assert error.status == 400
    assert "Content-Length" in error.reason
    assert error.request is not None


def test_response_with_content_length_beyond_the_datagram_is_dropped() -> None:
    data = RESPONSE_180.replace(b"Content-Length: 0", b"Content-Length: 50")
    assert error_of(data).drop


def test_leading_crlfs_before_the_start_line_are_ignored() -> None:
    assert parse_message(b"\r\n\r\n" + REGISTER).to_bytes() == REGISTER


def test_bare_lf_line_ends_are_tolerated_and_rendered_with_crlf() -> None:
    message = parse_message(REGISTER.replace(b"\r\n", b"\n"))
    assert message.call_id == "a84b4c76e66710@pc33.example.com"
    assert message.to_bytes() == REGISTER


def test_garbage_is_dropped() -> None:
    for data in (
        b"",
        b"\r\n\r\n",
        b"hello world",
        b"\x00\x01\x02\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
    ):
        assert error_of(data).drop, data


def test_unsupported_version_is_505_with_the_request_attached() -> None:
    error = error_of(
        REGISTER.replace(b"REGISTER sip:example.com SIP/2.0", b"REGISTER sip:example.com SIP/7.0")
    )
    assert error.status == 505
    assert error.request is not None
    assert error.request.call_id == "a84b4c76e66710@pc33.example.com"


def test_missing_mandatory_header_is_400_naming_it() -> None:
    for header in (b"Call-ID", b"CSeq", b"From", b"To"):
        start = REGISTER.index(b"\r\n" + header + b":") + 2
        end = REGISTER.index(b"\r\n", start) + 2
        error = error_of(REGISTER[:start] + REGISTER[end:])
        assert error.status == 400
        assert header.decode() in error.reason


def test_a_line_without_a_colon_is_400_even_when_it_starts_with_a_known_name() -> None:
    # Without a colon, find gives -1, and the line but its last byte would be
    # looked up as the name: "User-Agentx" would pass as a User-Agent header
    # (a name the parser has seen, in REGISTER).
    parse_message(REGISTER)
    for line in (b"User-Agentx", b"Call-IDx", b"Viax", b"Via"):
        at = REGISTER.index(b"Content-Length:")
        error = error_of(REGISTER[:at] + line + b"\r\n" + REGISTER[at:])
        assert error.status == 400, line
        assert "colon" in error.reason, line


def test_missing_via_is_dropped_as_there_is_nowhere_to_answer() -> None:
    start = REGISTER.index(b"Via:")
    end = REGISTER.index(b"\r\n", start) + 2
    assert error_of(REGISTER[:start] + REGISTER[end:]).drop


def test_oversized_header_block_is_513_with_the_request_to_answer_it() -> None:
    data = REGISTER.replace(b"User-Agent", b"X-Big: " + b"a" * 20000 + b"\r\nUser-Agent")
    error = error_of(data)
    assert error.status == 513
    assert error.request is not None
    assert error.request.call_id == "a84b4c76e66710@pc33.example.com"


def test_oversized_response_is_dropped() -> None:
    data = RESPONSE_180.replace(
        b"Content-Length", b"X-Big: " + b"a" * 20000 + b"\r\nContent-Length"
    )
    assert error_of(data).drop


def test_oversized_body_is_413() -> None:
    error = error_of(INVITE, max_body_bytes=10)
    assert error.status == 413


def test_validation_can_be_left_for_later() -> None:
    data = REGISTER.replace(b"CSeq: 314159 REGISTER", b"CSeq: x")
    message = parse_message(data, validate=False)
    with pytest.raises(ParseError, match="CSeq"):
        message.cseq  # noqa: B018


_FORWARDED_180 = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.70:5060;branch=z9hG4bKproxy1\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.73:5060;branch=z9hG4bKcaller;received=127.0.0.73\r\n"
    b"From: <sip:1001@example.com>;tag=a\r\nTo: <sip:1002@example.com>;tag=b\r\n"
    b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


def _checked(data: bytes) -> Response:
    response = parse_message(data, validate=False)
    assert isinstance(response, Response)
    check_response(response)
    return response


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ((b"CSeq: 1 INVITE", b"CSeq: x"), "CSeq"),
        ((b"Via: SIP/2.0/UDP 127.0.0.70:5060;branch=z9hG4bKproxy1", b"Via: nonsense"), "Via"),
        ((b"Call-ID: c1", b"Call-ID: "), "Call-ID"),
        ((b"CSeq: 1 INVITE\r\n", b"CSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n"), "CSeq"),
        ((b"To: <sip:1002@example.com>;tag=b\r\n", b""), "To"),
    ],
)
def test_a_response_the_server_cannot_match_or_forward_is_dropped(
    edit: tuple[bytes, bytes], reason: str
) -> None:
    with pytest.raises(ParseError, match=reason) as caught:
        _checked(_FORWARDED_180.replace(*edit))
    assert caught.value.status is None  # dropped, never answered (18.1.2)


def test_a_forwarded_response_is_checked_without_parsing_what_the_proxy_passes_on() -> None:
    # A malformed second Via or From is the next hop's business: the proxy
    # matches on the top Via and CSeq and passes the rest on as it came.
    data = _FORWARDED_180.replace(b"Via: SIP/2.0/UDP 127.0.0.73", b"Via: SIP/2.0/UDP [bad")
    data = data.replace(b"From: <sip:1001@example.com>", b"From: <sip:1001@exa mple.com")
    response = _checked(data)
    assert response.top_via.branch == "z9hG4bKproxy1"
    assert response.cseq.method == "INVITE"
    with pytest.raises(ParseError, match="Via"):
        response.vias  # noqa: B018
    with pytest.raises(ParseError):
        response.from_addr  # noqa: B018
    with pytest.raises(ParseError):
        validate_response(response)
