"""URIs: parsing, rendering and RFC 3261 19.1.4 comparison."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrex.sip.errors import ParseError
from centrex.sip.uri import AbsoluteURI, SipURI, TelURI, parse_uri, unescape


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


# -- parsing ---------------------------------------------------------------


def test_parses_every_component_of_a_full_sip_uri() -> None:
    uri = sip("sip:alice:secret@atlanta.com:5070;transport=tcp;lr?subject=project&priority=urgent")
    assert uri.scheme == "sip"
    assert uri.user == "alice"
    assert uri.password == "secret"
    assert uri.host == "atlanta.com"
    assert uri.port == 5070
    assert uri.params == {"transport": "tcp", "lr": None}
    assert uri.headers == {"subject": "project", "priority": "urgent"}


def test_scheme_is_case_insensitive_and_lower_cased() -> None:
    uri = sip("SIPS:bob@biloxi.com")
    assert uri.scheme == "sips"
    assert uri.secure
    assert str(uri) == "sips:bob@biloxi.com"


def test_uri_without_user_part() -> None:
    uri = sip("sip:registrar.biloxi.com")
    assert uri.user is None
    assert uri.host == "registrar.biloxi.com"
    assert str(uri) == "sip:registrar.biloxi.com"


def test_telephone_subscriber_user_with_password_and_user_phone() -> None:
    uri = sip("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert uri.user == "+1-212-555-1212"
    assert uri.password == "1234"
    assert uri.user_param == "phone"


def test_user_part_may_hold_semicolon_parameters() -> None:
    uri = sip("sip:+12125551212;npdi;rn=+12125550000@gw.example.com;user=phone")
    assert uri.user == "+12125551212;npdi;rn=+12125550000"
    assert uri.host == "gw.example.com"
    assert uri.params == {"user": "phone"}


def test_escaped_user_is_kept_as_written_and_unescaped_on_request() -> None:
    uri = sip("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.unescaped_user == "sips:user@example.com"
    assert str(uri) == "sip:sips%3Auser%40example.com@example.net"


def test_ipv6_reference_keeps_its_brackets() -> None:
    uri = sip("sip:[2001:db8::10]:5070;maddr=[2001:db8::1]")
    assert uri.host == "[2001:db8::10]"
    assert uri.port == 5070
    assert uri.maddr == "[2001:db8::1]"
    assert uri.host_port == "[2001:db8::10]:5070"


def test_ipv4_host_and_host_name_with_trailing_dot() -> None:
    assert sip("sip:alice@192.0.2.4").host == "192.0.2.4"
    assert sip("sip:alice@atlanta.com.").host == "atlanta.com."


def test_flag_and_valued_params_keep_their_order_and_lower_case_names() -> None:
    uri = sip("sip:p.example.com;LR;Transport=TLS;foo=Bar")
    assert list(uri.params.items()) == [("lr", None), ("transport", "TLS"), ("foo", "Bar")]
    assert uri.lr
    assert uri.transport == "tls"
    assert str(uri) == "sip:p.example.com;lr;transport=TLS;foo=Bar"


def test_repeated_uri_headers_combine_into_one_value() -> None:
    uri = sip("sip:a@b.com?Route=%3Csip:x%3E&route=%3Csip:y%3E")
    assert uri.unescaped_headers() == {"Route": "<sip:x>,<sip:y>"}


def test_default_port_depends_on_scheme_and_transport() -> None:
    assert sip("sip:a.com").default_port == 5060
    assert sip("sips:a.com").default_port == 5061
    assert sip("sip:a.com;transport=TLS").default_port == 5061
    assert sip("sip:a.com:7000").default_port == 7000


def test_tel_uri_parses_number_and_params() -> None:
    uri = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert uri == TelURI("+1-201-555-0123", {"ext": "1234"})
    assert isinstance(uri, TelURI)
    assert uri.is_global
    assert uri.digits == "+12015550123"
    assert str(uri) == "tel:+1-201-555-0123;ext=1234"


def test_tel_uris_compare_without_visual_separators() -> None:
    assert parse_uri("tel:+1-201-555-0123") == parse_uri("tel:+1(201)5550123")
    assert parse_uri("tel:7042;phone-context=example.com") != parse_uri("tel:7042")


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),  # RFC 5118 4.1
        ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:[2001:db8::192.0.2.1]", "[2001:db8::192.0.2.1]", None),  # RFC 5954 4.1
        ("sip:[::ffff:192.0.2.1]:5060", "[::ffff:192.0.2.1]", 5060),
        ("sip:user;par=u%40example.net@example.com", "example.com", None),  # RFC 4475 3.1.1.10
        ("sip:null-%00-null@example.com", "example.com", None),  # RFC 4475 3.1.1.4
    ],
)
def test_torture_test_uris_parse(text: str, host: str, port: int | None) -> None:
    uri = sip(text)
    assert (uri.host, uri.port) == (host, port)
    assert str(uri) == text


@pytest.mark.parametrize(
    "text",
    [
        "sip:user@2001:db8::10",  # RFC 5118 4.10: IPv6 without brackets
        "sip:[2001:db8:::192.0.2.1]",  # RFC 5954 4.2
        "<sip:user@example.com>",  # RFC 4475 3.1.2.11: <> around the Request-URI
        "sip:user@example.com:5060:5060",
    ],
)
def test_torture_test_uris_are_rejected(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_escaped_null_is_kept_in_the_unescaped_user() -> None:
    assert sip("sip:null-%00-null@example.com").unescaped_user == "null-\x00-null"


@pytest.mark.parametrize(
    "text",
    [
        "urn:service:sos",
        "mailto:alice@atlanta.com",
        "http://www.example.com/alice/photo.jpg",
        "im:alice@atlanta.com",
        "x-custom+v1.2:opaque;stuff",
    ],
)
def test_unknown_schemes_parse_as_absolute_uris(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteURI)
    assert str(uri) == text


@pytest.mark.parametrize(
    "text",
    [
        "alice@atlanta.com",  # no scheme
        ":alice@atlanta.com",
        "sip:",
        "sip:alice@",  # empty host
        "sip:@atlanta.com",  # empty user
        "sip:alice@atlanta.com:",  # empty port
        "sip:alice@atlanta.com:50x0",
        "sip:alice@atlanta.com:65536",
        "sip:alice@atlanta.com:123456",
        "sip:alice@[2001:db8::1",  # unterminated IPv6 reference
        "sip:alice@[2001:db8:::1:2]",
        "sip:alice@[not:an:addr]",
        "sip:alice@[::1]x",
        "sip:alice@[fe80::1%25eth0]",
        "sip:ali ce@atlanta.com",  # space
        "sip:alice@atlanta.com <",
        "sip:<alice>@atlanta.com",
        "sip:alice@atl anta.com",
        "sip:alice@atlanta..com",
        "sip:alice@-atlanta.com",
        "sip:alice@atlanta-.com",
        "sip:alice@192.0.2.256",
        "sip:alice@atlanta.123",
        "sip:%6@atlanta.com",  # bad escape
        "sip:%zzlice@atlanta.com",
        "sip:alice@atlanta.com;transport=%G1",
        "sip:alice@atlanta.com;",  # empty parameter
        "sip:alice@atlanta.com;;lr",
        "sip:alice@atlanta.com;foo=",
        "sip:alice@atlanta.com;lr;LR",  # duplicate parameter
        "sip:alice@atlanta.com?",  # empty header
        "sip:alice@atlanta.com?subject",
        "sip:alice@atlanta.com?=x",
        "sip:al\u00efce@atlanta.com",
        "sip:alice@atlanta.com\r\nVia: x",
        "1sip:alice@atlanta.com",
        "tel:",
        "tel:abc-g",
        "tel:+",
        "urn:",
        "urn:has space",
    ],
)
def test_malformed_uris_are_rejected_with_400(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert info.value.status == 400
    assert info.value.reason.startswith("Bad URI")


def test_error_reason_never_echoes_the_input() -> None:
    with pytest.raises(ParseError) as info:
        parse_uri("sip:a b\r\nX-Evil: 1@host")
    assert "\n" not in info.value.reason
    assert "Evil" not in info.value.reason


# -- RFC 3261 19.1.4 comparison ---------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
    ],
)
def test_rfc3261_equivalent_uri_pairs_are_equal(a: str, b: str) -> None:
    assert parse_uri(a) == parse_uri(b)
    assert parse_uri(b) == parse_uri(a)
    assert hash(parse_uri(a)) == hash(parse_uri(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ],
)
def test_rfc3261_non_equivalent_uri_pairs_differ(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)
    assert parse_uri(b) != parse_uri(a)


def test_sip_and_sips_uris_differ() -> None:
    assert parse_uri("sip:alice@atlanta.com") != parse_uri("sips:alice@atlanta.com")


def test_explicit_default_port_is_not_equal_to_no_port() -> None:
    assert parse_uri("sip:alice@atlanta.com:5060") != parse_uri("sip:alice@atlanta.com")


def test_password_is_compared_case_sensitively() -> None:
    assert parse_uri("sip:alice:Pw@a.com") != parse_uri("sip:alice:pw@a.com")
    assert parse_uri("sip:alice:p%77@a.com") == parse_uri("sip:alice:pw@a.com")


@pytest.mark.parametrize("name", ["user", "ttl", "method", "maddr", "transport"])
def test_special_params_must_match_when_present_in_either(name: str) -> None:
    assert parse_uri(f"sip:a@b.com;{name}=x") != parse_uri("sip:a@b.com")


def test_other_params_compare_case_insensitively_when_in_both() -> None:
    assert parse_uri("sip:a@b.com;foo=BAR") == parse_uri("sip:a@b.com;foo=bar")
    assert parse_uri("sip:a@b.com;foo=bar") != parse_uri("sip:a@b.com;foo=baz")


def test_header_names_compare_case_insensitively_and_must_all_match() -> None:
    assert parse_uri("sip:a@b.com?Subject=x") == parse_uri("sip:a@b.com?subject=x")
    assert parse_uri("sip:a@b.com?subject=x&p=1") != parse_uri("sip:a@b.com?subject=x")


def test_ipv6_hosts_compare_by_address() -> None:
    assert parse_uri("sip:[2001:DB8:0::1]") == parse_uri("sip:[2001:db8::1]")


def test_uris_of_different_kinds_are_never_equal() -> None:
    assert parse_uri("sip:alice@atlanta.com") != parse_uri("tel:+1234")
    assert parse_uri("sip:alice@atlanta.com") != "sip:alice@atlanta.com"


def test_equal_uris_work_as_the_same_dict_key() -> None:
    bindings = {parse_uri("sip:%61lice@AtLanTa.com"): 1}
    assert bindings[parse_uri("sip:alice@atlanta.com")] == 1


# -- address-of-record and helpers -------------------------------------------


def test_aor_drops_port_params_headers_and_password() -> None:
    uri = sip("sip:alice:pw@AtLanTa.COM.:5070;transport=tcp?subject=x")
    assert uri.aor() == "sip:alice@atlanta.com"


def test_aor_of_escaped_and_unescaped_users_is_the_same() -> None:
    assert sip("sip:%61lice@atlanta.com").aor() == sip("sip:alice@atlanta.com").aor()
    assert sip("sip:a%2fb%40c@x.com").aor() == "sip:a/b%40c@x.com"


def test_aor_keeps_user_case_and_uses_the_sip_scheme() -> None:
    assert sip("sips:Alice@atlanta.com").aor() == "sip:Alice@atlanta.com"
    assert sip("sip:atlanta.com").aor() == "sip:atlanta.com"


def test_replace_and_copy_give_independent_uris() -> None:
    uri = sip("sip:alice@atlanta.com;lr")
    moved = uri.replace(host="biloxi.com", port=5080)
    assert str(moved) == "sip:alice@biloxi.com:5080;lr"
    clone = uri.copy()
    clone.params["transport"] = "tcp"
    assert "transport" not in uri.params


def test_unescape_decodes_utf8_for_display() -> None:
    assert unescape("J%C3%BCrgen") == "Jürgen"
    assert sip("sip:a@b.com;x=%41b").param("x") == "Ab"


# -- properties ----------------------------------------------------------------

_UNRESERVED = "abcXYZ019-_.!~*'()"
_ESCAPE = st.builds(lambda b: f"%{b:02X}", st.integers(0, 255))


def _chars(extra: str, min_size: int = 1) -> st.SearchStrategy[str]:
    return st.lists(
        st.one_of(st.sampled_from(_UNRESERVED + extra), _ESCAPE), min_size=min_size, max_size=8
    ).map("".join)


_LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_HOST = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)


@st.composite
def sip_uri_texts(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(["sip:", "sips:", "SIP:"]))
    if draw(st.booleans()):
        text += draw(_chars("&=+$,;?/"))
        if draw(st.booleans()):
            text += ":" + draw(_chars("&=+$,", min_size=0))
        text += "@"
    text += draw(_HOST)
    if draw(st.booleans()):
        text += f":{draw(st.integers(0, 65535))}"
    names = draw(st.lists(_chars("[]/:&+$"), max_size=3, unique_by=str.lower))
    for name in names:
        value = draw(st.one_of(st.none(), _chars("[]/:&+$")))
        text += f";{name}" if value is None else f";{name}={value}"
    headers = draw(st.lists(_chars("[]/?:+$"), max_size=3, unique_by=lambda h: unescape(h).lower()))
    if headers:
        text += "?" + "&".join(f"{h}={draw(_chars('[]/?:+$', 0))}" for h in headers)
    return text


@given(sip_uri_texts())
def test_rendered_uri_parses_back_equal(text: str) -> None:
    uri = parse_uri(text)
    again = parse_uri(str(uri))
    assert again == uri
    assert str(again) == str(uri)
    assert hash(again) == hash(uri)


_SIPISH = st.text(alphabet='sipSIPtel:@;=?&%[]<>.,/+-_ "09aAfF\r\n\u00e9', max_size=40)


@given(st.one_of(st.text(max_size=60), _SIPISH, _SIPISH.map(lambda s: "sip:" + s)))
def test_arbitrary_text_either_parses_or_raises_parse_error(text: str) -> None:
    try:
        uri = parse_uri(text)
    except ParseError as exc:
        assert exc.status == 400
    else:
        assert parse_uri(str(uri)) == uri


def test_underscore_in_host_name_is_accepted_as_real_deployments_use_it() -> None:
    uri = parse_uri("sip:alice@pbx_1.example.com")
    assert isinstance(uri, SipURI)
    assert uri.host == "pbx_1.example.com"


def test_a_uri_named_again_is_the_same_and_the_memory_of_them_stays_bounded() -> None:
    from centrex.sip import uri as uri_module

    first = parse_uri("sip:alice@example.com;transport=tcp")
    again = parse_uri("sip:alice@example.com;transport=tcp")
    assert again == first and str(again) == "sip:alice@example.com;transport=tcp"
    # A flood of distinct URIs never holds more than the cache's size.
    for i in range(uri_module.PARSED_CACHE_SIZE * 3):
        parsed = parse_uri(f"sip:user{i}@example.com")
        assert isinstance(parsed, SipURI) and parsed.user == f"user{i}"
    assert len(uri_module._PARSED) <= uri_module.PARSED_CACHE_SIZE
    # A bad URI is refused each time, never remembered.
    for _ in range(2):
        with pytest.raises(ParseError):
            parse_uri("sip:al ice@example.com")


def test_a_long_uri_is_parsed_but_not_kept() -> None:
    # A sender of 60 KB URIs must not make the cache of parsed URIs hold them.
    from centrex.sip import uri as uri_module

    text = "sip:a@example.com;x=" + "v" * 5000
    parsed = parse_uri(text)
    assert isinstance(parsed, SipURI) and parsed.params["x"] == "v" * 5000
    assert text not in uri_module._PARSED
    short = "sip:kept@example.com"
    parse_uri(short)
    assert short in uri_module._PARSED


def test_hosts_checked_again_give_the_same_answer() -> None:
    # Valid hosts and host:ports are remembered; an invalid one never is.
    from centrex.sip.uri import is_valid_host, parse_host_port

    for _ in range(2):
        assert parse_host_port("Example.COM:5070") == ("Example.COM", 5070)
        assert parse_host_port("[2001:db8::1]") == ("[2001:db8::1]", None)
        assert is_valid_host("192.0.2.1") and not is_valid_host("192.0.2.256")
        assert not is_valid_host("exa mple.com")
        for bad in ("192.0.2.1:65536", "[2001:db8::zz]:5060", "host:"):
            with pytest.raises(ParseError):
                parse_host_port(bad)
    assert sip("sip:alice@192.0.2.1:5060").port == 5060
    assert sip("sip:alice@192.0.2.1").port is None
