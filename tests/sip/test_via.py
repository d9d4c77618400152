"""Via header values (RFC 3261 20.42, RFC 3581)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrex.sip.errors import ParseError
from centrex.sip.via import MAGIC_COOKIE, Via, is_rfc3261_branch, parse_via_list


def test_parses_sent_protocol_sent_by_and_params() -> None:
    via = Via.parse("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1")
    assert (via.protocol_name, via.version, via.transport) == ("SIP", "2.0", "UDP")
    assert via.sent_by == ("pc33.atlanta.com", 5066)
    assert via.branch == "z9hG4bK776asdhds"
    assert via.received == "192.0.2.1"
    assert (
        str(via) == "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1"
    )


def test_lws_around_slashes_colon_and_semicolons_is_accepted() -> None:
    via = Via.parse("SIP / 2.0 / UDP host.example.com : 5060 ; branch = z9hG4bK1 ;rport")
    assert via.transport == "UDP"
    assert via.sent_by == ("host.example.com", 5060)
    assert via.branch == "z9hG4bK1"
    assert str(via) == "SIP/2.0/UDP host.example.com:5060;branch=z9hG4bK1;rport"


def test_rfc4475_wide_whitespace_via_parses() -> None:
    via = Via.parse("SIP  /   2.0  / UDP     192.0.2.2;branch=390skdjuw")
    assert via.sent_by == ("192.0.2.2", None)
    assert via.branch == "390skdjuw"


def test_received_may_be_an_ipv6_reference() -> None:
    via = Via.parse("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKa")
    assert via.received == "[2001:db8::9:255]"


def test_transport_is_upper_cased_and_any_token_is_accepted() -> None:
    assert Via.parse("SIP/2.0/tcp h.com").transport == "TCP"
    for transport in ("TLS", "SCTP", "WS", "WSS", "X-NEW"):
        assert Via.parse(f"SIP/2.0/{transport} h.com").transport == transport


def test_reliable_transports() -> None:
    assert Via.parse("SIP/2.0/TCP h.com").reliable
    assert not Via.parse("SIP/2.0/UDP h.com").reliable


def test_ipv6_sent_by_keeps_brackets() -> None:
    via = Via.parse("SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKa")
    assert via.sent_by == ("[2001:db8::9:1]", 5070)


def test_received_may_be_a_bare_ipv6_address() -> None:
    via = Via.parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKa")
    assert via.received == "2001:db8::9:255"


def test_bare_rport_is_requested_but_has_no_value() -> None:
    via = Via.parse("SIP/2.0/UDP h.com;rport;branch=z9hG4bKa")
    assert via.has_rport
    assert via.rport is None


def test_rport_with_value() -> None:
    via = Via.parse("SIP/2.0/UDP h.com;received=192.0.2.1;rport=9988")
    assert via.has_rport
    assert via.rport == 9988


def test_absent_rport() -> None:
    via = Via.parse("SIP/2.0/UDP h.com")
    assert not via.has_rport
    assert via.rport is None
    assert via.branch is None
    assert via.port is None


def test_maddr_and_ttl() -> None:
    via = Via.parse("SIP/2.0/UDP h.com;maddr=224.2.0.1;ttl=16")
    assert via.maddr == "224.2.0.1"
    assert via.ttl == 16


def test_param_names_are_lower_cased() -> None:
    assert Via.parse("SIP/2.0/UDP h.com;BRANCH=z9hG4bKx").branch == "z9hG4bKx"


def test_magic_cookie_marks_rfc3261_branches() -> None:
    assert MAGIC_COOKIE == "z9hG4bK"
    assert Via.parse("SIP/2.0/UDP h.com;branch=z9hG4bK74bf9").is_rfc3261_branch
    assert not Via.parse("SIP/2.0/UDP h.com;branch=74bf9").is_rfc3261_branch
    assert not is_rfc3261_branch(None)


def test_constructed_via_renders_with_defaults() -> None:
    via = Via("TLS", "proxy.example.com", 5061, {"branch": "z9hG4bKabc", "rport": None})
    assert str(via) == "SIP/2.0/TLS proxy.example.com:5061;branch=z9hG4bKabc;rport"


def test_via_list_splits_comma_separated_values() -> None:
    vias = parse_via_list(
        "SIP/2.0/UDP a.com;branch=z9hG4bK1, SIP/2.0/TCP b.com:5070;branch=z9hG4bK2"
    )
    assert [v.sent_by for v in vias] == [("a.com", None), ("b.com", 5070)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 UDP h.com",
        "SIP/2.0/UDPh.com",
        "SIP/2.0/UDP h.com:",
        "SIP/2.0/UDP h.com:99999",
        "SIP/2.0/UDP h.com:abc",
        "SIP/2.0/UDP h/x.com",
        "SIP/2.0/UDP [2001:db8::1",
        "SIP/2.0/UDP [nope]",
        "SIP/2.0/UDP h.com junk",
        "SIP/2.0/UDP h.com;branch",
        'SIP/2.0/UDP h.com;branch="z9hG4bK1"',
        "SIP/2.0/UDP h.com;branch=a;branch=b",
        "SIP/2.0/UDP h.com;rport=x",
        "SIP/2.0/UDP h.com;rport=70000",
        "SIP/2.0/UDP h.com;ttl=256",
        "SIP/2.0/UDP h.com;ttl",
        "SIP/2.0/UDP h.com;received",
        "SIP/2.0/UDP h.com;maddr=bad@host",
        "SIP/2.0/UDP h.com;=x",
        "SIP/2.0/UDP h.com;;branch=z9hG4bK1",
    ],
)
def test_malformed_via_is_rejected_with_400(text: str) -> None:
    with pytest.raises(ParseError) as info:
        Via.parse(text)
    assert info.value.status == 400
    assert info.value.reason.startswith("Bad Via")


@pytest.mark.parametrize("text", ["", " ,, ", "SIP/2.0/UDP a.com, bad"])
def test_bad_via_lists_are_rejected(text: str) -> None:
    with pytest.raises(ParseError):
        parse_via_list(text)


_host = st.one_of(
    st.from_regex(r"[a-z]([a-z0-9-]{0,5}[a-z0-9])?(\.[a-z]{2,4})?", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)


@given(
    st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]),
    _host,
    st.one_of(st.none(), st.integers(0, 65535)),
    st.from_regex(r"z9hG4bK[A-Za-z0-9\-.!%*_+`'~]{0,10}", fullmatch=True),
    st.booleans(),
)
def test_rendered_via_parses_back_equal(
    transport: str, host: str, port: int | None, branch: str, rport: bool
) -> None:
    params: dict[str, str | None] = {"branch": branch}
    if rport:
        params["rport"] = None
    via = Via(transport, host, port, params)
    assert Via.parse(str(via)) == via


_VIAISH = st.text(alphabet='SIP/2.0UDP h.com:;=[]abz,\t"9', max_size=40)


@given(st.one_of(st.text(max_size=60), _VIAISH, _VIAISH.map(lambda s: "SIP/2.0/UDP " + s)))
def test_arbitrary_text_only_raises_parse_error(text: str) -> None:
    try:
        vias = parse_via_list(text)
    except ParseError as exc:
        assert exc.status == 400
    else:
        assert [str(v) for v in parse_via_list(", ".join(map(str, vias)))] == [str(v) for v in vias]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The usual form, cut without the pattern.
        (
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport",
            Via("UDP", "192.0.2.1", 5060, {"branch": "z9hG4bK1", "rport": None}),
        ),
        (
            "SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bK1",
            Via("TLS", "[2001:db8::1]", 5061, {"branch": "z9hG4bK1"}),
        ),
        ("SIP/2.0/WSS h.example.com", Via("WSS", "h.example.com")),
        # Any other form goes to the pattern, with the same result.
        (
            "SIP/2.0/udp h.com:5060 ;branch=z9hG4bK1",
            Via("UDP", "h.com", 5060, {"branch": "z9hG4bK1"}),
        ),
        (
            "sip/2.0/UDP h.com ; branch = z9hG4bK1",
            Via("UDP", "h.com", None, {"branch": "z9hG4bK1"}),
        ),
        ("SIP / 2.0 / TCP h.com : 5070", Via("TCP", "h.com", 5070)),
        ("SIP/2.0/XUDP h.com", Via("XUDP", "h.com")),
    ],
)
def test_the_usual_form_and_the_others_parse_alike(text: str, expected: Via) -> None:
    assert Via.parse(text) == expected


def test_a_bad_sent_by_in_the_usual_form_gets_the_patterns_error() -> None:
    with pytest.raises(ParseError, match="Bad Via: bad port"):
        Via.parse("SIP/2.0/UDP h.com:99999;branch=z9hG4bK1")
    with pytest.raises(ParseError, match="Bad Via: bad host"):
        Via.parse("SIP/2.0/UDP 300.1.1.1;branch=z9hG4bK1")
