"""Two in-process servers on one SQLite database: a call through the owner instance.

The owner publishes its address as a DNS name (``registrar.database.
instance_address``); the caller's instance resolves it (here: a stand-in for
DNS, which this machine cannot serve) and the owner must take the Route
naming it by that name as its own.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from centrex.config import parse_settings
from centrex.server import Server
from centrex.sip.message import Request
from centrex.sip.parser import parse_message
from centrex.sip.uri import SipURI
from centrex.transport import Peer

from .harness import open_phone, register, request, udp_port


def reparse_request(text: str) -> Request:
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def free_port() -> int:
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        port: int = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        return port


def settings_text(tmp_path: Path, name: str, port: int, address: str) -> str:
    return f"""
[server]
domains = ["example.com"]
data_dir = "{tmp_path / name}"
instance_id = "{name}"
[network]
listen = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}"]
[registrar]
store = "database"
allow_unknown_users = true
[registrar.database]
url = "sqlite+aiosqlite:///{tmp_path / "location.db"}"
migrate_on_start = true
staleness_s = 0.2
instance_address = "{address}"
[auth]
enabled = false
[logging]
level = "warning"
[admin]
enabled = false
"""


def test_a_call_reaches_a_phone_through_its_owner_published_by_name(tmp_path: Path) -> None:
    async def scenario() -> None:
        port_a, port_b = free_port(), free_port()
        a = Server(parse_settings(settings_text(tmp_path, "A", port_a, f"sip:127.0.0.1:{port_a}")))
        owner = f"sip:pbx-b.example.net:{port_b};transport=tcp"
        b = Server(parse_settings(settings_text(tmp_path, "B", port_b, owner)))
        await a.start()
        await b.start()
        phone = await open_phone()
        caller = await open_phone()
        try:
            assert a.proxy is not None

            async def dns(uri: SipURI) -> Peer | None:
                if uri.host == "pbx-b.example.net":
                    return Peer("tcp", "127.0.0.1", port_b)
                return Peer("udp", uri.host, uri.port or 5060)

            a.proxy._resolve = dns  # the one thing this machine cannot do: DNS
            phone.send(
                request(
                    "REGISTER",
                    "sip:example.com",
                    phone,
                    user="1002",
                    to="sip:1002@example.com",
                    extra="Expires: 60\r\n",
                ),
                udp_port(b),
            )
            assert (await phone.response()).status == 200
            await a.store.sync()
            caller.send(request("INVITE", "sip:1002@example.com", caller), udp_port(a))
            invite = await phone.request(5)
            assert isinstance(invite, Request) and invite.method == "INVITE"
            assert "route" not in invite  # B took its own Route (named by DNS name) off
            assert len(invite.vias) == 3  # caller, A, B

            # An outsider that captured a token (it is good for this Call-ID
            # for a minute) and sends it straight to B with an identity of its
            # choosing: B uses the flow, but takes no identity from it.
            assert a.proxy.owners is not None
            (held,) = await a.registrar.lookup("sip:1002@example.com", time.time())
            forged = request("INVITE", "sip:1002@example.com", caller, call_id="replayed")
            route = a.proxy.owners.owner_route(held, reparse_request(forged))
            assert route is not None
            headers = f"Route: {route[1]}\r\nP-Asserted-Identity: <sip:boss@example.com>\r\n"
            caller.send(
                request(
                    "INVITE", "sip:1002@example.com", caller, call_id="replayed", extra=headers
                ),
                udp_port(b),
            )
            replayed = await phone.request(5)
            assert replayed.call_id == "replayed"
            assert "p-asserted-identity" not in replayed
        finally:
            phone.close()
            caller.close()
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_an_ack_to_a_users_address_reaches_the_phone_through_the_instance_holding_it(
    tmp_path: Path,
) -> None:
    # A callee whose Contact is its address of record, registered on B over a
    # flow only B can use: the caller's ACK sent to A goes to B with a flow
    # token, and B must take it to the phone (it dropped it: no dialog token).
    async def scenario() -> None:
        port_a, port_b = free_port(), free_port()
        a = Server(parse_settings(settings_text(tmp_path, "A", port_a, f"sip:127.0.0.1:{port_a}")))
        b = Server(
            parse_settings(
                settings_text(tmp_path, "B", port_b, f"sip:127.0.0.1:{port_b};transport=tcp")
            )
        )
        await a.start()
        await b.start()
        phone, caller = await open_phone(), await open_phone()
        try:
            assert (await register(b, phone, "1002")).status == 200
            await a.store.sync()
            invite = request("INVITE", "sip:1002@example.com", caller, call_id="k1")
            caller.send(invite, udp_port(a))
            assert (await phone.request(5)).method == "INVITE"
            ack = request("ACK", "sip:1002@example.com", caller, call_id="k1").replace(
                "To: <sip:1002@example.com>", "To: <sip:1002@example.com>;tag=x"
            )
            caller.send(ack, udp_port(a))
            while (got := await phone.request(3)).method == "INVITE":
                pass  # (retransmissions of the INVITE)
            assert got.method == "ACK"
        finally:
            phone.close()
            caller.close()
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 40))
