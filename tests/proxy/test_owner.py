"""Flow tokens between instances sharing a database (centrex/proxy/owner.py)."""

from __future__ import annotations

from dataclasses import dataclass

from centrex.proxy.owner import Flow, OwnerRouting
from centrex.registrar.binding import Binding, Source
from centrex.sip.message import Request
from centrex.sip.parser import parse_message
from centrex.sip.uri import SipURI, parse_uri

NOW = 1_700_000_000.0
KEY = b"k" * 32


@dataclass
class Known:
    address: str
    heartbeat_at: float
    heard_at: float


MONOTONIC = 5000.0


def invite(call_id: str = "call-1@example.net") -> Request:
    data = (
        "INVITE sip:1002@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:1001@example.com>;tag=a\r\n"
        f"To: <sip:1002@example.com>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def held_by_b(aor: str = "sip:1002@example.com") -> Binding:
    source = Source("udp", "198.51.100.7", 40000, "udp:0.0.0.0:5060")
    return Binding("b1", aor, "sip:1002@10.0.0.2", NOW + 600, None, "c", 1, source, server_id="B")


def routing(
    server_id: str,
    key: bytes = KEY,
    heartbeat_at: float = NOW,
    heard_ago: float = 0.0,
    database_up: bool = True,
    now: float = NOW,
) -> OwnerRouting:
    """Instance ``server_id``, knowing B, whose heartbeat (B's clock: ``heartbeat_at``)
    it last saw move ``heard_ago`` seconds ago."""
    b = Known("sip:10.0.0.2:5060;transport=tcp", heartbeat_at, MONOTONIC - heard_ago)
    instances = {"B": b}
    return OwnerRouting(
        server_id,
        key=lambda: key,
        instance=instances.get,
        down_after_s=5,
        wall_clock=lambda: now,
        clock=lambda: MONOTONIC,
        heartbeats_current=lambda: database_up,
    )


def route_uri(value: str) -> SipURI:
    uri = parse_uri(value.strip("<>"))
    assert isinstance(uri, SipURI)
    return uri


def test_a_token_made_by_one_instance_is_accepted_by_the_owner_for_that_request() -> None:
    found = routing("A").owner_route(held_by_b(), invite())
    assert found is not None
    hop, value = found
    assert (hop.host, hop.port) == ("10.0.0.2", 5060)
    assert value.startswith("<sip:10.0.0.2:5060;transport=tcp;lr;cxo=")
    assert routing("B").verify(route_uri(value), invite()) == Flow("sip:1002@example.com", "b1")


def test_a_token_is_refused_for_another_call_another_key_or_when_edited() -> None:
    found = routing("A").owner_route(held_by_b(), invite())
    assert found is not None
    uri = route_uri(found[1])
    assert routing("B").verify(uri, invite("other@example.net")) is None
    assert routing("B", key=b"x" * 32).verify(uri, invite()) is None
    token = uri.param("cxo") or ""
    encoded, _, made, mac = token.split(".")
    forged = found[1].replace(token, f"{encoded}.other.{made}.{mac}")
    assert routing("B").verify(route_uri(forged), invite()) is None
    younger = found[1].replace(token, f"{encoded}.b1.{int(NOW) + 60}.{mac}")
    assert routing("B").verify(route_uri(younger), invite()) is None
    assert routing("B").verify(route_uri("<sip:10.0.0.2;lr;cxo=garbage>"), invite()) is None
    # A time of digits that are not ASCII ("²", escaped) is refused, not a crash.
    odd = found[1].replace(token, f"{encoded}.b1.%C2%B2.{mac}")
    assert routing("B").verify(route_uri(odd), invite()) is None
    # Nor are hundreds or thousands of digits (too big for a float, for int()).
    for digits in (400, 5000):
        long = found[1].replace(token, f"{encoded}.b1.{'1' * digits}.{mac}")
        assert routing("B").verify(route_uri(long), invite()) is None


def test_no_route_to_an_owner_that_is_down_or_unknown() -> None:
    assert routing("A", heard_ago=6).owner_route(held_by_b(), invite()) is None
    assert routing("A", heartbeat_at=0).owner_route(held_by_b(), invite()) is None  # stopped
    # The owner's clock is an hour behind, but its heartbeat moved just now: up.
    behind = routing("A", heartbeat_at=NOW - 3600, heard_ago=1)
    assert behind.owner_route(held_by_b(), invite()) is not None
    # The database is lost: an old heartbeat says nothing, the owner is tried.
    lost = routing("A", heard_ago=60, database_up=False)
    assert lost.owner_route(held_by_b(), invite()) is not None
    stray = held_by_b()
    unknown = Binding(
        stray.id, stray.aor, stray.contact, stray.expires_at, None, "c", 1, stray.source,
        server_id="Z",
    )  # fmt: skip
    assert routing("A").owner_route(unknown, invite()) is None
    assert not routing("B").held_elsewhere(held_by_b())
    assert routing("A").held_elsewhere(held_by_b())


def test_a_token_is_refused_once_its_request_can_no_longer_be_retransmitted() -> None:
    found = routing("A").owner_route(held_by_b(), invite())
    assert found is not None
    uri = route_uri(found[1])
    flow = Flow("sip:1002@example.com", "b1")
    # The INVITE's retransmissions (32 s), with clocks apart by up to 32 s either way.
    assert routing("B", now=NOW + 64).verify(uri, invite()) == flow
    assert routing("B", now=NOW - 32).verify(uri, invite()) == flow
    # Replayed later, with the same Call-ID: refused.
    assert routing("B", now=NOW + 65).verify(uri, invite()) is None
    assert routing("B", now=NOW + 3600).verify(uri, invite()) is None
    assert routing("B", now=NOW - 65).verify(uri, invite()) is None
