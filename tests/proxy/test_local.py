"""Who "myself" is (RFC 3261 16.4): the addresses Centrex listens on."""

from __future__ import annotations

from centrex.proxy.local import LocalIdentity
from centrex.sip.uri import parse_uri


def test_another_address_on_our_port_is_us_only_behind_a_wildcard_listener() -> None:
    # Two instances on one machine, on 127.0.0.1 and 127.0.0.2, both on port
    # 5070: each must leave the other's Record-Route alone (it took the other's
    # off as its own, then refused the BYE with 403 for a token of the other).
    given = LocalIdentity(["example.com"], [("udp", "127.0.0.1", 5070)])
    assert given.is_myself(parse_uri("sip:127.0.0.1:5070;lr"))
    assert not given.is_myself(parse_uri("sip:127.0.0.2:5070;lr"))
    assert not given.is_myself(parse_uri("sip:localhost:5070;lr"))
    assert given.is_myself(parse_uri("sip:example.com;lr"))

    wildcard = LocalIdentity(["example.com"], [("udp", "0.0.0.0", 5070)])
    assert wildcard.is_myself(parse_uri("sip:127.0.0.2:5070;lr"))
    assert wildcard.is_myself(parse_uri("sip:localhost:5070;lr"))
    assert not wildcard.is_myself(parse_uri("sip:127.0.0.2:5071;lr"))
    # An IPv6 address is ours only with an IPv6 wildcard.
    assert not wildcard.is_myself(parse_uri("sip:[::1]:5070;lr"))
