"""Real sockets on the loopback for the transport tests, each step bounded in time."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

from centrex.sip.message import Request, Response
from centrex.transport import ListenAddress, LocalSocket, Peer, TransportLayer

T = TypeVar("T")
STEP = 3.0  # seconds any single wait may take before the test fails
TEST_TIMEOUT = 10.0


def run(main: Callable[[], Awaitable[T]], timeout: float = TEST_TIMEOUT) -> T:
    """Run one test body on a fresh loop, failing it after ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def request_bytes(
    method: str = "OPTIONS",
    *,
    sent_by: str = "192.0.2.10:5060",
    transport: str = "UDP",
    rport: bool = True,
    call_id: str = "call-1@example.com",
    cseq: int = 1,
    omit: tuple[str, ...] = (),
    body: bytes = b"",
    extra: tuple[str, ...] = (),
) -> bytes:
    """A well-formed request unless ``omit`` leaves a header out."""
    branch = call_id.replace("@", ".")
    headers = {
        "Via": f"SIP/2.0/{transport} {sent_by};branch=z9hG4bK-{branch}-{cseq}"
        + (";rport" if rport else ""),
        "Max-Forwards": "70",
        "From": "<sip:alice@example.com>;tag=f1",
        "To": "<sip:bob@example.com>",
        "Call-ID": call_id,
        "CSeq": f"{cseq} {method}",
        "Content-Length": str(len(body)),
    }
    lines = [f"{method} sip:bob@example.com SIP/2.0"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name not in omit]
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


Received = tuple[Request | Response, Peer, LocalSocket]


class Inbox:
    """Collects what a layer delivers; ``reply`` makes it answer requests 200."""

    def __init__(self, reply: int | None = None) -> None:
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.closed: asyncio.Queue[Peer] = asyncio.Queue()
        self.reply = reply
        self.layer: TransportLayer | None = None

    def on_message(self, message: Request | Response, peer: Peer, local: LocalSocket) -> None:
        self.queue.put_nowait((message, peer, local))
        if self.reply is not None and isinstance(message, Request) and self.layer is not None:
            from centrex.sip.build import make_response

            self.layer.send_response(make_response(message, self.reply), peer, local)

    def on_connection_closed(self, peer: Peer) -> None:
        self.closed.put_nowait(peer)

    async def next(self) -> Received:
        return await asyncio.wait_for(self.queue.get(), STEP)

    async def next_closed(self) -> Peer:
        return await asyncio.wait_for(self.closed.get(), STEP)


@asynccontextmanager
async def running_layer(
    *listen: str, reply: int | None = None, tls_context: Any = None, **options: Any
) -> AsyncIterator[tuple[TransportLayer, Inbox]]:
    """A started layer listening on ``listen`` (port 0), stopped on exit."""
    inbox = Inbox(reply)
    layer = TransportLayer(
        inbox.on_message, on_connection_closed=inbox.on_connection_closed, **options
    )
    inbox.layer = layer
    await layer.start([ListenAddress.parse(text) for text in listen], tls_context)
    try:
        yield layer, inbox
    finally:
        await asyncio.wait_for(layer.stop(), STEP)


class UdpClient(asyncio.DatagramProtocol):
    """A UDP socket that queues what it receives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    async def receive(self) -> bytes:
        return await asyncio.wait_for(self.queue.get(), STEP)

    async def nothing_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.queue.get(), seconds)
        except TimeoutError:
            return True
        return False


@asynccontextmanager
async def udp_client(host: str, port: int) -> AsyncIterator[UdpClient]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(UdpClient, remote_addr=(host, port))
    try:
        yield client
    finally:
        transport.close()


async def read_message(reader: asyncio.StreamReader) -> bytes:
    """One Content-Length framed message from a stream."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), STEP) if length else b""
    return head + body


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server writes until it closes the stream (within a step)."""
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), STEP):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@asynccontextmanager
async def udp_layer_and_client(
    listen: str = "udp:127.0.0.1:0", *, reply: int | None = None, **options: Any
) -> AsyncIterator[tuple[TransportLayer, Inbox, UdpClient]]:
    """A started layer on one UDP socket and a client socket connected to it."""
    async with running_layer(listen, reply=reply, **options) as (layer, inbox):
        host = ListenAddress.parse(listen).host
        async with udp_client(host, layer.bound_port("udp")) as client:
            yield layer, inbox, client
