"""AOR keys (RFC 3261 10.3 step 5, 19.1.4) and served-domain names."""

from __future__ import annotations

from centrex.registrar.aor import aor_host, aor_of, normalize_domain, uri_host
from centrex.sip.uri import SipURI, parse_uri


def test_aor_drops_scheme_port_params_and_password_and_folds_case() -> None:
    uri = "sips:Alice:secret@Example.COM.:5061;transport=tcp?subject=x"
    assert aor_of(uri) == "sip:alice@example.com"


def test_aor_keeps_user_case_when_case_sensitive() -> None:
    assert aor_of("sip:Alice@EXAMPLE.com", case_sensitive=True) == "sip:Alice@example.com"


def test_aor_decodes_needless_escapes_so_equal_users_share_a_key() -> None:
    assert aor_of("sip:%61lice@example.com") == aor_of("sip:alice@example.com")


def test_aor_accepts_a_parsed_uri() -> None:
    assert aor_of(parse_uri("sip:bob@example.com;user=phone")) == "sip:bob@example.com"


def test_aor_of_a_tel_uri_is_none() -> None:
    assert aor_of("tel:+15551234") is None


def test_domains_are_compared_lower_case_without_trailing_dot() -> None:
    assert normalize_domain("Example.COM.") == "example.com"


def test_ipv6_domain_is_bracketed_and_compressed() -> None:
    assert normalize_domain("2001:DB8:0:0::1") == "[2001:db8::1]"
    assert aor_of("sip:a@[2001:db8::0:1]") == "sip:a@[2001:db8::1]"


def test_the_host_of_a_uri_is_the_host_of_its_aor() -> None:
    # A served domain is matched by the host alone, written as in the AOR key.
    for text in (
        "sip:Alice@Example.COM.:5061",
        "sip:example.com",
        "sips:bob@[2001:DB8:0:0::1]:5061;transport=tls",
        "sip:%40odd@192.0.2.1",
        "sip:a@host-name.example.org.",
    ):
        uri = parse_uri(text)
        assert isinstance(uri, SipURI)
        assert uri_host(uri) == aor_host(uri.aor())
