"""Torture messages for parse_message, in the categories of RFC 4475.

The messages are our own, written for these tests: valid but odd messages
(RFC 4475 3.1.1 and 3.3), which must parse to the right values, and invalid
ones (RFC 4475 3.1.2), which must fail with the status a server answers, or be
dropped when nobody may be answered (garbage, malformed responses: RFC 3261
18.1.2). Every valid case checks values, not merely that nothing was raised.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import pytest

from centrex.sip.errors import ParseError
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message
from centrex.sip.uri import AbsoluteURI, SipURI, TelURI

CRLF = b"\r\n"

# The headers of a plain OPTIONS from kim@atlantis.example to lee@lemuria.example.
BASE: dict[str, bytes] = {
    "via": b"Via: SIP/2.0/UDP pc7.atlantis.example:5060;branch=z9hG4bK.q8r2Tw",
    "max-forwards": b"Max-Forwards: 69",
    "from": b'From: "Kim" <sip:kim@atlantis.example>;tag=77ab',
    "to": b"To: <sip:lee@lemuria.example>",
    "call-id": b"Call-ID: 5f2a91c0@pc7.atlantis.example",
    "cseq": b"CSeq: 12 OPTIONS",
}
OPTIONS_LINE = b"OPTIONS sip:lee@lemuria.example SIP/2.0"
NO_REPLACE: Mapping[str, bytes | None] = {}


def build(
    start: bytes = OPTIONS_LINE,
    *,
    replace: Mapping[str, bytes | None] = NO_REPLACE,
    extra: Sequence[bytes] = (),
    body: bytes = b"",
) -> bytes:
    """A message: BASE with some lines replaced (None drops one), then ``extra``."""
    unknown = set(replace) - set(BASE)
    assert not unknown, unknown
    lines = [replace.get(key, line) for key, line in BASE.items()]
    kept = [line for line in lines if line is not None]
    return start + CRLF + b"".join(line + CRLF for line in [*kept, *extra]) + CRLF + body


def request(data: bytes, **kwargs: bool | int) -> Request:
    message = parse_message(data, **kwargs)  # type: ignore[arg-type]
    assert isinstance(message, Request)
    return message


def response(data: bytes) -> Response:
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


def error_of(data: bytes, **kwargs: bool | int) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_message(data, **kwargs)  # type: ignore[arg-type]
    return caught.value


def sip_uri(message: Request) -> SipURI:
    uri = message.request_uri
    assert isinstance(uri, SipURI)
    return uri


# ---------------------------------------------------------------------------
# Valid but odd: escapes and unusual characters (RFC 4475 3.1.1.2 - 3.1.1.5)
# ---------------------------------------------------------------------------


def test_escaped_octets_in_request_uri_user_are_kept_as_written_and_decodable() -> None:
    data = build(b"OPTIONS sip:%6Bim%2Ethe%20gr%65at@lemuria.example SIP/2.0")
    message = request(data)
    uri = sip_uri(message)
    assert uri.user == "%6Bim%2Ethe%20gr%65at"
    assert uri.unescaped_user == "kim.the great"
    assert uri.host == "lemuria.example"
    assert message.uri == "sip:%6Bim%2Ethe%20gr%65at@lemuria.example"
    assert message.to_bytes() == data


def test_escaped_nul_octets_in_the_user_part_are_legal() -> None:
    message = request(build(b"OPTIONS sip:zero%00zero%00@lemuria.example SIP/2.0"))
    uri = sip_uri(message)
    assert uri.user == "zero%00zero%00"
    assert uri.unescaped_user == "zero\x00zero\x00"


def test_percent_in_a_method_token_is_not_an_escape() -> None:
    data = build(
        b"PR%4FBE sip:lee@lemuria.example SIP/2.0",
        replace={"cseq": b"CSeq: 3 PR%4FBE", "to": b'To: "100% Lee" <sip:lee@lemuria.example>'},
    )
    message = request(data)
    assert message.method == "PR%4FBE"
    assert message.cseq.method == "PR%4FBE"
    assert message.cseq.number == 3
    assert message.to_addr.display_name == "100% Lee"


def test_request_uri_user_and_password_with_every_legal_mark() -> None:
    uri_text = b"sip:1_odd.user~(x)!*'&=+$,;?/:p&=+$,w~0@lemuria.example;x-mark=-_.!~*'()"
    message = request(build(b"OPTIONS " + uri_text + b" SIP/2.0"))
    uri = sip_uri(message)
    assert uri.user == "1_odd.user~(x)!*'&=+$,;?/"
    assert uri.password == "p&=+$,w~0"
    assert uri.host == "lemuria.example"
    assert uri.params == {"x-mark": "-_.!~*'()"}


def test_extension_method_made_of_every_token_character() -> None:
    method = b"!x-Meth.od_09*+`'~%"
    data = build(
        method + b" sip:lee@lemuria.example SIP/2.0", replace={"cseq": b"CSeq: 4 " + method}
    )
    message = request(data)
    assert message.method == method.decode()
    assert message.cseq.method == method.decode()


def test_quoted_display_name_with_escaped_quote_and_backslash() -> None:
    data = build(
        replace={"from": rb'From: "Kim \"the\" K\\im" <sip:kim@atlantis.example>;tag=77ab'}
    )
    message = request(data)
    assert message.from_addr.display_name == 'Kim "the" K\\im'
    assert message.from_addr.tag == "77ab"
    assert message.from_tag == "77ab"


def test_quoted_display_name_with_quoted_pairs_of_control_characters() -> None:
    data = build(replace={"to": b'To: "bell:\\\x07 tab:\\\t end" <sip:lee@lemuria.example>'})
    message = request(data)
    assert message.to_addr.display_name == "bell:\x07 tab:\t end"


def test_utf8_display_name_and_header_value() -> None:
    data = build(
        replace={"from": 'From: "Zoë 李" <sip:kim@atlantis.example>;tag=77ab'.encode()},
        extra=["Subject: café ☕ über".encode()],
    )
    message = request(data)
    assert message.from_addr.display_name == "Zoë 李"
    assert message.get("Subject") == "café ☕ über"
    assert message.to_bytes() == data


def test_token_display_names_without_space_before_the_angle_bracket() -> None:
    data = build(
        replace={
            "from": b"From: Dr.  Kim\tPark<sip:kim@atlantis.example>;tag=77ab",
            "to": b'To: "Lee"<sip:lee@lemuria.example>',
        }
    )
    message = request(data)
    assert message.from_addr.display_name == "Dr. Kim Park"
    assert message.to_addr.display_name == "Lee"
    assert message.from_tag == "77ab"


def test_to_tag_made_of_odd_token_characters() -> None:
    data = build(replace={"to": b"To: <sip:lee@lemuria.example>;tag=!%*_+`~'.-z9"})
    message = request(data)
    assert message.to_tag == "!%*_+`~'.-z9"
    assert message.to_addr.tag == "!%*_+`~'.-z9"


# ---------------------------------------------------------------------------
# Valid but odd: whitespace (RFC 4475 3.1.1.1)
# ---------------------------------------------------------------------------


def test_extra_whitespace_around_header_colons() -> None:
    data = build(
        replace={
            "call-id": b"Call-ID   :   5f2a91c0@pc7.atlantis.example   ",
            "to": b"To\t:\t<sip:lee@lemuria.example>",
            "max-forwards": b"Max-Forwards:69",
        }
    )
    message = request(data)
    assert message.call_id == "5f2a91c0@pc7.atlantis.example"
    assert str(message.to_addr.uri) == "sip:lee@lemuria.example"
    assert message.max_forwards == 69
    assert message.to_bytes() == data


def test_folded_lines_in_the_middle_of_values() -> None:
    data = build(
        replace={
            "from": b'From: "Kim"\r\n <sip:kim@atlantis.example>\r\n\t;tag=77ab',
            "cseq": b"CSeq: 12\r\n    OPTIONS",
        },
        extra=[b"Subject: a subject\r\n  that goes on\r\n\tand on"],
    )
    message = request(data)
    assert message.from_addr.display_name == "Kim"
    assert message.from_tag == "77ab"
    assert message.cseq.number == 12
    assert message.cseq.method == "OPTIONS"
    assert message.get("Subject") == "a subject that goes on and on"
    # Folding is kept on the wire when the message is forwarded unedited.
    assert message.to_bytes() == data


def test_spaces_and_tabs_inside_via() -> None:
    data = build(
        replace={
            "via": b"Via: SIP / 2.0 / UDP \t pc7.atlantis.example : 5062 ;branch = z9hG4bK.w1"
            b" ;\trport ; received=192.0.2.7",
        }
    )
    message = request(data)
    via = message.top_via
    assert (via.protocol_name, via.version, via.transport) == ("SIP", "2.0", "UDP")
    assert via.sent_by == ("pc7.atlantis.example", 5062)
    assert via.branch == "z9hG4bK.w1"
    assert via.has_rport and via.rport is None
    assert via.received == "192.0.2.7"
    assert message.branch == "z9hG4bK.w1"


def test_tab_between_cseq_number_and_method() -> None:
    message = request(build(replace={"cseq": b"CSeq:\t12\t\tOPTIONS\t"}))
    assert (message.cseq.number, message.cseq.method) == (12, "OPTIONS")


def test_crlfs_before_the_request_line_are_skipped() -> None:
    data = build()
    message = request(CRLF * 3 + data)
    assert message.method == "OPTIONS"
    assert message.call_id == "5f2a91c0@pc7.atlantis.example"


def test_header_values_that_hold_colons_and_an_empty_value() -> None:
    message = request(build(extra=[b"Subject: re: re: fwd: lunch?", b"Organization:"]))
    assert message.get("Subject") == "re: re: fwd: lunch?"
    assert message.get("Organization") == ""


# ---------------------------------------------------------------------------
# Valid but odd: header names, compact forms, multiple values
# ---------------------------------------------------------------------------


def test_header_names_in_mixed_case() -> None:
    data = (
        OPTIONS_LINE + CRLF + b"vIA: SIP/2.0/UDP pc7.atlantis.example;branch=z9hG4bK.mc\r\n"
        b"fROM: <sip:kim@atlantis.example>;tag=1\r\nTO: <sip:lee@lemuria.example>\r\n"
        b"cALL-iD: mixed@case\r\ncseq: 1 OPTIONS\r\nMAX-forwards: 7\r\nx-CUSTOM: yes\r\n\r\n"
    )
    message = request(data)
    assert message.branch == "z9hG4bK.mc"
    assert message.call_id == "mixed@case"
    assert message.max_forwards == 7
    assert message.get("X-Custom") == "yes"
    assert message.header_items()[0] == (
        "vIA",
        "SIP/2.0/UDP pc7.atlantis.example;branch=z9hG4bK.mc",
    )


def test_mixed_case_extension_method_matches_its_cseq_exactly() -> None:
    data = build(
        b"NewMethod sip:lee@lemuria.example SIP/2.0", replace={"cseq": b"CSeq: 5 NewMethod"}
    )
    message = request(data)
    assert message.method == "NewMethod"
    assert message.cseq.method == "NewMethod"


def test_unknown_method_token_parses() -> None:
    data = build(
        b"NEWMETHOD sip:lee@lemuria.example SIP/2.0", replace={"cseq": b"CSeq: 8 NEWMETHOD"}
    )
    message = request(data)
    assert message.method == "NEWMETHOD"
    assert message.cseq.number == 8


def test_compact_forms_of_every_core_header() -> None:
    body = b"hello"
    data = (
        b"MESSAGE sip:lee@lemuria.example SIP/2.0\r\n"
        b"v: SIP/2.0/TCP pc7.atlantis.example;branch=z9hG4bK.cf\r\n"
        b"f: <sip:kim@atlantis.example>;tag=cf1\r\nt: <sip:lee@lemuria.example>\r\n"
        b"i: compact@forms\r\nCSeq: 2 MESSAGE\r\nm: <sip:kim@192.0.2.7;transport=tcp>\r\n"
        b"c: text/plain\r\ne: identity\r\ns: short\r\nk: path, gruu\r\n"
        b"l: 5\r\n\r\n" + body
    )
    message = request(data)
    assert message.top_via.transport == "TCP"
    assert message.from_tag == "cf1"
    assert message.call_id == "compact@forms"
    assert [str(c.uri) for c in message.contacts] == ["sip:kim@192.0.2.7;transport=tcp"]
    assert message.get("Content-Type") == "text/plain"
    assert message.get("Content-Encoding") == "identity"
    assert message.get("Subject") == "short"
    assert message.get_all("Supported") == ["path", "gruu"]
    assert message.content_length == 5
    assert message.body == body


def test_several_vias_routes_and_contacts_on_one_line_each() -> None:
    data = build(
        replace={
            "via": b"Via: SIP/2.0/UDP p1.lemuria.example;branch=z9hG4bK.p1 ,SIP/2.0/TCP"
            b" p2.lemuria.example:5080;branch=z9hG4bK.p2,SIP/2.0/UDP pc7.atlantis.example"
            b";branch=z9hG4bK.q8r2Tw",
        },
        extra=[
            b"Route: <sip:r1.lemuria.example;lr>,<sip:r2.lemuria.example;lr>"
            b" ,  <sip:r3.example;lr>",
            b'Contact: <sip:kim@192.0.2.7>;q=0.7;expires=60, "Kim, desk" <sip:kim@192.0.2.8>'
            b";q=1.0, sip:kim@192.0.2.9;expires=0",
        ],
    )
    message = request(data)
    assert [(v.host, v.port, v.branch) for v in message.vias] == [
        ("p1.lemuria.example", None, "z9hG4bK.p1"),
        ("p2.lemuria.example", 5080, "z9hG4bK.p2"),
        ("pc7.atlantis.example", None, "z9hG4bK.q8r2Tw"),
    ]
    assert message.branch == "z9hG4bK.p1"
    assert message.get_all("Route") == [
        "<sip:r1.lemuria.example;lr>",
        "<sip:r2.lemuria.example;lr>",
        "<sip:r3.example;lr>",
    ]
    routes = message.addresses("Route")
    assert [str(r.uri) for r in routes] == [
        "sip:r1.lemuria.example;lr",
        "sip:r2.lemuria.example;lr",
        "sip:r3.example;lr",
    ]
    contacts = message.contacts
    assert [str(c.uri) for c in contacts] == [
        "sip:kim@192.0.2.7",
        "sip:kim@192.0.2.8",
        "sip:kim@192.0.2.9",
    ]
    assert [c.q for c in contacts] == [0.7, 1.0, None]
    assert [c.expires for c in contacts] == [60, None, 0]
    assert contacts[1].display_name == "Kim, desk"


def test_many_via_values_keep_their_order() -> None:
    hops = [
        b"Via: SIP/2.0/UDP hop%d.lemuria.example;branch=z9hG4bK.h%d" % (i, i) for i in range(40)
    ]
    packed = b"Via: " + b", ".join(
        b"SIP/2.0/TCP [2001:db8::%x]:5%03d;branch=z9hG4bK.v6%d" % (i + 1, i, i) for i in range(12)
    )
    data = build(replace={"via": None}, extra=[*hops, packed])
    message = request(data)
    vias = message.vias
    assert len(vias) == 52
    assert vias[0].host == "hop0.lemuria.example"
    assert vias[39].branch == "z9hG4bK.h39"
    assert vias[40].host == "[2001:db8::1]"
    assert vias[40].port == 5000
    assert vias[51].branch == "z9hG4bK.v611"
    assert message.branch == "z9hG4bK.h0"
    assert len(message.get_all("Via")) == 52


def test_a_2000_character_header_value_is_kept_whole() -> None:
    value = ("0123456789abcdefghij" * 100).encode()
    assert len(value) == 2000
    data = build(extra=[b"X-Padding: " + value, b"Subject: after the long one"])
    message = request(data)
    assert message.get("X-Padding") == value.decode()
    assert message.get("Subject") == "after the long one"
    assert message.to_bytes() == data


def test_long_call_id_tag_and_display_name() -> None:
    call_id = "c" * 700 + "@" + "h" * 300
    tag = "t" * 500
    name = "n" * 600
    data = build(
        replace={
            "call-id": b"Call-ID: " + call_id.encode(),
            "from": f'From: "{name}" <sip:kim@atlantis.example>;tag={tag}'.encode(),
        }
    )
    message = request(data)
    assert message.call_id == call_id
    assert message.from_tag == tag
    assert message.from_addr.display_name == name


def test_unknown_header_with_odd_content_is_kept_byte_for_byte() -> None:
    odd = b"X-Strange   :   <<\"'>>,,;; =\\ %% \t \xc2\xbf? \xff\xfe\x01 "
    data = build(extra=[odd, b"X-!%*_+`'~.Name: token-chars"])
    message = request(data)
    assert message.raw_lines("x-strange") == [odd]
    assert message.get("X-Strange") == "<<\"'>>,,;; =\\ %% \t ¿? \udcff\udcfe\x01"
    assert message.get("x-!%*_+`'~.name") == "token-chars"
    assert message.to_bytes() == data
    # An edit elsewhere re-renders the message but leaves the odd line as it came.
    message.push_via("SIP/2.0/UDP proxy.lemuria.example;branch=z9hG4bK.px")
    rendered = message.to_bytes()
    assert odd + CRLF in rendered
    assert request(rendered).get("X-Strange") == message.get("X-Strange")


def test_a_value_of_bytes_that_are_not_utf8_is_written_back_as_those_bytes() -> None:
    message = request(build(extra=[b"X-Strange: caf\xe9 \xff ok"]))
    value = message.get("X-Strange")
    assert value == "caf\udce9 \udcff ok"
    message.set("X-Copy", value)
    assert b"\r\nX-Copy: caf\xe9 \xff ok\r\n" in message.to_bytes()


def test_date_and_authorization_headers_of_unknown_forms_are_opaque() -> None:
    data = build(
        extra=[
            b"Date: Sun, 31 Feb 2027 25:61:00 MARS",
            b"Authorization: TotallyNewScheme blob=+/x==, other",
            b"Content-Type: application/x-never-heard-of",
        ],
        body=b"\x00\x01binary",
    )
    message = request(data)
    assert message.get_all("Date") == ["Sun, 31 Feb 2027 25:61:00 MARS"]
    assert message.get("Authorization") == "TotallyNewScheme blob=+/x==, other"
    assert message.body == b"\x00\x01binary"


# ---------------------------------------------------------------------------
# Valid but odd: URIs (RFC 4475 3.1.1.9, 3.3.2 - 3.3.4, 3.3.14)
# ---------------------------------------------------------------------------


def test_unknown_scheme_in_the_request_uri_reads_as_an_absolute_uri() -> None:
    message = request(build(b"OPTIONS name:Kim_Lee SIP/2.0"))
    assert message.request_uri == AbsoluteURI("name", "Kim_Lee")
    assert str(message.request_uri) == "name:Kim_Lee"


def test_unknown_schemes_in_to_and_contact() -> None:
    data = build(
        replace={"to": b"To: <urn:service:sos.fire>"},
        extra=[b"Contact: <im:kim@atlantis.example>, <mailto:kim@atlantis.example>"],
    )
    message = request(data)
    assert message.to_addr.uri == AbsoluteURI("urn", "service:sos.fire")
    assert [c.uri for c in message.contacts] == [
        AbsoluteURI("im", "kim@atlantis.example"),
        AbsoluteURI("mailto", "kim@atlantis.example"),
    ]


def test_upper_case_scheme_in_the_request_uri() -> None:
    message = request(build(b"OPTIONS SIP:lee@Lemuria.EXAMPLE SIP/2.0"))
    uri = sip_uri(message)
    assert uri.scheme == "sip"
    assert uri.host == "Lemuria.EXAMPLE"
    assert uri == SipURI("lemuria.example", "sip", "lee")


def test_ipv6_reference_with_port_in_the_request_uri() -> None:
    message = request(build(b"OPTIONS sip:lee@[2001:db8::7]:5070;transport=tcp SIP/2.0"))
    uri = sip_uri(message)
    assert uri.user == "lee"
    assert uri.host == "[2001:db8::7]"
    assert uri.port == 5070
    assert uri.transport == "tcp"


def test_ipv6_reference_with_embedded_ipv4_and_no_port() -> None:
    uri = sip_uri(request(build(b"OPTIONS sip:[::ffff:192.0.2.33] SIP/2.0")))
    assert uri.host == "[::ffff:192.0.2.33]"
    assert uri.port is None
    assert uri.user is None


def test_semicolons_in_the_user_part_belong_to_the_user() -> None:
    message = request(build(b"OPTIONS sip:lee;ext=42@lemuria.example;user=phone SIP/2.0"))
    uri = sip_uri(message)
    assert uri.user == "lee;ext=42"
    assert uri.host == "lemuria.example"
    assert uri.params == {"user": "phone"}
    assert uri.user_param == "phone"


def test_escaped_semicolons_in_user_and_parameter_value() -> None:
    message = request(build(b"OPTIONS sip:lee%3Bext=5@lemuria.example;x-loc=a%3Bb SIP/2.0"))
    uri = sip_uri(message)
    assert uri.user == "lee%3Bext=5"
    assert uri.unescaped_user == "lee;ext=5"
    assert uri.params == {"x-loc": "a%3Bb"}
    assert uri.param("x-loc") == "a;b"


def test_tel_request_uri() -> None:
    data = build(b"INVITE tel:+44-20-7946-0018;ext=22 SIP/2.0", replace={"cseq": b"CSeq: 1 INVITE"})
    uri = request(data).request_uri
    assert isinstance(uri, TelURI)
    assert uri.number == "+44-20-7946-0018"
    assert uri.digits == "+442079460018"
    assert uri.is_global
    assert uri.params == {"ext": "22"}


def test_local_tel_uri_with_phone_context() -> None:
    data = build(b"OPTIONS tel:7946*0018#;phone-context=lemuria.example SIP/2.0")
    uri = request(data).request_uri
    assert isinstance(uri, TelURI)
    assert not uri.is_global
    assert uri.number == "7946*0018#"
    assert uri.params == {"phone-context": "lemuria.example"}


def test_sips_request_uri() -> None:
    data = build(
        b"INVITE sips:lee@vault.lemuria.example SIP/2.0",
        replace={
            "cseq": b"CSeq: 1 INVITE",
            "via": b"Via: SIP/2.0/TLS pc7.atlantis.example;branch=z9hG4bK.s",
        },
    )
    uri = sip_uri(request(data))
    assert uri.scheme == "sips"
    assert uri.secure
    assert uri.default_port == 5061
    assert uri.host == "vault.lemuria.example"


def test_contact_with_uri_parameters_header_parameters_and_escaped_uri_headers() -> None:
    data = build(
        b"REGISTER sip:lemuria.example SIP/2.0",
        replace={"cseq": b"CSeq: 12 REGISTER"},
        extra=[
            b'Contact: "Desk" <sip:kim@192.0.2.4:5062;transport=tcp;ob'
            b"?Route=%3Csip:edge.lemuria.example%3E>;expires=120;q=0.25"
            b';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"',
        ],
    )
    (contact,) = request(data).contacts
    uri = contact.uri
    assert isinstance(uri, SipURI)
    assert uri.port == 5062
    assert uri.transport == "tcp"
    assert "ob" in uri.params
    assert uri.unescaped_headers() == {"Route": "<sip:edge.lemuria.example>"}
    assert contact.display_name == "Desk"
    assert contact.expires == 120
    assert contact.q == 0.25
    assert contact.param("+sip.instance") == "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"


def test_via_with_received_rport_maddr_and_ttl() -> None:
    data = build(
        replace={
            "via": b"Via: SIP/2.0/UDP pc7.atlantis.example;received=192.0.2.200;rport=40312"
            b";maddr=239.255.255.253;ttl=16;branch=z9hG4bK.m",
        }
    )
    via = request(data).top_via
    assert via.received == "192.0.2.200"
    assert via.rport == 40312
    assert via.maddr == "239.255.255.253"
    assert via.ttl == 16
    assert via.branch == "z9hG4bK.m"
    assert via.is_rfc3261_branch


def test_via_with_ipv6_sent_by_and_received() -> None:
    data = build(
        replace={
            "via": b"Via: SIP/2.0/TCP [2001:db8::9]:5070;received=[2001:db8::1];branch=z9hG4bK.6",
        }
    )
    via = request(data).top_via
    assert via.sent_by == ("[2001:db8::9]", 5070)
    assert via.received == "[2001:db8::1]"
    assert via.reliable


def test_varied_and_unknown_via_transports() -> None:
    data = build(
        replace={
            "via": b"Via: SIP/2.0/SCTP a.lemuria.example;branch=z9hG4bK.1,"
            b" SIP/2.0/TLS-SCTP b.lemuria.example;branch=z9hG4bK.2,"
            b" SIP/2.0/ws c.lemuria.example;branch=z9hG4bK.3,"
            b" SIP/2.0/CARRIER-PIGEON d.lemuria.example;branch=z9hG4bK.4",
        }
    )
    vias = request(data).vias
    assert [(v.transport, v.reliable) for v in vias] == [
        ("SCTP", True),
        ("TLS-SCTP", True),
        ("WS", True),
        ("CARRIER-PIGEON", False),
    ]


# ---------------------------------------------------------------------------
# Valid but odd: bodies and lengths (RFC 4475 3.1.1.8, 3.1.1.11)
# ---------------------------------------------------------------------------


def test_zero_content_length_with_no_body() -> None:
    message = request(build(extra=[b"Content-Length: 0"]))
    assert message.content_length == 0
    assert message.body == b""


def test_body_without_content_length_on_udp_is_the_rest_of_the_datagram() -> None:
    body = b"no length given\r\n"
    message = request(build(extra=[b"Content-Type: text/plain"], body=body))
    assert message.content_length is None
    assert message.body == body


def test_octets_after_the_content_length_are_ignored_in_a_datagram() -> None:
    second = build(replace={"call-id": b"Call-ID: the-second-one"})
    data = build(extra=[b"Content-Length: 4"], body=b"ping" + second)
    message = request(data)
    assert message.body == b"ping"
    assert message.call_id == "5f2a91c0@pc7.atlantis.example"


def test_body_holding_blank_lines_is_kept_whole() -> None:
    body = (
        b"--b1\r\nContent-Type: text/plain\r\n\r\npart one\r\n"
        b"--b1\r\nContent-Type: text/plain\r\n\r\n\r\n\r\npart two\r\n--b1--\r\n"
    )
    data = build(
        extra=[
            b'Content-Type: multipart/mixed;boundary="b1"',
            b"Content-Length: %d" % len(body),
        ],
        body=body,
    )
    message = request(data)
    assert message.body == body
    assert message.get("Content-Type") == 'multipart/mixed;boundary="b1"'


def test_compact_content_length_with_leading_zeros() -> None:
    message = request(build(extra=[b"l: 0003"], body=b"abc"))
    assert message.content_length == 3
    assert message.body == b"abc"


# ---------------------------------------------------------------------------
# Valid but odd: registrations, numbers, old syntax (RFC 4475 3.3, 3.4)
# ---------------------------------------------------------------------------


def test_expires_zero() -> None:
    data = build(
        b"REGISTER sip:lemuria.example SIP/2.0",
        replace={"cseq": b"CSeq: 13 REGISTER"},
        extra=[b"Contact: <sip:kim@192.0.2.7>", b"Expires: 0"],
    )
    message = request(data)
    assert message.expires == 0
    assert message.contacts[0].expires is None


def test_wildcard_contact_with_expires_zero() -> None:
    data = build(
        b"REGISTER sip:lemuria.example SIP/2.0",
        replace={"cseq": b"CSeq: 14 REGISTER"},
        extra=[b"Contact:   *  ", b"Expires: 0"],
    )
    message = request(data)
    (contact,) = message.contacts
    assert contact.wildcard
    assert str(contact) == "*"
    assert message.expires == 0


def test_max_forwards_zero_parses() -> None:
    message = request(build(replace={"max-forwards": b"Max-Forwards: 0"}))
    assert message.max_forwards == 0


def test_largest_values_of_cseq_and_expires() -> None:
    data = build(replace={"cseq": b"CSeq: 2147483647 OPTIONS"}, extra=[b"Expires: 4294967295"])
    message = request(data)
    assert message.cseq.number == 2**31 - 1
    assert message.expires == 2**32 - 1


def test_rfc2543_style_request_without_branch_tag_or_max_forwards() -> None:
    data = (
        b"INVITE sip:lee@lemuria.example SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP oldphone.atlantis.example\r\n"
        b"From: sip:kim@atlantis.example\r\nTo: sip:lee@lemuria.example\r\n"
        b"Call-ID: 1999@oldphone\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    message = request(data)
    assert message.branch is None
    assert message.top_via.branch is None
    assert not message.top_via.is_rfc3261_branch
    assert message.from_tag is None
    assert message.max_forwards is None
    assert str(message.from_addr.uri) == "sip:kim@atlantis.example"


def test_response_with_unusual_reason_phrase() -> None:
    reason = "Très bien = 2**3 * 5**2; «ok» ,;:\t!"
    data = b"SIP/2.0 200 " + reason.encode() + CRLF + build()[len(OPTIONS_LINE) + 2 :]
    message = response(data)
    assert message.status == 200
    assert message.reason == reason


def test_response_with_empty_reason_phrase() -> None:
    data = b"SIP/2.0 183 " + CRLF + build()[len(OPTIONS_LINE) + 2 :]
    message = response(data)
    assert message.status == 183
    assert message.reason == ""


def test_response_with_broadcast_via_sent_by() -> None:
    data = (
        b"SIP/2.0 200 OK"
        + CRLF
        + build(replace={"via": b"Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK.bc"})[
            len(OPTIONS_LINE) + 2 :
        ]
    )
    message = response(data)
    assert message.top_via.host == "255.255.255.255"
    assert message.branch == "z9hG4bK.bc"


# ---------------------------------------------------------------------------
# Invalid requests: answered with a status naming the culprit (RFC 4475 3.1.2, 3.3)
# ---------------------------------------------------------------------------

_INVALID_REQUESTS: list[tuple[str, bytes, int, str]] = [
    ("missing-call-id", build(replace={"call-id": None}), 400, "Call-ID"),
    ("missing-cseq", build(replace={"cseq": None}), 400, "CSeq"),
    ("missing-from", build(replace={"from": None}), 400, "From"),
    ("missing-to", build(replace={"to": None}), 400, "To"),
    ("empty-call-id", build(replace={"call-id": b"Call-ID:   "}), 400, "Call-ID"),
    ("content-length-word", build(extra=[b"Content-Length: ten"]), 400, "Content-Length"),
    (
        "content-length-negative",
        build(extra=[b"Content-Length: -4"], body=b"abcd"),
        400,
        "Content-Length",
    ),
    (
        "content-length-beyond-datagram",
        build(extra=[b"Content-Length: 9000"], body=b"short body"),
        400,
        "Content-Length",
    ),
    (
        "two-content-lengths",
        build(extra=[b"Content-Length: 3", b"l: 5"], body=b"hello"),
        400,
        "Content-Length",
    ),
    (
        "unterminated-display-name-from",
        build(replace={"from": b'From: "Kim <sip:kim@atlantis.example>;tag=77ab'}),
        400,
        "From",
    ),
    (
        "unterminated-display-name-to",
        build(replace={"to": b'To: "Lee <sip:lee@lemuria.example>'}),
        400,
        "To",
    ),
    (
        "unquoted-display-name-with-comma",
        build(replace={"from": b"From: Park, Kim <sip:kim@atlantis.example>;tag=1"}),
        400,
        "From",
    ),
    (
        "spaces-inside-angle-brackets",
        build(replace={"to": b"To: < sip:lee@lemuria.example >"}),
        400,
        "To",
    ),
    ("request-uri-empty-host", build(b"OPTIONS sip: SIP/2.0"), 400, "Request-URI"),
    ("request-uri-empty-host-after-user", build(b"OPTIONS sip:lee@ SIP/2.0"), 400, "Request-URI"),
    (
        "request-uri-in-angle-brackets",
        build(b"OPTIONS <sip:lee@lemuria.example> SIP/2.0"),
        400,
        "Request-URI",
    ),
    (
        "request-uri-port-too-large",
        build(b"OPTIONS sip:lee@lemuria.example:65536 SIP/2.0"),
        400,
        "Request-URI",
    ),
    ("request-uri-bad-ipv6", build(b"OPTIONS sip:[2001:db8:::1] SIP/2.0"), 400, "Request-URI"),
    (
        "request-uri-with-space",
        build(b"OPTIONS sip:lee@lemu ria.example SIP/2.0"),
        400,
        "Request-Line",
    ),
    (
        "two-spaces-in-request-line",
        build(b"OPTIONS  sip:lee@lemuria.example SIP/2.0"),
        400,
        "Request-Line",
    ),
    ("cseq-method-mismatch", build(replace={"cseq": b"CSeq: 12 INVITE"}), 400, "CSeq"),
    ("cseq-method-case-mismatch", build(replace={"cseq": b"CSeq: 12 options"}), 400, "CSeq"),
    (
        "unknown-method-cseq-mismatch",
        build(b"NEWMETHOD sip:lee@lemuria.example SIP/2.0", replace={"cseq": b"CSeq: 1 INVITE"}),
        400,
        "CSeq",
    ),
    ("cseq-non-numeric", build(replace={"cseq": b"CSeq: twelve OPTIONS"}), 400, "CSeq"),
    ("cseq-over-2-31", build(replace={"cseq": b"CSeq: 2147483648 OPTIONS"}), 400, "CSeq"),
    ("cseq-huge", build(replace={"cseq": b"CSeq: 36893488147419103232 OPTIONS"}), 400, "CSeq"),
    ("cseq-without-method", build(replace={"cseq": b"CSeq: 12"}), 400, "CSeq"),
    ("two-call-ids", build(extra=[b"i: another@call"]), 400, "Call-ID"),
    ("two-froms", build(extra=[b"From: <sip:eve@atlantis.example>;tag=2"]), 400, "From"),
    ("two-tos", build(extra=[b"t: <sip:eve@lemuria.example>"]), 400, "To"),
    (
        "max-forwards-word",
        build(replace={"max-forwards": b"Max-Forwards: seventy"}),
        400,
        "Max-Forwards",
    ),
    (
        "max-forwards-negative",
        build(replace={"max-forwards": b"Max-Forwards: -1"}),
        400,
        "Max-Forwards",
    ),
    ("expires-word", build(extra=[b"Expires: tomorrow"]), 400, "Expires"),
    ("header-line-without-colon", build(extra=[b"This line has no colon"]), 400, "colon"),
    ("header-name-with-space", build(extra=[b"X Spaced: 1"]), 400, "X Spaced"),
    ("header-name-with-bracket", build(extra=[b"X<Bad>: 1"]), 400, "X<Bad>"),
    (
        "via-extraneous-separators",
        build(replace={"via": b"Via: SIP/2.0/UDP 192.0.2.15;;,;,,"}),
        400,
        "Via",
    ),
    (
        "via-without-transport",
        build(replace={"via": b"Via: SIP/2.0 pc7.atlantis.example"}),
        400,
        "Via",
    ),
    (
        "via-port-too-large",
        build(replace={"via": b"Via: SIP/2.0/UDP pc7.atlantis.example:70000"}),
        400,
        "Via",
    ),
    (
        "contact-extraneous-semicolons",
        build(extra=[b'Contact: "Kim" <sip:kim@192.0.2.7>;;;;']),
        400,
        "Contact",
    ),
    ("contact-wildcard-mixed", build(extra=[b"Contact: *, <sip:kim@192.0.2.7>"]), 400, "Contact"),
    (
        "contact-uri-with-headers-outside-angle-brackets",
        build(extra=[b"Contact: sip:kim@192.0.2.7?Route=%3Csip:edge.lemuria.example%3E"]),
        400,
        "Contact",
    ),
    (
        "contact-expires-without-value",
        build(extra=[b"Contact: <sip:kim@192.0.2.7>;expires="]),
        400,
        "Contact",
    ),
    ("cseq-trailing-junk", build(replace={"cseq": b"CSeq: 12 OPTIONS again"}), 400, "CSeq"),
    (
        "request-uri-bad-escape",
        build(b"OPTIONS sip:l%zze@lemuria.example SIP/2.0"),
        400,
        "Request-URI",
    ),
    (
        "request-uri-ipv4-octet-too-large",
        build(b"OPTIONS sip:lee@192.0.2.256 SIP/2.0"),
        400,
        "Request-URI",
    ),
    (
        "request-uri-ipv6-without-brackets",
        build(b"OPTIONS sip:2001:db8::7 SIP/2.0"),
        400,
        "Request-URI",
    ),
    (
        "via-ipv6-without-brackets",
        build(replace={"via": b"Via: SIP/2.0/UDP 2001:db8::9;branch=z9hG4bK.6"}),
        400,
        "Via",
    ),
]


@pytest.mark.parametrize(
    ("data", "status", "culprit"),
    [pytest.param(d, s, c, id=i) for i, d, s, c in _INVALID_REQUESTS],
)
def test_invalid_request_is_answered_with_a_status_naming_the_culprit(
    data: bytes, status: int, culprit: str
) -> None:
    error = error_of(data)
    assert error.status == status
    assert culprit in error.reason
    assert not error.drop
    assert isinstance(error.request, Request)


def test_unsupported_sip_version_is_505_with_the_request_attached() -> None:
    error = error_of(build(b"OPTIONS sip:lee@lemuria.example SIP/7.0"))
    assert error.status == 505
    assert error.request is not None
    assert error.request.version == "SIP/7.0"
    assert error.request.call_id == "5f2a91c0@pc7.atlantis.example"
    assert error.request.from_tag == "77ab"


def test_trailing_space_after_the_sip_version_is_answered_400() -> None:
    # RFC 4475 3.1.2.10: not accepted; a 400 stops the sender's retransmissions.
    error = error_of(build(OPTIONS_LINE + b" "))
    assert error.status == 400
    assert error.request is not None


def test_body_without_content_length_on_a_stream_is_400() -> None:
    error = error_of(build(body=b"unframed"), stream=True)
    assert error.status == 400
    assert "Content-Length" in error.reason
    assert error.request is not None


def test_missing_via_is_dropped() -> None:
    error = error_of(build(replace={"via": None}))
    assert error.drop
    assert error.status is None
    assert "Via" in error.reason


def test_oversized_header_block_is_513() -> None:
    error = error_of(build(extra=[b"X-Filler: " + b"f" * 17000]))
    assert error.status == 513


def test_too_many_header_lines_is_513() -> None:
    error = error_of(build(extra=[b"X-Line: %d" % i for i in range(300)]))
    assert error.status == 513


def test_oversized_body_is_413_with_the_request_attached() -> None:
    body = b"b" * 70000
    error = error_of(build(extra=[b"Content-Length: %d" % len(body)], body=body))
    assert error.status == 413
    assert error.request is not None
    assert error.request.call_id == "5f2a91c0@pc7.atlantis.example"


# ---------------------------------------------------------------------------
# Garbage and malformed responses: dropped without an answer
# ---------------------------------------------------------------------------

_RESPONSE_HEAD = b"SIP/2.0 200 OK" + CRLF


def _response_from(data: bytes) -> bytes:
    """The request ``data`` turned into a 200 response with the same header lines."""
    return _RESPONSE_HEAD + data[data.index(CRLF) + 2 :]


_DROPPED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("only-crlfs", CRLF * 4),
    ("http-request", b"GET /index.html HTTP/1.1\r\nHost: lemuria.example\r\n\r\n"),
    ("http-response", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("binary", bytes(range(256)) * 3),
    ("binary-with-blank-line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n\xde\xad"),
    ("words", b"hello there, this is not SIP\r\n\r\n"),
    ("request-line-without-version", b"OPTIONS sip:lee@lemuria.example\r\n\r\n"),
    ("no-end-of-header-block", build()[:-4]),
    ("response-missing-call-id", _response_from(build(replace={"call-id": None}))),
    ("response-missing-via", _response_from(build(replace={"via": None}))),
    ("response-bad-content-length", _response_from(build(extra=[b"Content-Length: x"]))),
    (
        "response-content-length-beyond-datagram",
        _response_from(build(extra=[b"Content-Length: 99"], body=b"short")),
    ),
    ("response-line-without-colon", _response_from(build(extra=[b"no colon at all"]))),
    ("response-header-name-with-space", _response_from(build(extra=[b"Bad Name: 1"]))),
    (
        "response-unterminated-display-name",
        _response_from(build(replace={"to": b'To: "Lee <sip:lee@lemuria.example>;tag=9'})),
    ),
    ("response-bad-cseq", _response_from(build(replace={"cseq": b"CSeq: 99999999999 OPTIONS"}))),
    ("response-two-call-ids", _response_from(build(extra=[b"Call-ID: other"]))),
    (
        "response-bad-max-forwards",
        _response_from(build(replace={"max-forwards": b"Max-Forwards: x"})),
    ),
    ("response-version-3", b"SIP/3.0 200 OK" + build()[len(OPTIONS_LINE) :]),
    ("response-status-too-large", b"SIP/2.0 4294967301 Big" + build()[len(OPTIONS_LINE) :]),
    ("response-status-two-digits", b"SIP/2.0 99 Small" + build()[len(OPTIONS_LINE) :]),
    ("response-status-700", b"SIP/2.0 700 Beyond" + build()[len(OPTIONS_LINE) :]),
    ("response-oversized-header", _response_from(build(extra=[b"X-Filler: " + b"f" * 17000]))),
    (
        "response-oversized-body",
        _response_from(build(extra=[b"Content-Length: 70000"], body=b"b" * 70000)),
    ),
]


@pytest.mark.parametrize("data", [pytest.param(d, id=i) for i, d in _DROPPED])
def test_garbage_and_malformed_responses_are_dropped(data: bytes) -> None:
    error = error_of(data)
    assert error.drop
    assert error.status is None
    assert error.request is None


# ---------------------------------------------------------------------------
# Regressions: library bugs these tests found (fixed in the parser since)
# ---------------------------------------------------------------------------


def test_to_tag_is_not_read_from_inside_a_quoted_parameter() -> None:
    # The fast ;tag= reader once matched inside the quoted value and gave 'forged"'.
    data = build(replace={"to": b'To: <sip:lee@lemuria.example>;note="x;tag=forged";tag=real'})
    message = request(data)
    assert message.to_addr.tag == "real"
    assert message.to_tag == "real"


def test_from_tag_survives_a_quoted_parameter_holding_a_greater_than_sign() -> None:
    # The fast tag reader once cut at the last '>' (the quoted one) and found no tag.
    data = build(replace={"from": b'From: <sip:kim@atlantis.example>;tag=77ab;note=">"'})
    message = request(data)
    assert message.from_addr.tag == "77ab"
    assert message.from_tag == "77ab"


def test_branch_is_not_read_from_inside_a_quoted_via_parameter() -> None:
    # The fast ;branch= reader once matched inside the quoted value: a wrong transaction key.
    data = build(
        replace={
            "via": b'Via: SIP/2.0/UDP pc7.atlantis.example;note="a;branch=forged"'
            b";branch=z9hG4bK.real",
        }
    )
    message = request(data)
    assert message.top_via.branch == "z9hG4bK.real"
    assert message.branch == "z9hG4bK.real"


def test_branch_of_a_via_line_of_only_commas_is_none_or_parse_error() -> None:
    # Once an IndexError from the fast branch reader.
    message = request(build(replace={"via": b"Via: , ,"}), validate=False)
    try:
        branch = message.branch
    except ParseError:
        return
    assert branch is None


def test_superscript_digit_in_content_length_is_a_400() -> None:
    # str.isdigit() is true for '²', which once reached int() and raised ValueError.
    error = error_of(build(extra=["Content-Length: ²".encode()], body=b"ab"))
    assert error.status == 400
    assert "Content-Length" in error.reason


def test_non_ascii_digits_in_max_forwards_are_a_400() -> None:
    # Arabic-Indic digits pass str.isdigit() and were once read as 70.
    error = error_of(build(replace={"max-forwards": "Max-Forwards: ٧٠".encode()}))
    assert error.status == 400
    assert "Max-Forwards" in error.reason


def test_bare_lf_inside_a_header_line_does_not_misalign_the_header_index() -> None:
    # The fast header index once counted the bare-LF 'Content-Length' as a line of its own,
    # shifting every later name by one line: a ValueError instead of a 400. The names
    # must be in the parser's name cache for the fast path to run.
    request(build(extra=[b"Subject: warm-up", b"Content-Length: 0"]))
    data = build(extra=[b"Subject: hi\nContent-Length: 0", b"this line has no colon"])
    error = error_of(data)
    assert error.status == 400


def test_bare_lf_message_whose_body_holds_a_crlf_blank_line() -> None:
    # The header block once ended at the first CRLFCRLF even in a bare-LF message, i.e.
    # inside this body, and the message was dropped as garbage.
    body = b"first\r\n\r\nthird"
    head = build(extra=[b"Content-Length: %d" % len(body)]).replace(CRLF, b"\n")
    message = request(head + body)
    assert message.body == body
    assert message.content_length == len(body)


def test_long_bad_tel_number_is_rejected_quickly_within_default_limits() -> None:
    # A "sep* digit sep*" tel pattern once took ~1 s of CPU on this one datagram.
    data = build(b"OPTIONS tel:+" + b"1" * 15000 + b"x SIP/2.0")
    started = time.process_time()
    error = error_of(data)
    elapsed = time.process_time() - started
    assert error.status == 400
    assert elapsed < 0.25, f"{elapsed:.2f} s for one {len(data)}-byte datagram"
