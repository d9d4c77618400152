"""An in-process Centrex on loopback and raw SIP phones to talk to it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from centrex.config import parse_settings
from centrex.server import Server
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message

_ids = itertools.count(1)


class Addressed(Protocol):
    """Whatever a request is written from: where the phone listens."""

    host: str
    port: int


class Phone(asyncio.DatagramProtocol):
    """A UDP endpoint that sends raw SIP and queues what it receives."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.host = "127.0.0.1"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.inbox.put_nowait(parse_message(data))

    def send(self, data: str | bytes, port: int) -> None:
        assert self.transport is not None
        raw = data.encode() if isinstance(data, str) else data
        self.transport.sendto(raw, ("127.0.0.1", port))

    async def receive(self, timeout: float = 2.0) -> Request | Response:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def response(self, timeout: float = 2.0, *, skip_100: bool = True) -> Response:
        while True:
            message = await self.receive(timeout)
            if isinstance(message, Response) and not (skip_100 and message.status == 100):
                return message

    async def request(self, timeout: float = 2.0) -> Request:
        while True:
            message = await self.receive(timeout)
            if isinstance(message, Request):
                return message

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_phone(host: str = "127.0.0.1") -> Phone:
    loop = asyncio.get_running_loop()
    _, phone = await loop.create_datagram_endpoint(Phone, local_addr=(host, 0))
    phone.host = host
    return phone


def request(
    method: str,
    uri: str,
    phone: Addressed,
    *,
    user: str = "1001",
    to: str | None = None,
    extra: str = "",
    body: str = "",
    cseq: int = 1,
    call_id: str | None = None,
    branch: str | None = None,
) -> str:
    n = next(_ids)
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {phone.host}:{phone.port};branch={branch or f'z9hG4bKt{n}'};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{user}@example.com>;tag=f{n}\r\n"
        f"To: <{to or uri}>\r\n"
        f"Call-ID: {call_id or f'call-{n}'}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: <sip:{user}@{phone.host}:{phone.port}>\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )


CONFIG = """
[server]
domains = ["example.com"]
data_dir = "{data}"
[network]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
[registrar]
min_expires = 1
default_expires = 60
{registrar}
[timeouts]
ringing_s = {ringing}
transaction_s = {transaction}
{auth}
{extra}
[[users]]
user = "1001"
description = "Alice"
[[users]]
user = "1002"
description = "Bob"
[[users]]
user = "1003"
description = "Carol"
"""


@asynccontextmanager
async def running_server(
    tmp_path: Path,
    *,
    registrar: str = "",
    ringing: int = 180,
    transaction: int = 32,
    extra: str = "",
    auth: str = "[auth]\nenabled = false\n",
) -> AsyncIterator[Server]:
    text = CONFIG.format(
        data=tmp_path / "data",
        registrar=registrar,
        ringing=ringing,
        transaction=transaction,
        extra=extra,
        auth=auth,
    )
    server = Server(parse_settings(text))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def udp_port(server: Server) -> int:
    return server.transport.bound_port("udp")


async def register(server: Server, phone: Phone, user: str, expires: int = 60) -> Response:
    phone.send(
        request(
            "REGISTER",
            "sip:example.com",
            phone,
            user=user,
            to=f"sip:{user}@example.com",
            extra=f"Expires: {expires}\r\n",
        ),
        udp_port(server),
    )
    return await phone.response()
