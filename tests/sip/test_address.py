"""Addresses (name-addr / addr-spec with header parameters)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrex.sip.address import Address, parse_address_list
from centrex.sip.errors import ParseError
from centrex.sip.fields import quote_string
from centrex.sip.uri import SipURI, TelURI, parse_uri


def test_name_addr_with_quoted_display_name_and_tag() -> None:
    addr = Address.parse('"Bob" <sips:bob@biloxi.com>;tag=a48s')
    assert addr.display_name == "Bob"
    assert addr.uri == parse_uri("sips:bob@biloxi.com")
    assert addr.tag == "a48s"
    assert str(addr) == "Bob <sips:bob@biloxi.com>;tag=a48s"


def test_token_display_name_without_quotes() -> None:
    addr = Address.parse("Bob Smith <sip:bob@biloxi.com>")
    assert addr.display_name == "Bob Smith"


def test_token_display_name_whitespace_is_collapsed() -> None:
    assert Address.parse("Bob \t  Smith<sip:bob@x.com>").display_name == "Bob Smith"


def test_quoted_display_name_is_unescaped_and_requoted() -> None:
    addr = Address.parse(r'"A \"B\" C\\" <sip:a@atlanta.com>')
    assert addr.display_name == 'A "B" C\\'
    assert str(addr) == r'"A \"B\" C\\" <sip:a@atlanta.com>'


def test_empty_quoted_display_name_is_kept_distinct_from_none() -> None:
    addr = Address.parse('"" <sip:a@atlanta.com>')
    assert addr.display_name == ""
    assert str(addr) == '"" <sip:a@atlanta.com>'
    assert Address.parse("<sip:a@atlanta.com>").display_name is None


def test_display_name_with_utf8_and_commas_stays_quoted() -> None:
    addr = Address.parse('"Watson, Jürgen" <sip:jw@example.org>')
    assert addr.display_name == "Watson, Jürgen"
    assert str(addr) == '"Watson, Jürgen" <sip:jw@example.org>'


@pytest.mark.parametrize(
    "text",
    [
        '"Bob"<sip:bob@biloxi.com>;tag=1',
        '  "Bob"   <sip:bob@biloxi.com> ; tag = 1  ',
        "Bob<sip:bob@biloxi.com>;tag=1",
        "Bob <sip:bob@biloxi.com>\t;tag=1",
    ],
)
def test_lws_variations_parse_the_same(text: str) -> None:
    addr = Address.parse(text)
    assert (addr.display_name, str(addr.uri), addr.tag) == ("Bob", "sip:bob@biloxi.com", "1")


def test_params_after_bare_uri_belong_to_the_header() -> None:
    addr = Address.parse("sip:alice@atlanta.com;tag=1928301774")
    assert isinstance(addr.uri, SipURI)
    assert addr.uri.params == {}
    assert addr.params == {"tag": "1928301774"}


def test_params_inside_angle_brackets_belong_to_the_uri() -> None:
    addr = Address.parse("<sip:p1.example.com;lr>;foo=bar")
    assert isinstance(addr.uri, SipURI)
    assert addr.uri.lr
    assert addr.params == {"foo": "bar"}


def test_rendering_uses_angle_brackets_for_uris_with_params() -> None:
    addr = Address(parse_uri("sip:p1.example.com;lr"))
    assert str(addr) == "<sip:p1.example.com;lr>"
    bare = Address.parse("sip:alice@atlanta.com;tag=x")
    assert Address.parse(str(bare)) == bare


def test_quoted_param_values_keep_their_quotes() -> None:
    addr = Address.parse('<sip:a@192.0.2.1>;+sip.instance="<urn:uuid:00000000-0000>";reg-id=1')
    assert addr.params["+sip.instance"] == '"<urn:uuid:00000000-0000>"'
    assert addr.param("+sip.instance") == "<urn:uuid:00000000-0000>"
    assert str(addr) == '<sip:a@192.0.2.1>;+sip.instance="<urn:uuid:00000000-0000>";reg-id=1'


def test_param_names_are_lower_cased_and_flags_are_none() -> None:
    addr = Address.parse("<sip:a@b.com>;Expires=60;Q=1;ISFOCUS")
    assert addr.params == {"expires": "60", "q": "1", "isfocus": None}


def test_uri_with_escaped_headers_is_fine_inside_angle_brackets() -> None:
    addr = Address.parse("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    assert isinstance(addr.uri, SipURI)
    assert addr.uri.unescaped_headers() == {"Route": "<sip:sip.example.com>"}


def test_long_display_name_and_unknown_params_are_kept() -> None:
    name = "I have a user name of " + "extreme " * 40 + "proportion"
    addr = Address.parse(f'"{name}" <sip:user@example.com:6000;unknownparam>;unknown=val')
    assert addr.display_name == name
    assert addr.params == {"unknown": "val"}
    assert isinstance(addr.uri, SipURI)
    assert addr.uri.params == {"unknownparam": None}


def test_tel_and_other_uris_are_accepted() -> None:
    assert isinstance(Address.parse("<tel:+1-201-555-0123>").uri, TelURI)
    assert str(Address.parse("<urn:service:sos>").uri) == "urn:service:sos"


def test_contact_expires_and_q() -> None:
    addr = Address.parse("<sip:a@b.com>;expires=3600;q=0.7")
    assert addr.expires == 3600
    assert addr.q == 0.7
    plain = Address.parse("<sip:a@b.com>")
    assert plain.expires is None
    assert plain.q is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("abc", 3600),
        ("-1", 3600),
        ("1.5", 3600),
        ("", 3600),
        ("99999999999", 2**32 - 1),
        ("0600", 600),
    ],
)
def test_a_malformed_expires_counts_as_3600_and_a_huge_one_as_the_largest(
    value: str, seconds: int
) -> None:
    # RFC 3261 20.10 / 10.2.1.1: malformed SHOULD be 3600, above 2**32-1 MAY be 2**32-1.
    addr = Address.parse(f"<sip:a@b.com>;expires{'=' + value if value else ''}")
    assert addr.expires == seconds


@pytest.mark.parametrize("value", ["0", "1", "0.5", "0.123", "1.000", "0."])
def test_valid_q_values(value: str) -> None:
    assert Address.parse(f"<sip:a@b.com>;q={value}").q == float(value)


@pytest.mark.parametrize("value", ["1.5", "2", "0.1234", "1.001", "-0.1", ".5", "abc"])
def test_q_outside_0_to_1_or_with_many_decimals_is_a_parse_error(value: str) -> None:
    with pytest.raises(ParseError):
        _ = Address.parse(f"<sip:a@b.com>;q={value}").q


def test_star_is_a_wildcard_contact() -> None:
    addr = Address.parse(" * ")
    assert addr.wildcard
    assert str(addr) == "*"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<sip:a@b.com",  # no '>'
        '"Bob <sip:a@b.com>',  # unterminated quote
        '"Bob" sip:a@b.com',  # quoted name, no brackets
        "Bob, Jr. <sip:a@b.com>",  # comma is no token character
        "Bob@home <sip:a@b.com>",
        "<sip:a@b.com> junk",
        "<sip:a@b.com>;tag",  # fine: flag; next case is not
        "<sip:a@b.com>;=x",
        "<sip:a@b.com>;tag=1;tag=2",
        "<sip:a b@c.com>",
        "< sip:a@b.com >",
        "sip:a@b.com junk",
        '"Bob\r\n" <sip:a@b.com>',
        "alice",
        "*;expires=0",
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 3.1.2.13
        "Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43",  # RFC 4475 3.1.2.15
    ],
)
def test_malformed_addresses_are_rejected_with_400(text: str) -> None:
    if text == "<sip:a@b.com>;tag":
        assert Address.parse(text).params == {"tag": None}
        return
    with pytest.raises(ParseError) as info:
        Address.parse(text)
    assert info.value.status == 400


def test_address_list_splits_on_commas_outside_quotes_and_brackets() -> None:
    addrs = parse_address_list(
        '"Watson, T" <sip:tw@a.com;lr>, <sip:p2.b.com;lr>,sip:c@c.com;expires=5'
    )
    assert [a.display_name for a in addrs] == ["Watson, T", None, None]
    assert [str(a.uri) for a in addrs] == ["sip:tw@a.com;lr", "sip:p2.b.com;lr", "sip:c@c.com"]
    assert addrs[2].expires == 5


def test_address_list_star_gives_one_wildcard() -> None:
    (addr,) = parse_address_list("*")
    assert addr.wildcard


@pytest.mark.parametrize("text", ["", " , ", "*, <sip:a@b.com>", "<sip:a@b.com>, <bad>"])
def test_bad_address_lists_are_rejected(text: str) -> None:
    with pytest.raises(ParseError):
        parse_address_list(text)


# -- properties ----------------------------------------------------------------

_display = st.one_of(st.none(), st.text(st.characters(exclude_characters="\r\n"), max_size=20))
_token = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,8}", fullmatch=True)
_param_value = st.one_of(
    st.none(),
    _token,
    st.text(st.characters(exclude_characters="\r\n"), max_size=8).map(quote_string),
)


@given(
    _display,
    st.sampled_from(["sip:a@b.com", "sips:x.org;lr", "tel:+123;ext=4", "urn:x:y", "sip:c?x=y"]),
    st.dictionaries(_token.map(str.lower), _param_value, max_size=3),
)
def test_rendered_address_parses_back_equal(
    display: str | None, uri: str, params: dict[str, str | None]
) -> None:
    addr = Address(parse_uri(uri), display, params)
    assert Address.parse(str(addr)) == addr


_ADDRISH = st.text(alphabet='"<>\\;=,*: \tsip@ab.c%?', max_size=40)


@given(st.one_of(st.text(max_size=60), _ADDRISH))
def test_arbitrary_text_only_raises_parse_error(text: str) -> None:
    for parse in (Address.parse, parse_address_list):
        try:
            parse(text)
        except ParseError as exc:
            assert exc.status == 400
