"""Listen addresses from the configuration and the peer vocabulary (RFC 3261 18, 19.1.2)."""

from __future__ import annotations

import pytest

from centrex.transport import ListenAddress, LocalSocket, Peer


def test_listen_address_parses_ipv4_with_port() -> None:
    assert ListenAddress.parse("udp:0.0.0.0:5060") == ListenAddress("udp", "0.0.0.0", 5060)


def test_listen_address_keeps_ipv6_without_brackets() -> None:
    assert ListenAddress.parse("tcp:[::]:5070") == ListenAddress("tcp", "::", 5070)


def test_listen_address_accepts_host_names_and_upper_case_transport() -> None:
    assert ListenAddress.parse("TLS:sip.example.com:5061") == ListenAddress(
        "tls", "sip.example.com", 5061
    )


@pytest.mark.parametrize(
    ("text", "port"),
    [("udp:127.0.0.1", 5060), ("tcp:[::1]", 5060), ("tls:0.0.0.0", 5061)],
)
def test_listen_address_without_port_takes_the_transport_default(text: str, port: int) -> None:
    assert ListenAddress.parse(text).port == port


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("sctp:0.0.0.0:5060", "expected 'udp:', 'tcp:' or 'tls:'"),
        ("0.0.0.0:5060", "expected 'udp:', 'tcp:' or 'tls:'"),
        ("udp:::1:5060", "IPv6 address in brackets"),
        ("udp:[::1:5060", "missing ']'"),
        ("udp:[::1]5060", "expected ':port'"),
        ("udp:0.0.0.0:65536", "port must be a number"),
        ("udp:0.0.0.0:http", "port must be a number"),
        ("tcp::5060", "not a host name or address"),
        ("tcp:bad host:5060", "not a host name or address"),
    ],
)
def test_bad_listen_address_error_names_entry_and_expectation(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as info:
        ListenAddress.parse(text)
    assert repr(text) in str(info.value)


def test_listen_address_renders_back_to_its_text() -> None:
    for text in ("udp:0.0.0.0:5060", "tcp:[::]:5060", "tls:sip.example.com:5061"):
        assert str(ListenAddress.parse(text)) == text


def test_peer_key_leaves_out_the_connection_id() -> None:
    peer = Peer("tcp", "192.0.2.1", 40000, connection_id=7)
    assert peer.key == ("tcp", "192.0.2.1", 40000)
    assert peer.reliable
    assert not Peer("udp", "192.0.2.1", 5060).reliable


def test_peer_and_local_socket_write_ipv6_in_brackets() -> None:
    assert str(Peer("tcp", "::1", 5060, 3)) == "tcp:[::1]:5060#3"
    assert LocalSocket("udp", "::1", 5060).hostport == "[::1]:5060"


def test_local_sockets_are_equal_and_hash_alike_by_their_three_fields() -> None:
    # A UDP reply leaves from the endpoint whose LocalSocket equals the one
    # its request came on (TransportLayer._udp_endpoint); written out, the
    # comparison is compiled, and it must still mean what the dataclass's did.
    here = LocalSocket("udp", "127.0.0.1", 5060)
    same = LocalSocket("udp", "127.0.0.1", 5060)
    assert here == same
    assert hash(here) == hash(same) == hash(("udp", "127.0.0.1", 5060))
    assert {here: "endpoint"}[same] == "endpoint"
    for other in (
        LocalSocket("tcp", "127.0.0.1", 5060),
        LocalSocket("udp", "127.0.0.2", 5060),
        LocalSocket("udp", "127.0.0.1", 5061),
    ):
        assert here != other
    assert here != ("udp", "127.0.0.1", 5060)
