"""What the server does with its input before the transaction layer sees it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

from centrex.server import RESPONSES_PER_TURN
from centrex.sip.build import make_response
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message
from centrex.transport.address import LocalSocket, Peer

from .harness import open_phone, request, running_server


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_a_request_read_with_a_burst_of_responses_is_handled_before_them(tmp_path: Path) -> None:
    """Under a NOTIFY fan-out the subscribers' 200s come in by the hundred: a
    REGISTER read among them goes to the transaction layer first, and the
    responses follow a few per turn of the loop, in the order they came."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            with contextlib.closing(_PlainPhone()) as phone:
                options = parse_message(request("OPTIONS", "sip:example.com", phone).encode())
                assert isinstance(options, Request)
                notify = parse_message(request("NOTIFY", "sip:1001@example.com", phone).encode())
                assert isinstance(notify, Request)
                # (the server and its transaction layer may be compiled: no
                # stand-in for the layer, no replaced method; what is watched
                # is the server's queue of responses waiting for a turn)
                waiting = server._responses
                peer = Peer("udp", phone.host, phone.port)
                local = LocalSocket("udp", "127.0.0.1", 5060)
                statuses = list(range(200, 200 + 3 * RESPONSES_PER_TURN))
                for status in statuses:  # answers to NOTIFYs, read in one turn
                    parsed = parse_message(make_response(notify, status, to_tag="phone").to_bytes())
                    assert isinstance(parsed, Response)
                    server._on_message(parsed, peer, local)
                server._on_message(options, peer, local)
                # The request is answered before any response is taken: at
                # once (with the memory store on 3.11) or by its task on the
                # loop's next turn, while every response still waits.
                turns = 0
                while (data := phone.read()) is None and turns < 2:
                    await asyncio.sleep(0)
                    turns += 1
                assert data is not None, "the request was not answered first"
                answer = parse_message(data)
                assert isinstance(answer, Response) and answer.status == 200
                assert answer.cseq.method == "OPTIONS"
                assert [r.status for r in waiting] == statuses
                while waiting:
                    await asyncio.sleep(0)
                    turns += 1
                    # A few per turn, taken from the front: in the order they came.
                    left = [r.status for r in waiting]
                    assert left == statuses[len(statuses) - len(left) :]
                    assert len(left) >= len(statuses) - turns * RESPONSES_PER_TURN
                assert turns >= 3
                # A call's responses are not held back: not queued.
                ringing = parse_message(make_response(options, 180, to_tag="x").to_bytes())
                assert isinstance(ringing, Response)
                server._on_message(ringing, peer, local)
                assert not waiting

    run(scenario())


class _PlainPhone:
    """A phone's UDP socket read without the loop: what the server sent
    while handling a message is there when the handler returns."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.setblocking(False)
        self.host = "127.0.0.1"
        self.port = self.socket.getsockname()[1]

    def read(self) -> bytes | None:
        """The next datagram, or None when none has come."""
        try:
            return self.socket.recv(65535)
        except BlockingIOError:
            return None

    def close(self) -> None:
        self.socket.close()


def test_a_request_read_while_starting_is_not_kept_and_served_when_sent_again(
    tmp_path: Path,
) -> None:
    """The sockets listen before the location store has loaded: a datagram
    read then is dropped (its sender retransmits), a request over a stream
    gets 503 with Retry-After, and nothing of either stays behind."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            options = request("OPTIONS", "sip:example.com", phone)
            local = LocalSocket("udp", "127.0.0.1", 5060)
            proxy, server.proxy = server.proxy, None  # as before start() makes it
            try:
                message = parse_message(options.encode())
                server._on_message(message, Peer("udp", phone.host, phone.port), local)
                with pytest.raises(TimeoutError):
                    await phone.response(timeout=0.3)
                over_stream = parse_message(options.replace("OPTIONS", "INFO").encode())
                # (no such connection: the 503 goes where the Via says, to the phone)
                server._on_message(over_stream, Peer("tcp", phone.host, phone.port), local)
                busy = await phone.response()
                assert (busy.status, busy.get("Retry-After")) == (503, "1")
            finally:
                server.proxy = proxy
            server._on_message(
                parse_message(options.encode()), Peer("udp", phone.host, phone.port), local
            )
            assert (await phone.response()).status == 200  # the retransmission, served

    run(scenario())
