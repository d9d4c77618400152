"""CSeq, integer headers, authentication parameters, token lists, grammar helpers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrex.sip.errors import ParseError
from centrex.sip.fields import (
    AuthParams,
    CSeq,
    parse_non_negative_int,
    parse_params,
    parse_quoted_string,
    parse_token_list,
    quote_string,
    render_display_name,
    unquote,
)

# -- CSeq ------------------------------------------------------------------------


def test_cseq_parses_number_and_method() -> None:
    assert CSeq.parse("4711 INVITE") == CSeq(4711, "INVITE")
    assert CSeq.parse("  1\t  REGISTER ") == CSeq(1, "REGISTER")
    assert str(CSeq(31, "BYE")) == "31 BYE"


def test_cseq_accepts_zero_and_the_largest_31_bit_number() -> None:
    assert CSeq.parse("0 ACK").number == 0
    assert CSeq.parse(f"{2**31 - 1} OPTIONS").number == 2**31 - 1


def test_cseq_method_is_case_sensitive_and_any_token() -> None:
    assert CSeq.parse("1 invite").method == "invite"
    assert CSeq.parse("1 X-FOO").method == "X-FOO"


@pytest.mark.parametrize(
    "text",
    ["", "INVITE", "1", "1INVITE", "-1 INVITE", "x INVITE", f"{2**31} INVITE",
     "99999999999999999999 INVITE", "1 IN VITE", "1 INV@TE", "\u0661 INVITE"],
)  # fmt: skip
def test_malformed_cseq_is_rejected(text: str) -> None:
    with pytest.raises(ParseError) as info:
        CSeq.parse(text)
    assert info.value.status == 400
    assert "CSeq" in info.value.reason


# -- integer headers ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("0", 0), (" 3600 ", 3600), ("4294967295", 2**32 - 1)])
def test_non_negative_int_accepts_0_to_2_32_minus_1(text: str, value: int) -> None:
    assert parse_non_negative_int(text, "Expires") == value


@pytest.mark.parametrize(
    "text", ["", "-1", "+5", "1.5", "abc", "4294967296", "1" * 5000, "\u0661\u0662", "7 0"]
)
def test_bad_integer_header_is_a_parse_error_naming_the_header(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_non_negative_int(text, "Max-Forwards")
    assert info.value.status == 400
    assert "Max-Forwards" in info.value.reason


# -- token lists ---------------------------------------------------------------------


def test_token_list_splits_and_strips() -> None:
    assert parse_token_list("INVITE, ACK,BYE ,\tCANCEL", "Allow") == [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
    ]


def test_empty_token_list_is_allowed() -> None:
    assert parse_token_list("", "Supported") == []
    assert parse_token_list(" , ", "Supported") == []


def test_token_list_with_non_token_is_rejected() -> None:
    with pytest.raises(ParseError) as info:
        parse_token_list("100rel, time r", "Require")
    assert "Require" in info.value.reason


# -- authentication headers ---------------------------------------------------------

CHALLENGE = (
    'Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth,auth-int", '
    'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
)

CREDENTIALS = (
    'Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
    'uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", '
    'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_challenge_params_are_unquoted_with_commas_inside_quotes_kept() -> None:
    auth = AuthParams.parse(CHALLENGE)
    assert auth.scheme == "Digest"
    assert auth.is_digest
    assert auth.params["qop"] == "auth,auth-int"
    assert auth.params["opaque"] == ""
    assert auth.params["stale"] == "FALSE"
    assert auth.get("REALM") == "atlanta.com"


def test_challenge_and_credentials_render_back_to_their_text() -> None:
    assert str(AuthParams.parse(CHALLENGE)) == CHALLENGE
    assert str(AuthParams.parse(CREDENTIALS)) == CREDENTIALS


def test_spacing_variations_and_scheme_case_are_accepted() -> None:
    auth = AuthParams.parse('  digest   realm = "a.com" ,nonce="n",,  algorithm=MD5-sess  ')
    assert auth.is_digest
    assert auth.params == {"realm": "a.com", "nonce": "n", "algorithm": "MD5-sess"}


def test_param_names_are_lower_cased_and_values_unescaped() -> None:
    auth = AuthParams.parse(r'Digest Username="a\"b\\c", Realm="r"')
    assert auth.params == {"username": 'a"b\\c', "realm": "r"}
    assert str(auth) == r'Digest username="a\"b\\c", realm="r"'


def test_new_challenge_quotes_qop_and_new_credentials_do_not() -> None:
    challenge = AuthParams.challenge("Digest", {"realm": "a.com", "nonce": "n", "qop": "auth"})
    assert str(challenge) == 'Digest realm="a.com", nonce="n", qop="auth"'
    creds = AuthParams.credentials(
        "Digest", {"username": "bob", "qop": "auth", "nc": "00000001", "algorithm": "MD5"}
    )
    assert str(creds) == 'Digest username="bob", qop=auth, nc=00000001, algorithm=MD5'


def test_values_that_are_not_tokens_are_quoted_on_render() -> None:
    assert str(AuthParams("Digest", {"x": "a b"})) == 'Digest x="a b"'


def test_token68_schemes_are_kept_whole() -> None:
    auth = AuthParams.parse("Bearer mF_9.B5f-4.1JqM==")
    assert auth.token68 == "mF_9.B5f-4.1JqM=="
    assert auth.params == {}
    assert str(auth) == "Bearer mF_9.B5f-4.1JqM=="


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"Digest" realm="a"',
        'Digest realm="a" nonce="b"',  # missing comma
        'Digest realm="a',  # unterminated
        "Digest realm",
        "Digest realm=",
        'Digest realm="a", realm="b"',  # duplicate
        'Digest ="a"',
        'Digest, realm="a"',
        'Digest realm="a\r\nX: y"',
    ],
)
def test_malformed_auth_headers_are_rejected(text: str) -> None:
    with pytest.raises(ParseError) as info:
        AuthParams.parse(text)
    assert info.value.status == 400


# -- grammar helpers ---------------------------------------------------------------------


def test_quoted_string_round_trip_escapes_quotes_and_backslashes() -> None:
    text = quote_string('say "hi" \\ bye')
    assert text == r'"say \"hi\" \\ bye"'
    assert unquote(text) == 'say "hi" \\ bye'
    assert unquote("plain") == "plain"


def test_parse_quoted_string_returns_the_end_position() -> None:
    assert parse_quoted_string('x"ab"cd', 1) == ("ab", 5)


def test_display_names_are_bare_only_when_made_of_tokens() -> None:
    assert render_display_name("Bob Smith") == "Bob Smith"
    assert render_display_name("Bob  Smith") == '"Bob  Smith"'
    assert render_display_name("O'Neil, B.") == '"O\'Neil, B."'
    assert render_display_name("") == '""'


def test_generic_params_allow_lws_and_quoted_semicolons() -> None:
    assert parse_params(' ; a = 1 ;b; c="x;y"', "test") == {"a": "1", "b": None, "c": '"x;y"'}


@given(st.text(max_size=30))
def test_any_text_survives_quote_then_unquote_except_line_breaks(text: str) -> None:
    assert unquote(quote_string(text)) == text.replace("\r", " ").replace("\n", " ")


@given(
    st.dictionaries(
        st.sampled_from(["realm", "nonce", "qop", "algorithm", "nc", "uri", "x-other"]),
        st.text(st.characters(exclude_characters="\r\n"), max_size=12),
        min_size=1,
    )
)
def test_rendered_auth_params_parse_back_equal(params: dict[str, str]) -> None:
    auth = AuthParams.credentials("Digest", params)
    assert AuthParams.parse(str(auth)).params == params


_AUTHISH = st.text(alphabet='Digest realm=",\\ \tqop;ab=', max_size=40)


@given(st.one_of(st.text(max_size=60), _AUTHISH))
def test_arbitrary_text_only_raises_parse_error(text: str) -> None:
    parsers = (
        AuthParams.parse,
        CSeq.parse,
        lambda t: parse_non_negative_int(t, "Expires"),
        lambda t: parse_token_list(t, "Allow"),
        lambda t: parse_params(t, "test"),
        unquote,
    )
    for parse in parsers:
        try:
            parse(text)
        except ParseError as exc:
            assert exc.status == 400


def test_a_cseq_in_the_usual_form_or_another_reads_as_the_grammar_says() -> None:
    # "N METHOD" takes a shortcut past the regular expression; the rest does not.
    cases = {
        "7 REGISTER": (7, "REGISTER"),
        "007 BYE": (7, "BYE"),
        " 7\tINVITE ": (7, "INVITE"),
        "7  INVITE": (7, "INVITE"),
        "7 register": (7, "register"),
        "7 X-CUSTOM": (7, "X-CUSTOM"),
        "2147483647 ACK": (2147483647, "ACK"),
    }
    for text, expected in cases.items():
        cseq = CSeq.parse(text)
        assert (cseq.number, cseq.method) == expected, text
    bad_ones = ("7", "x REGISTER", "2147483648 INVITE", "12345678901 INVITE", "\uff17 INVITE", "7 ")
    for bad in bad_ones:
        with pytest.raises(ParseError):
            CSeq.parse(bad)


def _reference_quoted_string(text: str, pos: int) -> tuple[str, int] | None:
    """RFC 3261 25.1 quoted-string read with the grammar's own classes."""
    qdtext = re.compile(r"[ \t\x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]")
    out, i = [], pos + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if (
            ch == "\\"
            and i + 1 < len(text)
            and text[i + 1] not in "\r\n"
            and ord(text[i + 1]) <= 0x7F
        ):
            out.append(text[i + 1])
            i += 2
        elif qdtext.fullmatch(ch):
            out.append(ch)
            i += 1
        else:
            return None
    return None


@given(st.text(alphabet=st.sampled_from('ab "\\\t\r\n\x00\x7f\u00e9\u2028\udc80'), max_size=20))
def test_quoted_strings_read_as_the_grammar_says(tail: str) -> None:
    text = '"' + tail
    expected = _reference_quoted_string(text, 0)
    if expected is None:
        with pytest.raises(ParseError):
            parse_quoted_string(text, 0)
    else:
        assert parse_quoted_string(text, 0) == expected
