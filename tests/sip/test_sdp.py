"""SDP parsing, reading, rewriting and rendering (RFC 8866, RFC 3264, RFC 3605)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrex.sip.errors import ParseError
from centrex.sip.sdp import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RawLine,
    Rtcp,
    RtpMap,
    SessionDescription,
)


def crlf(*lines: str) -> str:
    return "".join(f"{line}\r\n" for line in lines)


DESK_PHONE_OFFER = crlf(
    "v=0",
    "o=- 20518 0 IN IP4 192.168.1.50",
    "s=SDP Data",
    "c=IN IP4 192.168.1.50",
    "b=AS:84",
    "t=0 0",
    "m=audio 11780 RTP/AVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=ptime:20",
    "a=sendrecv",
)

WEBRTC_OFFER = crlf(
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1 2",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS stream0",
    "m=audio 54400 UDP/TLS/RTP/SAVPF 111 0 8 126",
    "c=IN IP4 198.51.100.7",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=candidate:1467250027 1 udp 2122260223 192.168.0.196 54400 typ host generation 0",
    "a=candidate:435653019 1 udp 1845501695 198.51.100.7 54400 typ srflx raddr 192.168.0.196"
    " rport 54400 generation 0",
    "a=ice-ufrag:Oyef",
    "a=ice-pwd:7nrVBhVPG4Ce1TPw3pM8rRmR",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9"
    ":A3:F4:70:03:E7:43:91:73:23:5E",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=sendrecv",
    "a=msid:stream0 track0",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:126 telephone-event/8000",
    "a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6",
    "m=video 54400 UDP/TLS/RTP/SAVPF 96 97",
    "c=IN IP4 198.51.100.7",
    "b=AS:2000",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Oyef",
    "a=ice-pwd:7nrVBhVPG4Ce1TPw3pM8rRmR",
    "a=mid:1",
    "a=recvonly",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "m=application 54400 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 198.51.100.7",
    "a=ice-ufrag:Oyef",
    "a=mid:2",
    "a=sctp-port:5000",
)


# --- parsing what real peers send -------------------------------------------------------------


def test_desk_phone_offer_exposes_origin_connection_and_codecs() -> None:
    sdp = SessionDescription.parse(DESK_PHONE_OFFER.encode())
    assert sdp.version == 0
    assert sdp.origin == Origin("-", "20518", 0, "IN", "IP4", "192.168.1.50")
    assert sdp.session_name == "SDP Data"
    assert sdp.connection == Connection("IN", "IP4", "192.168.1.50")
    [audio] = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 11780, "RTP/AVP")
    assert audio.formats == ["0", "8", "101"]
    assert audio.payload_types == [0, 8, 101]
    assert audio.port_count is None
    assert audio.rtpmap(0) == RtpMap(0, "PCMU", 8000)
    assert audio.rtpmap(101) == RtpMap(101, "telephone-event", 8000)
    assert audio.rtpmap(18) is None
    assert audio.fmtp(101) == "0-15"
    assert audio.fmtp(0) is None
    assert audio.get("ptime") == Attribute("ptime", "20")
    assert audio.direction == "sendrecv"
    assert audio.connection is None
    assert sdp.effective_connection(audio) is sdp.connection
    assert not audio.rejected


def test_desk_phone_offer_renders_byte_identical() -> None:
    body = DESK_PHONE_OFFER.encode()
    assert SessionDescription.parse(body).to_bytes() == body
    assert str(SessionDescription.parse(DESK_PHONE_OFFER)) == DESK_PHONE_OFFER
    assert bytes(SessionDescription.parse(body)) == body


def test_webrtc_offer_keeps_every_media_section_and_ice_candidate() -> None:
    sdp = SessionDescription.parse(WEBRTC_OFFER)
    assert [m.media for m in sdp.media] == ["audio", "video", "application"]
    audio, video, data = sdp.media
    assert sdp.connection is None
    assert sdp.effective_connection(video) == Connection("IN", "IP4", "198.51.100.7")
    assert len(audio.get_all("candidate")) == 2
    assert audio.rtpmap(111) == RtpMap(111, "opus", 48000, 2)
    assert audio.fmtp(111) == "minptime=10;useinbandfec=1"
    assert audio.rtcp == Rtcp(9, "0.0.0.0", "IP4", "IN")
    assert audio.has("rtcp-mux")
    assert [m.payload_type for m in video.rtpmaps()] == [96, 97]
    assert sdp.effective_direction(video) == "recvonly"
    assert data.proto == "UDP/DTLS/SCTP"
    assert data.formats == ["webrtc-datachannel"]
    assert data.payload_types == []
    assert data.rtpmaps() == []
    assert sdp.get("group") == Attribute("group", "BUNDLE 0 1 2")
    assert sdp.get("extmap-allow-mixed") == Attribute("extmap-allow-mixed")
    assert str(sdp) == WEBRTC_OFFER


def test_lf_only_line_ends_are_accepted_and_rendered_as_crlf() -> None:
    sdp = SessionDescription.parse(DESK_PHONE_OFFER.replace("\r\n", "\n").encode())
    assert sdp.to_bytes() == DESK_PHONE_OFFER.encode()


def test_last_line_without_line_end_and_trailing_blank_lines_are_accepted() -> None:
    body = DESK_PHONE_OFFER.removesuffix("\r\n")
    assert str(SessionDescription.parse(body)) == DESK_PHONE_OFFER
    assert str(SessionDescription.parse(DESK_PHONE_OFFER + "\r\n\r\n")) == DESK_PHONE_OFFER


def test_unmodelled_lines_round_trip_exactly_in_their_place() -> None:
    body = crlf(
        "v=0",
        "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5",
        "s=SDP Seminar",
        "i=A Seminar on the session description protocol",
        "u=http://www.example.com/seminars/sdp.pdf",
        "e=j.doe@example.com (Jane Doe)",
        "p=+1 617 555-6011",
        "c=IN IP4 224.2.17.12/127",
        "b=CT:128",
        "t=2873397496 2873404696",
        "r=604800 3600 0 90000",
        "z=2882844526 -1h 2898848070 0",
        "k=prompt",
        "y=an unknown line type",
        "a=recvonly",
        "m=audio 49170 RTP/AVP 0",
        "i=the audio stream",
        "b=AS:64",
        "k=clear:secret",
        "m=video 51372 RTP/AVP 99",
        "a=rtpmap:99 h263-1998/90000",
    )
    sdp = SessionDescription.parse(body)
    assert RawLine("z", "2882844526 -1h 2898848070 0") in sdp.lines
    assert sdp.media[0].lines[0] == RawLine("i", "the audio stream")
    assert sdp.connection == Connection("IN", "IP4", "224.2.17.12", ttl=127)
    assert str(sdp) == body


def test_non_canonical_spacing_is_kept_until_the_line_is_edited() -> None:
    body = crlf(
        "v=0",
        "o=-  1 1 IN IP4 10.0.0.1 ",
        "s= ",
        "c=IN  IP4 10.0.0.1",
        "t=0 0",
        "m=audio  4000 RTP/AVP 0 8 ",
        "a=rtcp: 4001",
    )
    sdp = SessionDescription.parse(body)
    assert str(sdp) == body
    assert sdp.media[0].formats == ["0", "8"]
    assert sdp.media[0].rtcp == Rtcp(4001)
    sdp.media[0].port = 5000
    assert sdp.media[0].m_line == "m=audio 5000 RTP/AVP 0 8"
    assert "o=-  1 1 IN IP4 10.0.0.1 \r\n" in str(sdp)


def test_session_name_may_hold_any_utf8_text() -> None:
    body = crlf("v=0", "o=- 1 1 IN IP4 h", "s=Réunion: 会议 = ok", "t=0 0").encode()
    sdp = SessionDescription.parse(body)
    assert sdp.session_name == "Réunion: 会议 = ok"
    assert sdp.to_bytes() == body


def test_bytes_that_are_not_utf8_are_carried_through_unchanged() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=Caf\xe9\r\nt=0 0\r\n"
    assert SessionDescription.parse(body).to_bytes() == body


# --- connection addresses ---------------------------------------------------------------------


def test_ipv6_connection_address() -> None:
    body = crlf(
        "v=0",
        "o=- 1 1 IN IP6 2001:db8::10",
        "s=-",
        "c=IN IP6 2001:db8::10",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0",
    )
    sdp = SessionDescription.parse(body)
    assert sdp.connection == Connection("IN", "IP6", "2001:db8::10")
    assert sdp.origin is not None and sdp.origin.addrtype == "IP6"
    assert str(sdp) == body


def test_multicast_ttl_and_count_suffixes_are_parsed_and_kept() -> None:
    ip4 = Connection.parse("IN IP4 224.2.1.1/127/3")
    assert (ip4.address, ip4.ttl, ip4.count) == ("224.2.1.1", 127, 3)
    assert str(ip4) == "c=IN IP4 224.2.1.1/127/3"
    ip6 = Connection.parse("IN IP6 ff15::101/3")
    assert (ip6.address, ip6.ttl, ip6.count) == ("ff15::101", None, 3)
    assert str(ip6) == "c=IN IP6 ff15::101/3"
    ip4.address = "224.2.1.2"
    assert str(ip4) == "c=IN IP4 224.2.1.2/127/3"


def test_connection_of_another_network_type_is_kept_whole() -> None:
    connection = Connection.parse("TN RFC2543 +1-202-555/0100")
    assert connection.address == "+1-202-555/0100"
    assert str(connection) == "c=TN RFC2543 +1-202-555/0100"


def test_media_connection_overrides_the_session_connection() -> None:
    sdp = SessionDescription.parse(
        crlf(
            "v=0",
            "s=-",
            "c=IN IP4 10.0.0.1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            "c=IN IP4 10.0.0.2",
            "m=video 4002 RTP/AVP 31",
        )
    )
    audio, video = sdp.media
    assert sdp.effective_connection(audio) == Connection("IN", "IP4", "10.0.0.2")
    assert sdp.effective_connection(video) == Connection("IN", "IP4", "10.0.0.1")


# --- hold, rejection, direction ---------------------------------------------------------------


def test_hold_with_sendonly_and_with_null_connection_address() -> None:
    sdp = SessionDescription.parse(
        crlf(
            "v=0",
            "o=- 1 2 IN IP4 10.0.0.1",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            "a=sendonly",
        )
    )
    [audio] = sdp.media
    assert sdp.connection is not None and sdp.connection.is_hold
    assert audio.direction == "sendonly"
    assert sdp.effective_direction(audio) == "sendonly"


def test_direction_is_inherited_from_the_session_and_defaults_to_sendrecv() -> None:
    sdp = SessionDescription.parse(
        crlf(
            "v=0",
            "s=-",
            "t=0 0",
            "a=inactive",
            "m=audio 4000 RTP/AVP 0",
            "m=video 4002 RTP/AVP 31",
            "a=recvonly",
        )
    )
    audio, video = sdp.media
    assert audio.direction is None
    assert sdp.effective_direction(audio) == "inactive"
    assert sdp.effective_direction(video) == "recvonly"
    sdp.direction = None
    assert sdp.effective_direction(audio) == "sendrecv"


def test_setting_direction_replaces_the_attribute_in_place() -> None:
    sdp = SessionDescription.parse(DESK_PHONE_OFFER)
    [audio] = sdp.media
    audio.add("label", "1")
    audio.direction = "sendonly"
    assert str(sdp) == DESK_PHONE_OFFER.replace("a=sendrecv", "a=sendonly") + "a=label:1\r\n"
    audio.direction = None
    assert audio.direction is None and sdp.effective_direction(audio) == "sendrecv"
    audio.direction = "inactive"
    assert str(audio.lines[-1]) == "a=inactive"


def test_rejected_stream_has_port_zero_and_renders_unchanged() -> None:
    body = crlf(
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.1",
        "s=-",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "m=video 0 RTP/AVP 31",
    )
    sdp = SessionDescription.parse(body)
    assert [m.rejected for m in sdp.media] == [False, True]
    assert str(sdp) == body


def test_port_count_is_parsed_and_kept() -> None:
    media = MediaDescription.parse("video 49170/2 RTP/AVP 31")
    assert (media.port, media.port_count) == (49170, 2)
    media.port = 50000
    assert media.m_line == "m=video 50000/2 RTP/AVP 31"


# --- rewriting as a media relay does ----------------------------------------------------------


def test_rewrite_of_address_and_port_changes_only_those_lines() -> None:
    sdp = SessionDescription.parse(DESK_PHONE_OFFER.encode())
    sdp.set_connection_address("203.0.113.5", "IP4")
    sdp.media[0].port = 40000
    expected = DESK_PHONE_OFFER.replace("c=IN IP4 192.168.1.50", "c=IN IP4 203.0.113.5")
    expected = expected.replace("m=audio 11780 ", "m=audio 40000 ")
    assert sdp.to_bytes() == expected.encode()
    assert SessionDescription.parse(sdp.to_bytes()).to_bytes() == expected.encode()


def test_rewrite_of_webrtc_offer_updates_media_connections_and_rtcp_addresses() -> None:
    sdp = SessionDescription.parse(WEBRTC_OFFER)
    sdp.set_connection_address("2001:db8::5")
    for port, media in zip((40000, 40002, 40004), sdp.media, strict=True):
        media.port = port
    expected = (
        WEBRTC_OFFER.replace("c=IN IP4 198.51.100.7", "c=IN IP6 2001:db8::5")
        .replace("a=rtcp:9 IN IP4 0.0.0.0", "a=rtcp:9 IN IP6 2001:db8::5")
        .replace("m=audio 54400", "m=audio 40000", 1)
        .replace("m=video 54400", "m=video 40002", 1)
        .replace("m=application 54400", "m=application 40004", 1)
    )
    assert str(sdp) == expected
    assert sdp.connection is None  # every stream has its own c=: none added


def test_rewrite_adds_a_session_connection_when_a_stream_has_none() -> None:
    sdp = SessionDescription.parse(
        crlf("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 4000 RTP/AVP 0")
    )
    sdp.set_connection_address("203.0.113.5")
    assert str(sdp) == crlf(
        "v=0", "o=- 1 1 IN IP4 h", "s=-", "c=IN IP4 203.0.113.5", "t=0 0", "m=audio 4000 RTP/AVP 0"
    )


def test_rewrite_drops_multicast_suffix_and_can_follow_with_the_origin() -> None:
    sdp = SessionDescription.parse(
        crlf("v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=-", "c=IN IP4 224.2.1.1/127/3", "t=0 0")
    )
    sdp.set_connection_address("203.0.113.5", origin=True)
    assert str(sdp) == crlf(
        "v=0", "o=- 1 1 IN IP4 203.0.113.5", "s=-", "c=IN IP4 203.0.113.5", "t=0 0"
    )


def test_rtcp_without_address_is_not_touched_by_an_address_rewrite() -> None:
    sdp = SessionDescription.parse(
        crlf("v=0", "s=-", "c=IN IP4 10.0.0.1", "t=0 0", "m=audio 4000 RTP/AVP 0", "a=rtcp:4001")
    )
    sdp.set_connection_address("203.0.113.5")
    assert sdp.media[0].get("rtcp") == Attribute("rtcp", "4001")
    sdp.media[0].rtcp = Rtcp(40001)
    assert str(sdp).endswith("a=rtcp:40001\r\n")
    sdp.media[0].rtcp = None
    assert sdp.media[0].rtcp is None and not sdp.media[0].has("rtcp")


def test_malformed_rtcp_and_rtpmap_read_as_absent() -> None:
    media = MediaDescription.parse("audio 4000 RTP/AVP 0 8")
    media.add("rtcp", "port")
    media.add("rtpmap", "0 PCMU")
    media.add("rtpmap", "8 PCMA/8000")
    assert media.rtcp is None
    assert media.rtpmap(0) is None
    assert media.rtpmap(8) == RtpMap(8, "PCMA", 8000)


def test_bumping_the_origin_version_changes_only_the_o_line() -> None:
    sdp = SessionDescription.parse(DESK_PHONE_OFFER)
    assert sdp.origin is not None
    sdp.origin.sess_version += 1
    assert str(sdp) == DESK_PHONE_OFFER.replace("o=- 20518 0 ", "o=- 20518 1 ")


def test_attribute_helpers_set_in_place_add_at_the_end_and_remove_all() -> None:
    sdp = SessionDescription.parse(DESK_PHONE_OFFER)
    [audio] = sdp.media
    audio.set("ptime", "30")
    audio.add("maxptime", "60")
    audio.set("silenceSupp", "off - - - -")
    lines = [str(line) for line in audio.lines]
    assert lines[4:] == ["a=ptime:30", "a=sendrecv", "a=maxptime:60", "a=silenceSupp:off - - - -"]
    assert audio.remove("rtpmap") == 3
    assert audio.remove("rtpmap") == 0
    assert [a.name for a in audio.attributes] == [
        "fmtp",
        "ptime",
        "sendrecv",
        "maxptime",
        "silenceSupp",
    ]


def test_set_keeps_the_first_of_duplicate_attributes() -> None:
    media = MediaDescription.parse("audio 4000 RTP/AVP 0")
    media.add("ptime", "20")
    media.add("x")
    media.add("ptime", "20")
    media.set("ptime", "40")
    assert [str(line) for line in media.lines] == ["a=ptime:40", "a=x"]


def test_connection_setter_inserts_a_media_c_line_before_b_and_a_lines() -> None:
    sdp = SessionDescription.parse(
        crlf(
            "v=0",
            "s=-",
            "c=IN IP4 10.0.0.1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            "i=voice",
            "b=AS:64",
            "a=sendrecv",
        )
    )
    [audio] = sdp.media
    audio.connection = Connection("IN", "IP4", "10.0.0.9")
    assert [str(x) for x in audio.lines] == [
        "i=voice",
        "c=IN IP4 10.0.0.9",
        "b=AS:64",
        "a=sendrecv",
    ]
    audio.connection = None
    sdp.connection = None
    assert sdp.effective_connection(audio) is None


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "missing v= line"),
        ("o=- 1 1 IN IP4 h\r\nv=0\r\n", "missing v= line"),
        ("v=zero\r\n", "bad v= line"),
        ("v=0\r\ns=-\r\nthis is not sdp\r\n", "line 3 is not of the form x=..."),
        ("v=0\r\n\r\ns=-\r\n", "line 2 is not of the form x=..."),
        ("v=0\r\nS=-\r\n", "line 2 is not of the form x=..."),
        ("v=0\r\nm=audio port RTP/AVP 0\r\n", "bad m= line"),
        ("v=0\r\nm=audio 65536 RTP/AVP 0\r\n", "bad m= line"),
        ("v=0\r\nm=audio -1 RTP/AVP 0\r\n", "bad m= line"),
        ("v=0\r\nm=audio ²³ RTP/AVP 0\r\n", "bad m= line"),
        ("v=0\r\nm=audio 4000/x RTP/AVP 0\r\n", "bad m= line"),
        ("v=0\r\nm=audio 4000\r\n", "bad m= line"),
        ("v=0\r\nc=IN IP4\r\n", "bad c= line"),
        ("v=0\r\nc=IN IP4 10.0.0.1 extra\r\n", "bad c= line"),
        ("v=0\r\nc=IN IP4 224.2.1.1/300\r\n", "bad c= line"),
        ("v=0\r\nc=IN IP4 224.2.1.1/1/2/3\r\n", "bad c= line"),
        ("v=0\r\nc=IN IP6 ff15::1/1/2\r\n", "bad c= line"),
        ("v=0\r\nc=IN IP4 /1\r\n", "bad c= line"),
        ("v=0\r\no=- 1 IN IP4 h\r\n", "bad o= line"),
        ("v=0\r\no=- 1 x IN IP4 h\r\n", "bad o= line"),
        ("v=0\r\ns=\ud800\r\n", "not encodable as UTF-8"),
    ],
)
def test_malformed_sdp_raises_parse_error_400(body: str, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        SessionDescription.parse(body)
    assert caught.value.status == 400
    assert caught.value.reason == f"Bad SDP: {reason}"


# --- properties over generated input ----------------------------------------------------------


def _exercise(sdp: SessionDescription) -> None:
    """Every read a relay makes, which must not raise on anything parse accepted."""
    str(sdp)
    for media in sdp.media:
        media.rtpmaps()
        media.payload_types  # noqa: B018
        media.rtcp  # noqa: B018
        sdp.effective_connection(media)
        sdp.effective_direction(media)
        media.fmtp(0)


@given(st.text())
def test_arbitrary_text_raises_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        _exercise(SessionDescription.parse(text))


@given(st.binary())
def test_arbitrary_bytes_raise_only_parse_error(body: bytes) -> None:
    try:
        sdp = SessionDescription.parse(body)
    except ParseError:
        return
    _exercise(sdp)
    assert sdp.to_bytes() == SessionDescription.parse(sdp.to_bytes()).to_bytes()


_fuzz_value = st.text(alphabet="0123456789 /:.-abIPN4\u00b2\t\r", max_size=30)
_fuzz_line = st.builds(
    lambda kind, value: f"{kind}={value}", st.sampled_from("vocmatbsz"), _fuzz_value
)


@given(st.lists(_fuzz_line, max_size=12), st.sampled_from(["\n", "\r\n"]))
def test_sdp_shaped_garbage_raises_only_parse_error(lines: list[str], end: str) -> None:
    body = "v=0" + end + "".join(line + end for line in lines)
    try:
        sdp = SessionDescription.parse(body)
    except ParseError:
        return
    _exercise(sdp)
    if end == "\r\n":
        assert str(sdp) == body
    sdp.set_connection_address("203.0.113.5", origin=True)
    for media in sdp.media:
        media.port = 40000
    assert str(SessionDescription.parse(str(sdp))) == str(sdp)


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-._+", min_size=1, max_size=8)
_text = st.text(
    alphabet=st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=20
)
_number = st.integers(0, 2**64).map(str)
_ip4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_ip6 = st.sampled_from(["::1", "2001:db8::5", "fe80::1:2:3:4", "ff15::101/3"])
_connection = st.one_of(
    _ip4.map(lambda a: f"c=IN IP4 {a}"),
    _ip4.map(lambda a: f"c=IN IP4 {a}/127"),
    _ip6.map(lambda a: f"c=IN IP6 {a}"),
)
_attribute = st.one_of(
    _token.map(lambda n: f"a={n}"),
    st.tuples(_token, _text).map(lambda t: f"a={t[0]}:{t[1]}"),
    st.integers(0, 127).map(lambda pt: f"a=rtpmap:{pt} PCMU/8000"),
    st.integers(0, 65535).map(lambda port: f"a=rtcp:{port} IN IP4 10.0.0.1"),
    st.sampled_from(["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"]),
)
_other = st.tuples(st.sampled_from("ibkuepy"), _text).map(lambda t: f"{t[0]}={t[1]}")


@st.composite
def _media_section(draw: st.DrawFn) -> list[str]:
    port = draw(st.integers(0, 65535))
    count = draw(st.sampled_from(["", "/2"]))
    kind = draw(st.sampled_from(["audio", "video", "application", "text"]))
    proto = draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "UDP/DTLS/SCTP"]))
    formats = draw(st.lists(st.integers(0, 127).map(str) | _token, min_size=1, max_size=5))
    lines = [f"m={kind} {port}{count} {proto} {' '.join(formats)}"]
    lines += draw(st.lists(_other, max_size=2))
    lines += draw(st.lists(_connection, max_size=1))
    lines += draw(st.lists(_attribute, max_size=6))
    return lines


@st.composite
def _valid_sdp(draw: st.DrawFn) -> str:
    user, sess_id, version, address = (draw(s) for s in (_token, _number, _number, _ip4))
    lines = ["v=0", f"o={user} {sess_id} {version} IN IP4 {address}", f"s={draw(_text)}"]
    lines += draw(st.lists(_connection, max_size=1))
    lines += draw(st.lists(_other, max_size=3))
    lines += ["t=0 0", *draw(st.lists(_attribute, max_size=4))]
    for section in draw(st.lists(_media_section(), max_size=4)):
        lines += section
    return crlf(*lines)


@given(_valid_sdp())
def test_generated_valid_sdp_renders_byte_identical(body: str) -> None:
    assert SessionDescription.parse(body.encode()).to_bytes() == body.encode()
    assert str(SessionDescription.parse(body)) == body


@given(_valid_sdp(), st.integers(1, 65535), _ip4)
def test_generated_sdp_rewrite_changes_only_c_m_and_rtcp_lines(
    body: str, port: int, address: str
) -> None:
    sdp = SessionDescription.parse(body)
    had_session_connection = sdp.connection is not None
    sdp.set_connection_address(address)
    for media in sdp.media:
        media.port = port
    before, after = body.split("\r\n"), str(sdp).split("\r\n")
    if had_session_connection or all(m.connection is not None for m in sdp.media):
        assert len(before) == len(after)
        for old, new in zip(before, after, strict=True):
            if old[:2] not in ("c=", "m=") and not old.startswith("a=rtcp:"):
                assert old == new
    for media in sdp.media:
        connection = sdp.effective_connection(media)
        assert connection is not None and connection.address == address
        assert media.port == port
    assert str(SessionDescription.parse(str(sdp))) == str(sdp)
