"""The request-only checks of RFC 3261 10.3 (steps 1, 2, 5, 6 and 7's intervals)."""

from __future__ import annotations

import pytest

from centrex.registrar.request import (
    RegisterRequest,
    Rejection,
    Target,
    read_register,
    read_target,
)

from .helpers import UDP, register, settings

DOMAINS = frozenset({"example.com"})


def target_of(**kwargs: object) -> Target:
    return read_target(register(**kwargs), DOMAINS, case_sensitive=False)  # type: ignore[arg-type]


def read(request_kwargs: dict[str, object], **setting_changes: object) -> RegisterRequest:
    request = register(**request_kwargs)  # type: ignore[arg-type]
    target = read_target(request, DOMAINS, case_sensitive=False)
    return read_register(request, target, UDP, settings(**setting_changes))


def rejection(request_kwargs: dict[str, object], **setting_changes: object) -> Rejection:
    with pytest.raises(Rejection) as caught:
        read(request_kwargs, **setting_changes)
    return caught.value


def test_request_uri_of_an_unserved_domain_gets_404() -> None:
    with pytest.raises(Rejection) as caught:
        target_of(ruri="sip:elsewhere.org")
    assert caught.value.status == 404


def test_request_uri_domain_is_matched_ignoring_case() -> None:
    assert target_of(ruri="sip:EXAMPLE.com").aor == "sip:alice@example.com"


def test_non_sip_request_uri_gets_416() -> None:
    with pytest.raises(Rejection) as caught:
        target_of(ruri="tel:+15551234")
    assert caught.value.status == 416


def test_unsupported_require_gets_420_listing_the_tags() -> None:
    with pytest.raises(Rejection) as caught:
        target_of(extra=["Require: path, foo"])
    assert caught.value.status == 420
    assert caught.value.headers == (("Unsupported", "foo"),)


def test_require_path_is_supported() -> None:
    assert target_of(extra=["Require: path"]).aor == "sip:alice@example.com"


def test_to_in_an_unserved_domain_gets_404() -> None:
    with pytest.raises(Rejection) as caught:
        target_of(to="sip:alice@elsewhere.org")
    assert caught.value.status == 404


def test_to_without_user_gets_404() -> None:
    with pytest.raises(Rejection) as caught:
        target_of(to="sip:example.com")
    assert caught.value.status == 404


def test_to_aor_is_canonicalised() -> None:
    target = target_of(to="sip:ALICE@Example.com;transport=udp")
    assert (target.aor, target.user) == ("sip:alice@example.com", "alice")


def test_wildcard_unregister_needs_expires_zero() -> None:
    assert rejection({"contacts": "*", "expires": 60}).status == 400
    assert rejection({"contacts": "*"}).status == 400
    assert read({"contacts": "*", "expires": 0}).wildcard


def test_wildcard_mixed_with_a_contact_is_400() -> None:
    assert rejection({"contacts": ["*", "<sip:a@192.0.2.1>"], "expires": 0}).status == 400


def test_expires_param_wins_over_expires_header() -> None:
    reg = read({"contacts": "<sip:a@192.0.2.1>;expires=120", "expires": 300})
    assert reg.contacts[0].expires == 120


def test_expires_header_wins_over_default() -> None:
    reg = read({"contacts": "<sip:a@192.0.2.1>", "expires": 300})
    assert reg.contacts[0].expires == 300


def test_default_expires_applies_without_param_or_header() -> None:
    reg = read({"contacts": "<sip:a@192.0.2.1>"}, default_expires=1800)
    assert reg.contacts[0].expires == 1800


def test_interval_below_min_expires_gets_423_with_min_expires() -> None:
    found = rejection({"contacts": "<sip:a@192.0.2.1>;expires=30"}, min_expires=60)
    assert (found.status, found.headers) == (423, (("Min-Expires", "60"),))


def test_expires_zero_is_allowed_below_min_expires() -> None:
    reg = read({"contacts": "<sip:a@192.0.2.1>;expires=0"}, min_expires=60)
    assert reg.contacts[0].expires == 0


def test_interval_above_max_expires_is_clamped() -> None:
    reg = read({"contacts": "<sip:a@192.0.2.1>;expires=999999"}, max_expires=7200)
    assert reg.contacts[0].expires == 7200


def test_q_instance_and_reg_id_are_read_from_the_contact() -> None:
    contact = '<sip:a@192.0.2.1>;q=0.5;+sip.instance="<urn:uuid:1234>";reg-id=2'
    found = read({"contacts": contact}).contacts[0]
    assert (found.q, found.instance, found.reg_id) == (0.5, "<urn:uuid:1234>", 2)


def test_reg_id_without_instance_is_ignored() -> None:
    assert read({"contacts": "<sip:a@192.0.2.1>;reg-id=1"}).contacts[0].reg_id is None


def test_bad_reg_id_is_400() -> None:
    contact = '<sip:a@192.0.2.1>;+sip.instance="<urn:uuid:1>";reg-id=0'
    assert rejection({"contacts": contact}).status == 400


def test_bad_q_is_400() -> None:
    assert rejection({"contacts": "<sip:a@192.0.2.1>;q=2"}).status == 400


def test_no_contact_is_a_query() -> None:
    assert read({"contacts": None}).is_query


def test_path_and_supported_path_are_kept() -> None:
    reg = read(
        {"extra": ["Path: <sip:edge1.example.net;lr>", "Path: <sip:edge2;lr>", "Supported: path"]}
    )
    assert reg.path == ("<sip:edge1.example.net;lr>", "<sip:edge2;lr>")
    assert reg.path_supported


def test_a_contact_listed_twice_gives_one_binding_request() -> None:
    from centrex.registrar.binding import Source
    from centrex.sip.parser import parse_message

    data = (
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKd\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n"
        b"Call-ID: dup\r\nCSeq: 1 REGISTER\r\n"
        b"Contact: <sip:alice@192.0.2.10:5060>;expires=60,"
        b" <sip:alice@192.0.2.10:5060>;expires=120\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    request = parse_message(data)
    target = read_target(request, DOMAINS, case_sensitive=False)  # type: ignore[arg-type]
    from centrex.config import RegistrarSettings

    reg = read_register(request, target, Source("udp", "192.0.2.10", 5060), RegistrarSettings())
    assert [c.expires for c in reg.contacts] == [120]
