"""P-Asserted-Identity handling (RFC 3325) and trusted peers."""

from __future__ import annotations

from centrex.auth.identity import (
    TrustedPeers,
    assert_identity,
    parse_source,
    strip_untrusted_identity,
)
from centrex.sip.parser import parse_message

from .helpers import request


def test_authenticated_caller_gets_a_p_asserted_identity() -> None:
    req = request("INVITE")
    value = assert_identity(req, "alice", "example.com")
    assert value == "<sip:alice@example.com>"
    assert req.get_all("P-Asserted-Identity") == ["<sip:alice@example.com>"]


def test_asserted_identity_replaces_a_forged_one_and_the_preferred_one() -> None:
    req = request(
        "INVITE",
        extra=[
            "P-Asserted-Identity: <sip:ceo@example.com>",
            "P-Asserted-Identity: <tel:+15551234>",
            "P-Preferred-Identity: <sip:boss@example.com>",
        ],
    )
    assert_identity(req, "alice", "example.com", display_name="Alice Liddell")
    reparsed = parse_message(req.to_bytes())
    assert reparsed.get_all("P-Asserted-Identity") == ["Alice Liddell <sip:alice@example.com>"]
    assert "P-Preferred-Identity" not in reparsed


def test_identity_from_an_untrusted_source_is_removed() -> None:
    req = request(
        "INVITE",
        extra=["P-Asserted-Identity: <sip:ceo@example.com>", "P-Asserted-Identity: <tel:+1555>"],
    )
    assert strip_untrusted_identity(req) == 2
    assert "P-Asserted-Identity" not in parse_message(req.to_bytes())
    assert strip_untrusted_identity(req) == 0


def test_trusted_peers_match_ipv4_and_ipv6_blocks_and_single_addresses() -> None:
    peers = TrustedPeers(["198.51.100.0/24", "203.0.113.9", "2001:db8::/32", "[2001:db9::1]"])
    assert "198.51.100.200" in peers
    assert "203.0.113.9" in peers
    assert "203.0.113.10" not in peers
    assert "2001:db8:ffff::1" in peers
    assert "[2001:db8::5]" in peers
    assert "2001:db9::1" in peers
    assert "2001:db9::2" not in peers
    assert "fe80::1%eth0" not in peers


def test_ipv4_mapped_ipv6_source_is_read_as_ipv4() -> None:
    assert str(parse_source("::ffff:198.51.100.1")) == "198.51.100.1"
    assert "::ffff:198.51.100.1" in TrustedPeers(["198.51.100.0/24"])


def test_no_trusted_peers_trusts_no_one() -> None:
    assert "127.0.0.1" not in TrustedPeers()


def test_trust_answers_stay_right_for_many_sources_asked_again() -> None:
    peers = TrustedPeers(["198.51.100.0/24"])
    for _ in range(2):  # the second round is answered from what was kept
        for i in range(5000):  # more sources than are kept
            ip = f"198.51.{100 + i % 2}.{i % 256}"
            assert (ip in peers) == ip.startswith("198.51.100.")
