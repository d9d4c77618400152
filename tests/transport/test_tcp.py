"""TCP on real loopback sockets (RFC 3261 18.3, 18.2.2, 18.1.1; RFC 5626 4.4.1)."""

from __future__ import annotations

import asyncio

import pytest

from centrex.sip.build import make_response
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message
from centrex.transport import Peer, TransportLimits
from tests.transport.helpers import (
    STEP,
    ipv6_loopback_available,
    read_message,
    read_until_closed,
    request_bytes,
    run,
    running_layer,
)


def response_of(data: bytes) -> Response:
    message = parse_message(data, stream=True, validate=False)
    assert isinstance(message, Response)
    return message


async def connect(
    port: int, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(host, port), STEP)


def test_tcp_message_split_in_one_byte_chunks_arrives_whole() -> None:
    async def main() -> None:
        async with running_layer("tcp:127.0.0.1:0") as (layer, inbox):
            port = layer.bound_port("tcp")
            _, writer = await connect(port)
            data = request_bytes("MESSAGE", transport="TCP", body=b"hello, bob")
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
            message, peer, local = await inbox.next()
            writer.close()
        assert isinstance(message, Request)
        assert (message.method, message.body) == ("MESSAGE", b"hello, bob")
        assert peer.transport == "tcp" and peer.connection_id is not None
        assert local.transport == "tcp" and local.port == port

    run(main)


def test_two_messages_in_one_tcp_write_arrive_in_order() -> None:
    async def main() -> None:
        async with running_layer("tcp:127.0.0.1:0") as (layer, inbox):
            _, writer = await connect(layer.bound_port("tcp"))
            first = request_bytes(transport="TCP", cseq=1, body=b"one")
            second = request_bytes(transport="TCP", cseq=2)
            writer.write(first + second)
            one, peer_one, _ = await inbox.next()
            two, peer_two, _ = await inbox.next()
            writer.close()
        assert [one.cseq.number, two.cseq.number] == [1, 2]
        assert one.body == b"one"
        assert peer_one == peer_two

    run(main)


def test_crlfcrlf_ping_gets_crlf_pong() -> None:
    async def main() -> None:
        async with running_layer("tcp:127.0.0.1:0") as (layer, inbox):
            reader, writer = await connect(layer.bound_port("tcp"))
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), STEP) == b"\r\n"
            writer.close()
        assert inbox.queue.empty()

    run(main)


def test_response_goes_back_over_the_same_tcp_connection() -> None:
    async def main() -> None:
        async with running_layer("tcp:127.0.0.1:0", reply=200) as (layer, _inbox):
            reader, writer = await connect(layer.bound_port("tcp"))
            # The sent-by names a port nobody listens on: only the connection leads back.
            writer.write(request_bytes("REGISTER", transport="TCP", sent_by="127.0.0.1:9"))
            response = response_of(await read_message(reader))
            writer.close()
        assert response.status == 200
        assert response.cseq.method == "REGISTER"

    run(main)


def test_connection_close_callback_reports_the_connection() -> None:
    async def main() -> None:
        async with running_layer("tcp:127.0.0.1:0") as (layer, inbox):
            _, writer = await connect(layer.bound_port("tcp"))
            writer.write(request_bytes("REGISTER", transport="TCP"))
            _, peer, _ = await inbox.next()
            assert layer.connection_count == 1
            writer.close()
            closed = await inbox.next_closed()
            assert closed == peer
            assert layer.connection_count == 0
            assert not layer.is_connected(peer)

    run(main)


def test_connections_beyond_the_per_address_limit_are_closed_at_once() -> None:
    async def main() -> None:
        limits = TransportLimits(max_connections_per_address=2)
        async with running_layer("tcp:127.0.0.1:0", reply=200, limits=limits) as (layer, _):
            port = layer.bound_port("tcp")
            kept = [await connect(port) for _ in range(2)]
            for reader, writer in kept:
                writer.write(b"\r\n\r\n")
                assert await asyncio.wait_for(reader.readexactly(2), STEP) == b"\r\n"
            reader, writer = await connect(port)
            writer.write(request_bytes(transport="TCP"))
            assert await read_until_closed(reader) == b""
            writer.close()
            assert layer.stats.connections_refused == 1
            # The first two still work, and closing one makes room again.
            kept[0][1].write(request_bytes(transport="TCP"))
            assert response_of(await read_message(kept[0][0])).status == 200
            kept[1][1].close()
            await asyncio.wait_for(_until(lambda: layer.connection_count == 1), STEP)
            reader, writer = await connect(port)
            writer.write(request_bytes(transport="TCP"))
            assert response_of(await read_message(reader)).status == 200
            for _, w in (*kept, (reader, writer)):
                w.close()

    run(main)


async def _until(condition: object) -> None:
    assert callable(condition)
    while not condition():
        await asyncio.sleep(0.01)


def test_idle_connection_is_closed_and_reported() -> None:
    async def main() -> None:
        limits = TransportLimits(idle_timeout=0.5)
        async with running_layer("tcp:127.0.0.1:0", limits=limits) as (layer, inbox):
            reader, writer = await connect(layer.bound_port("tcp"))
            # Traffic keeps it open past the timeout...
            for _ in range(7):
                writer.write(b"\r\n\r\n")
                assert await asyncio.wait_for(reader.readexactly(2), STEP) == b"\r\n"
                await asyncio.sleep(0.1)
            assert layer.connection_count == 1
            # ...silence closes it.
            assert await read_until_closed(reader) == b""
            await inbox.next_closed()
            writer.close()

    run(main)


def test_oversize_stream_header_gets_513_and_the_connection_closes() -> None:
    async def main() -> None:
        limits = TransportLimits(max_header_bytes=1024)
        async with running_layer("tcp:127.0.0.1:0", limits=limits) as (layer, inbox):
            reader, writer = await connect(layer.bound_port("tcp"))
            head = request_bytes(transport="TCP").rstrip(b"\r\n")
            writer.write(head + b"\r\nX-Padding: " + b"p" * 4000)
            response = response_of(await read_message(reader))
            assert await read_until_closed(reader) == b""
            await inbox.next_closed()
            writer.close()
        assert (response.status, response.reason) == (513, "Header block too large")
        assert response.call_id == "call-1@example.com"
        assert inbox.queue.empty()
        assert layer.stats.framing_errors == 1

    run(main)


def test_stream_without_content_length_gets_400_and_the_connection_closes() -> None:
    async def main() -> None:
        async with running_layer("tcp:127.0.0.1:0") as (layer, _):
            reader, writer = await connect(layer.bound_port("tcp"))
            writer.write(request_bytes(transport="TCP", omit=("Content-Length",)))
            response = response_of(await read_message(reader))
            assert await read_until_closed(reader) == b""
            writer.close()
        assert (response.status, response.reason) == (
            400,
            "Missing Content-Length on a stream transport",
        )

    run(main)


def test_malformed_message_on_a_stream_is_answered_and_the_connection_kept() -> None:
    async def main() -> None:
        async with running_layer("tcp:127.0.0.1:0", reply=200) as (layer, _inbox):
            reader, writer = await connect(layer.bound_port("tcp"))
            writer.write(request_bytes(transport="TCP", omit=("To",), cseq=1))
            bad = response_of(await read_message(reader))
            writer.write(b"garbage that is no SIP\r\nContent-Length: 0\r\n\r\n")
            writer.write(request_bytes(transport="TCP", cseq=2))
            good = response_of(await read_message(reader))
            writer.close()
        assert (bad.status, bad.reason) == (400, "Missing To header")
        assert (good.status, good.cseq.number) == (200, 2)
        assert layer.stats.malformed_dropped == 1

    run(main)


def test_send_to_opens_a_connection_and_reuses_it() -> None:
    async def main() -> None:
        async with (
            running_layer("tcp:127.0.0.1:0") as (server, inbox),
            running_layer("udp:127.0.0.1:0") as (client, _),
        ):
            target = Peer("tcp", "127.0.0.1", server.bound_port("tcp"))
            assert not client.send(request_bytes(transport="TCP", cseq=1), target)
            assert await client.send_to(request_bytes(transport="TCP", cseq=1), target)
            assert client.is_connected(target)
            assert client.send(request_bytes(transport="TCP", cseq=2), target)
            assert await client.send_to(request_bytes(transport="TCP", cseq=3), target)
            peers = [(await inbox.next())[1] for _ in range(3)]
            assert client.connection_count == 1
        assert len(set(peers)) == 1

    run(main)


def test_a_connection_we_open_comes_from_our_tcp_listeners_address() -> None:
    # The peer sees the address our Via and Record-Route name (and may allow
    # by address): not the kernel's pick for the route (127.0.0.1 here).
    async def main() -> None:
        async with (
            running_layer("tcp:127.0.0.1:0") as (server, inbox),
            running_layer("udp:127.0.0.77:0", "tcp:127.0.0.78:0") as (client, _),
        ):
            target = Peer("tcp", "127.0.0.1", server.bound_port("tcp"))
            assert await client.send_to(request_bytes(transport="TCP"), target)
            _, peer, _ = await inbox.next()
            assert peer.host == "127.0.0.78"

    run(main)


def test_concurrent_send_to_the_same_peer_share_one_connection() -> None:
    async def main() -> None:
        async with (
            running_layer("tcp:127.0.0.1:0") as (server, inbox),
            running_layer() as (client, _),
        ):
            target = Peer("tcp", "127.0.0.1", server.bound_port("tcp"))
            sent = await asyncio.gather(
                *(client.send_to(request_bytes(transport="TCP", cseq=n), target) for n in range(5))
            )
            assert all(sent)
            assert client.connection_count == 1
            peers = {(await inbox.next())[1] for _ in range(5)}
        assert len(peers) == 1

    run(main)


def test_send_to_an_unreachable_peer_is_false() -> None:
    async def main() -> None:
        async with running_layer("tcp:127.0.0.1:0") as (layer, _):
            port = layer.bound_port("tcp")
        async with running_layer() as (client, _):
            assert not await client.send_to(b"x", Peer("tcp", "127.0.0.1", port))

    run(main)


def test_response_reopens_a_connection_to_the_via_when_the_first_one_closed() -> None:
    async def main() -> None:
        # RFC 3261 18.2.2: the client's listener is the Via sent-by.
        async with running_layer("tcp:127.0.0.1:0") as (phone, phone_inbox):
            phone_port = phone.bound_port("tcp")
            async with running_layer("tcp:127.0.0.1:0") as (proxy, proxy_inbox):
                _reader, writer = await connect(proxy.bound_port("tcp"))
                writer.write(request_bytes(transport="TCP", sent_by=f"127.0.0.1:{phone_port}"))
                request, peer, local = await proxy_inbox.next()
                writer.close()
                await proxy_inbox.next_closed()
                assert isinstance(request, Request)
                assert proxy.send_response(make_response(request, 200), peer, local)
                response, _, _ = await phone_inbox.next()
        assert isinstance(response, Response) and response.status == 200

    run(main)


def test_stop_closes_every_connection_and_reports_it() -> None:
    async def main() -> None:
        async with running_layer("tcp:127.0.0.1:0") as (layer, inbox):
            reader, writer = await connect(layer.bound_port("tcp"))
            writer.write(request_bytes(transport="TCP"))
            _, peer, _ = await inbox.next()
        assert await inbox.next_closed() == peer
        assert await read_until_closed(reader) == b""
        writer.close()

    run(main)


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) here")
def test_tcp_over_ipv6_loopback() -> None:
    async def main() -> None:
        async with running_layer("tcp:[::1]:0", reply=200) as (layer, inbox):
            reader, writer = await connect(layer.bound_port("tcp"), "::1")
            writer.write(request_bytes(transport="TCP", sent_by="[::1]:5060"))
            response = response_of(await read_message(reader))
            _, peer, local = await inbox.next()
            writer.close()
        assert response.status == 200
        assert peer.host == "::1" and local.host == "::1"

    run(main)
