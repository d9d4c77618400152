"""Stream framing on TCP/TLS: Content-Length, keep-alives and limits."""

from __future__ import annotations

import pytest

from centrex.sip.errors import ParseError
from centrex.sip.framing import PING, FramedMessage, FramingError, StreamFramer
from centrex.sip.parser import parse_message

from .samples import INVITE, REGISTER


def test_message_split_over_many_chunks_comes_out_whole() -> None:
    framer = StreamFramer()
    events = []
    for i in range(len(INVITE)):
        events += framer.feed(INVITE[i : i + 1])
    assert events == [FramedMessage(INVITE)]
    assert framer.buffered == 0


def test_two_messages_in_one_chunk_come_out_in_order() -> None:
    framer = StreamFramer()
    assert framer.feed(REGISTER + INVITE) == [FramedMessage(REGISTER), FramedMessage(INVITE)]


def test_body_waits_for_content_length_bytes() -> None:
    framer = StreamFramer()
    assert framer.feed(INVITE[:-5]) == []
    assert framer.feed(INVITE[-5:]) == [FramedMessage(INVITE)]


def test_double_crlf_ping_is_reported_for_a_single_crlf_pong() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [PING]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [PING]


def test_single_crlf_keepalive_between_messages_is_skipped() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n" + REGISTER + b"\r\n" + INVITE) == [
        FramedMessage(REGISTER),
        FramedMessage(INVITE),
    ]


def test_ping_between_messages_is_reported_in_order() -> None:
    framer = StreamFramer()
    assert framer.feed(REGISTER + b"\r\n\r\n" + INVITE) == [
        FramedMessage(REGISTER),
        PING,
        FramedMessage(INVITE),
    ]


def test_framed_message_parses_as_a_stream_message() -> None:
    (event,) = StreamFramer().feed(INVITE)
    assert isinstance(event, FramedMessage)
    assert parse_message(event.data, stream=True).to_bytes() == INVITE


def test_compact_content_length_frames_the_body() -> None:
    data = INVITE.replace(b"Content-Length:", b"l:")
    assert StreamFramer().feed(data) == [FramedMessage(data)]


def test_missing_content_length_on_a_stream_is_an_error() -> None:
    data = INVITE.replace(b"Content-Length", b"X-Length")
    with pytest.raises(ParseError, match="Content-Length") as caught:
        StreamFramer().feed(data)
    assert caught.value.status == 400


def test_negative_content_length_is_an_error() -> None:
    with pytest.raises(ParseError, match="Content-Length"):
        StreamFramer().feed(REGISTER.replace(b"Content-Length: 0", b"Content-Length: -1"))


def test_header_block_over_the_limit_is_513_before_it_ends() -> None:
    framer = StreamFramer(max_header_bytes=1000)
    framer.feed(b"INVITE sip:x SIP/2.0\r\n")
    with pytest.raises(ParseError) as caught:
        for _ in range(100):
            framer.feed(b"X-Filler: " + b"a" * 50 + b"\r\n")
    assert caught.value.status == 513
    assert framer.buffered < 2000


def test_body_over_the_limit_is_413_without_buffering_it() -> None:
    framer = StreamFramer(max_body_bytes=100)
    with pytest.raises(ParseError) as caught:
        framer.feed(REGISTER.replace(b"Content-Length: 0", b"Content-Length: 1000000"))
    assert caught.value.status == 413


def test_too_many_header_lines_is_513() -> None:
    framer = StreamFramer(max_lines=20)
    data = REGISTER.replace(b"User-Agent", b"X-A: 1\r\n" * 30 + b"User-Agent")
    with pytest.raises(ParseError) as caught:
        framer.feed(data)
    assert caught.value.status == 513


def test_messages_before_a_framing_fault_are_handed_over_with_the_error() -> None:
    framer = StreamFramer()
    bad = REGISTER.replace(b"Content-Length: 0", b"Content-Length: x")
    with pytest.raises(FramingError) as caught:
        framer.feed(REGISTER + PING_BYTES + bad)
    assert caught.value.events == [FramedMessage(REGISTER), PING]
    assert caught.value.head.startswith(b"REGISTER sip:example.com SIP/2.0\r\n")
    assert caught.value.status == 400


PING_BYTES = b"\r\n\r\n"


def test_bare_lf_messages_are_framed_as_datagrams_are_parsed() -> None:
    # Tolerated over UDP; over TCP the framer waited for a CRLF CRLF that
    # never came, and the sender got no answer.
    head, body = INVITE.split(b"\r\n\r\n", 1)
    lf = head.replace(b"\r\n", b"\n") + b"\n\n" + body
    framer = StreamFramer()
    events = framer.feed(lf[:40])
    events += framer.feed(lf[40:] + lf)
    assert events == [FramedMessage(lf), FramedMessage(lf)]
    message = parse_message(lf, stream=True)
    assert message.to_bytes() == parse_message(INVITE, stream=True).to_bytes()
    # Followed by a CRLF message in the same read; a body holding CRLF CRLF.
    crlf_body = head.replace(b"\r\n", b"\n").replace(
        b"Content-Length: " + str(len(body)).encode(), b"Content-Length: 6"
    )
    odd = crlf_body + b"\n\nx\r\n\r\ny"
    assert StreamFramer().feed(lf + REGISTER) == [FramedMessage(lf), FramedMessage(REGISTER)]
    assert StreamFramer().feed(odd + REGISTER) == [FramedMessage(odd), FramedMessage(REGISTER)]
