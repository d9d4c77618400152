"""UDP on real loopback sockets (RFC 3261 18.1.1, 18.2.1, 18.2.2, 18.3; RFC 3581)."""

from __future__ import annotations

import pytest

from centrex.sip.build import make_response
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message
from centrex.transport import LocalSocket, Peer, TransportLimits
from tests.transport.helpers import (
    ipv6_loopback_available,
    request_bytes,
    run,
    running_layer,
    udp_client,
    udp_layer_and_client,
)


def response_of(data: bytes) -> Response:
    # Not validated: an answer to a malformed request copies its faults.
    message = parse_message(data, validate=False)
    assert isinstance(message, Response)
    return message


def test_udp_request_arrives_parsed_with_received_and_rport_filled() -> None:
    async def main() -> None:
        async with running_layer("udp:127.0.0.1:0") as (layer, inbox):
            port = layer.bound_port("udp")
            async with udp_client("127.0.0.1", port) as client:
                client.send(request_bytes(sent_by="192.0.2.10:5060", rport=True))
                message, peer, local = await inbox.next()
        assert isinstance(message, Request)
        assert peer == Peer("udp", "127.0.0.1", client.port)
        assert local == LocalSocket("udp", "127.0.0.1", port)
        via = message.top_via
        assert (via.received, via.rport) == ("127.0.0.1", client.port)

    run(main)


def test_udp_request_missing_a_header_gets_400_naming_it() -> None:
    async def main() -> None:
        async with udp_layer_and_client("udp:127.0.0.1:0") as (layer, inbox, client):
            client.send(request_bytes(omit=("From",), sent_by="192.0.2.10:5060"))
            response = response_of(await client.receive())
        assert (response.status, response.reason) == (400, "Missing From header")
        # Sent to received/rport, and the Via shows them (RFC 3581 4).
        assert response.top_via.rport == client.port
        assert inbox.queue.empty()
        assert layer.stats.malformed_answered == 1

    run(main)


def test_udp_request_with_unusable_via_is_answered_at_the_source() -> None:
    async def main() -> None:
        async with udp_layer_and_client("udp:127.0.0.1:0") as (_layer, _, client):
            client.send(request_bytes(sent_by="192.0.2.10:5060;rport;rport"))
            response = response_of(await client.receive())
        assert response.status == 400
        assert "Via" in response.reason

    run(main)


def test_udp_garbage_gets_silence_and_the_layer_keeps_answering() -> None:
    async def main() -> None:
        async with udp_layer_and_client("udp:127.0.0.1:0", reply=200) as (layer, inbox, client):
            for junk in (b"\x00\x01\x02garbage", b"\r\n\r\n", b"HELLO\r\n\r\n", b"\xff" * 300):
                client.send(junk)
            assert await client.nothing_within(0.2)
            client.send(request_bytes(sent_by="192.0.2.10:5060"))
            response = response_of(await client.receive())
        assert response.status == 200
        assert layer.stats.malformed_dropped == 4
        assert layer.stats.messages == 1
        assert inbox.queue.qsize() == 1

    run(main)


def test_malformed_udp_ack_gets_no_answer() -> None:
    async def main() -> None:
        async with udp_layer_and_client("udp:127.0.0.1:0") as (_layer, _, client):
            client.send(request_bytes("ACK", omit=("Call-ID",)))
            assert await client.nothing_within(0.3)

    run(main)


def test_udp_datagram_over_the_size_limit_is_dropped_unread() -> None:
    async def main() -> None:
        limits = TransportLimits(max_datagram_bytes=600)
        async with udp_layer_and_client("udp:127.0.0.1:0", reply=200, limits=limits) as (
            _layer,
            _,
            client,
        ):
            client.send(request_bytes(body=b"x" * 600))
            assert await client.nothing_within(0.3)
            client.send(request_bytes())
            assert response_of(await client.receive()).status == 200

    run(main)


def test_udp_response_follows_received_and_rport_of_the_via() -> None:
    async def main() -> None:
        async with udp_layer_and_client("udp:127.0.0.1:0") as (layer, inbox, client):
            # The sent-by is unreachable; only received/rport lead back.
            client.send(request_bytes(sent_by="192.0.2.10:5060", rport=True))
            request, _peer, local = await inbox.next()
            assert isinstance(request, Request)
            # Forget the source: the Via alone must route the response.
            nowhere = Peer("udp", "192.0.2.99", 9)
            assert layer.send_response(make_response(request, 486), nowhere, local)
            assert response_of(await client.receive()).status == 486

    run(main)


@pytest.mark.parametrize(
    ("transport", "sent_by"),
    [
        ("SCTP", "192.0.2.10:5060"),  # a transport Centrex does not carry
        ("WS", "192.0.2.10:5060"),
        ("UDP", "192.0.2.10:5060;maddr=192.0.2.77"),  # elsewhere: a reflection
    ],
)
def test_udp_request_is_answered_at_its_source_whatever_its_via_names(
    transport: str, sent_by: str
) -> None:
    # The first two were never answered ("no transport SCTP"); the maddr
    # one was answered to the address it named, retransmissions included.
    async def main() -> None:
        async with udp_layer_and_client("udp:127.0.0.1:0") as (layer, inbox, client):
            client.send(request_bytes(sent_by=sent_by, transport=transport, rport=False))
            request, peer, local = await inbox.next()
            assert isinstance(request, Request)
            assert layer.send_response(make_response(request, 486), peer, local)
            assert response_of(await client.receive()).status == 486

    run(main)


def test_udp_responses_are_delivered_and_malformed_ones_dropped() -> None:
    async def main() -> None:
        async with udp_layer_and_client("udp:127.0.0.1:0") as (_layer, inbox, client):
            good = make_response(
                parse_message(request_bytes(sent_by="127.0.0.1")),  # type: ignore[arg-type]
                180,
            ).to_bytes()
            client.send(good.replace(b"CSeq: 1 OPTIONS", b"CSeq: x"))
            client.send(good)
            message, _, _ = await inbox.next()
            assert isinstance(message, Response) and message.status == 180
            assert inbox.queue.empty()
            assert await client.nothing_within(0.2)

    run(main)


def test_a_failing_handler_does_not_stop_the_layer() -> None:
    async def main() -> None:
        async with running_layer("udp:127.0.0.1:0", reply=200) as (layer, inbox):
            calls = 0
            answer = inbox.on_message

            def flaky(message: Request | Response, peer: Peer, local: LocalSocket) -> None:
                nonlocal calls
                calls += 1
                if calls == 1:
                    raise RuntimeError("handler bug")
                answer(message, peer, local)

            layer._on_message = flaky
            async with udp_client("127.0.0.1", layer.bound_port("udp")) as client:
                client.send(request_bytes(cseq=1))
                client.send(request_bytes(cseq=2))
                response = response_of(await client.receive())
        assert response.cseq.number == 2
        assert layer.stats.handler_errors == 1

    run(main)


def test_send_by_udp_needs_an_ip_address_and_send_to_resolves_names() -> None:
    async def main() -> None:
        async with udp_layer_and_client("udp:127.0.0.1:0") as (layer, _, client):
            peer = Peer("udp", "localhost", client.port)
            assert not layer.send(b"OPTIONS", peer)
            assert await layer.send_to(b"ping", peer)
            assert await client.receive() == b"ping"

    run(main)


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) here")
def test_udp_over_ipv6_loopback_answers_along_the_via() -> None:
    async def main() -> None:
        async with udp_layer_and_client("udp:[::1]:0", reply=200) as (_layer, inbox, client):
            client.send(request_bytes(sent_by="[2001:db8::10]:5060", rport=True))
            response = response_of(await client.receive())
            request, peer, _ = await inbox.next()
        assert response.status == 200
        assert peer == Peer("udp", "::1", client.port)
        assert isinstance(request, Request)
        assert (request.top_via.received, request.top_via.rport) == ("::1", client.port)

    run(main)
