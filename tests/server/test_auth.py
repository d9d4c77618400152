"""Authentication and abuse protection on a real server over loopback UDP (issue 5)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest

from centrex.sip.build import make_response
from centrex.sip.fields import AuthParams
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message

from .harness import Phone, open_phone, request, running_server, udp_port

AUTH_ON = "[auth]\nenabled = true\nban_after_failures = 3\n{more}"
PASSWORDS = """
[[users]]
user = "2001"
description = "Dave"
password = "secret-2001"
"""


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def digest(challenge: str, user: str, password: str, method: str, uri: str, algorithm: str) -> str:
    params = AuthParams.parse(challenge).params
    realm, nonce = params["realm"].strip('"'), params["nonce"].strip('"')  # type: ignore[union-attr]

    def h(text: str) -> str:
        if algorithm == "SHA-256":
            return hashlib.sha256(text.encode()).hexdigest()
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = h(f"{user}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    cnonce, nc = "0a4f113b", "00000001"
    response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )


async def register(
    phone: Phone, port: int, user: str, authorization: str = "", call_id: str = "reg", cseq: int = 1
) -> Response:
    extra = "Expires: 60\r\n" + (f"Authorization: {authorization}\r\n" if authorization else "")
    phone.send(
        request(
            "REGISTER",
            "sip:example.com",
            phone,
            user=user,
            to=f"sip:{user}@example.com",
            extra=extra,
            call_id=call_id,
            cseq=cseq,
        ),
        port,
    )
    return await phone.response()


def shape(response: Response) -> tuple[int, list[tuple[str, list[str]]]]:
    """Status and header/parameter names: what an attacker could compare."""
    names = []
    for value in response.get_all("WWW-Authenticate") + response.get_all("Proxy-Authenticate"):
        names.append((value.split()[0], sorted(AuthParams.parse(value).params)))
    return response.status, names


async def _registered_callee(port: int) -> Phone:
    callee = await open_phone()
    challenge = await register(callee, port, "2001", call_id="tag-callee")
    creds = digest(
        challenge.get_all("WWW-Authenticate")[0],
        "2001",
        "secret-2001",
        "REGISTER",
        "sip:example.com",
        "SHA-256",
    )
    assert (await register(callee, port, "2001", creds, call_id="tag-callee", cseq=2)).status == 200
    return callee


def test_register_is_challenged_with_sha256_first_then_md5(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            phone = await open_phone()
            challenge = await register(phone, udp_port(s), "2001")
            assert challenge.status == 401
            offered = [AuthParams.parse(v).params for v in challenge.get_all("WWW-Authenticate")]
            assert [p["algorithm"] for p in offered] == ["SHA-256", "MD5"]
            assert all(p["qop"] == "auth" for p in offered)
            assert all(p["realm"] == "example.com" for p in offered)

    run(scenario())


def test_sha256_and_md5_clients_register_with_the_right_password(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            for index, algorithm in enumerate(("SHA-256", "MD5")):
                phone = await open_phone()
                challenge = await register(phone, port, "2001", call_id=f"c{index}")
                header = challenge.get_all("WWW-Authenticate")[index]
                credentials = digest(
                    header, "2001", "secret-2001", "REGISTER", "sip:example.com", algorithm
                )
                ok = await register(phone, port, "2001", credentials, call_id=f"c{index}", cseq=2)
                assert ok.status == 200, algorithm

    run(scenario())


def test_wrong_password_and_unknown_user_get_the_same_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            answers = []
            for user in ("2001", "7777"):
                phone = await open_phone()
                challenge = await register(phone, port, user, call_id=f"x{user}")
                header = challenge.get_all("WWW-Authenticate")[0]
                credentials = digest(
                    header, user, "wrong", "REGISTER", "sip:example.com", "SHA-256"
                )
                answers.append(
                    shape(
                        await register(phone, port, user, credentials, call_id=f"x{user}", cseq=2)
                    )
                )
            assert answers[0] == answers[1]
            assert answers[0][0] == 401

    run(scenario())


def test_calls_from_our_users_are_challenged_with_407_and_then_assert_identity(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            # The callee registers with credentials too.
            callee, caller = await _registered_callee(port), await open_phone()
            invite = request(
                "MESSAGE",
                "sip:2001@example.com",
                caller,
                user="2001",
                call_id="m",
                body="hi",
                extra="P-Asserted-Identity: <sip:boss@example.com>\r\n",
            )
            caller.send(invite, port)
            challenge = await caller.response()
            assert challenge.status == 407
            header = challenge.get_all("Proxy-Authenticate")[0]
            creds = digest(
                header, "2001", "secret-2001", "MESSAGE", "sip:2001@example.com", "SHA-256"
            )
            caller.send(
                request(
                    "MESSAGE",
                    "sip:2001@example.com",
                    caller,
                    user="2001",
                    call_id="m",
                    cseq=2,
                    body="hi",
                    extra=f"Proxy-Authorization: {creds}\r\n"
                    "P-Asserted-Identity: <sip:boss@example.com>\r\n",
                ),
                port,
            )
            forwarded = await callee.request()
            assert forwarded.get_all("P-Asserted-Identity") == ["<sip:2001@example.com>"]
            # The credentials were for this proxy: the callee does not get
            # its caller's digest response to guess the password from.
            assert "Proxy-Authorization" not in forwarded

    run(scenario())


def test_a_made_up_to_tag_does_not_spare_a_register_the_challenge(tmp_path: Path) -> None:
    # It used to: a REGISTER with any To tag was taken as "in a dialog" and
    # bound the sender's Contact to someone else's extension.
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            callee = await _registered_callee(port)
            thief = await open_phone()
            for extra in ("", "Contact: *\r\nExpires: 0\r\n"):
                data = request(
                    "REGISTER", "sip:example.com", thief, user="2001", to="sip:2001@example.com"
                ).replace("To: <sip:2001@example.com>", "To: <sip:2001@example.com>;tag=hijack")
                if extra:
                    data = data.replace(f"Contact: <sip:2001@{thief.host}:{thief.port}>\r\n", extra)
                thief.send(data, port)
                assert (await thief.response()).status == 401
            # The callee's binding is the only one, as it was.
            bindings = await s.registrar.lookup("sip:2001@example.com", time.time())
            assert [b.source.port for b in bindings] == [callee.port]

    run(scenario())


def test_a_made_up_to_tag_does_not_spare_a_call_the_challenge(tmp_path: Path) -> None:
    # It used to: a MESSAGE or INVITE with a To tag and no Route of ours
    # reached the callee with a From claiming to be one of our users.
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            callee = await _registered_callee(port)
            outsider = await open_phone()
            for method in ("MESSAGE", "BYE"):
                data = request(method, "sip:2001@example.com", outsider, body="x").replace(
                    "To: <sip:2001@example.com>", "To: <sip:2001@example.com>;tag=fake"
                )
                outsider.send(data, port)
                assert (await outsider.response()).status == 407
            with pytest.raises(TimeoutError):
                await callee.request(timeout=0.5)

    run(scenario())


def test_an_untrusted_p_asserted_identity_is_removed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            callee, outsider = await _registered_callee(port), await open_phone()
            # A caller from another domain is not challenged, but may not assert anyone.
            data = request(
                "MESSAGE",
                "sip:2001@example.com",
                outsider,
                body="x",
                extra="P-Asserted-Identity: <sip:2001@example.com>\r\n",
            ).replace("From: <sip:1001@example.com>", "From: <sip:eve@elsewhere.example>")
            outsider.send(data, port)
            forwarded = await callee.request()
            assert "P-Asserted-Identity" not in forwarded

    run(scenario())


def test_a_trusted_peer_is_not_challenged(tmp_path: Path) -> None:
    async def scenario() -> None:
        auth = AUTH_ON.format(more='trusted = ["127.0.0.0/8"]\n')
        async with running_server(tmp_path, auth=auth, extra=PASSWORDS) as s:
            phone = await open_phone()
            assert (await register(phone, udp_port(s), "2001")).status == 200

    run(scenario())


def test_repeated_failures_ban_the_address_silently(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            attacker = await open_phone("127.0.0.2")
            for attempt in range(3):
                challenge = await register(attacker, port, "2001", call_id=f"b{attempt}")
                creds = digest(
                    challenge.get_all("WWW-Authenticate")[0],
                    "2001",
                    f"guess{attempt}",
                    "REGISTER",
                    "sip:example.com",
                    "SHA-256",
                )
                assert (
                    await register(attacker, port, "2001", creds, call_id=f"b{attempt}", cseq=2)
                ).status == 401
            attacker.send(request("OPTIONS", "sip:example.com", attacker), port)
            try:
                answer = await attacker.response(timeout=0.5)
            except TimeoutError:
                answer = None
            assert answer is None
            # Someone else is still served.
            other = await open_phone()
            other.send(request("OPTIONS", "sip:example.com", other), port)
            assert (await other.response()).status == 200

    run(scenario())


def test_a_ban_outlives_a_restart(tmp_path: Path) -> None:
    # It did not: restarting the server (or crashing it) lifted every ban.
    async def scenario() -> None:
        auth = AUTH_ON.format(more="ban_time_s = 600\n")
        async with running_server(tmp_path, auth=auth, extra=PASSWORDS) as s:
            port = udp_port(s)
            attacker = await open_phone("127.0.0.2")
            for attempt in range(3):
                challenge = await register(attacker, port, "2001", call_id=f"r{attempt}")
                creds = digest(
                    challenge.get_all("WWW-Authenticate")[0],
                    "2001",
                    f"guess{attempt}",
                    "REGISTER",
                    "sip:example.com",
                    "SHA-256",
                )
                await register(attacker, port, "2001", creds, call_id=f"r{attempt}", cseq=2)
            published = tmp_path / "data" / "bans.json"
            for _ in range(40):  # the bans are published within a second or so
                if published.exists() and "127.0.0.2" in published.read_text():
                    break
                await asyncio.sleep(0.1)
            attacker.close()
        async with running_server(tmp_path, auth=auth, extra=PASSWORDS) as s:
            port = udp_port(s)
            attacker = await open_phone("127.0.0.2")
            attacker.send(request("OPTIONS", "sip:example.com", attacker), port)
            with pytest.raises(TimeoutError):
                await attacker.response(timeout=0.5)
            other = await open_phone()
            other.send(request("OPTIONS", "sip:example.com", other), port)
            assert (await other.response()).status == 200

    run(scenario())


def test_known_scanners_get_no_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            phone = await open_phone()
            phone.send(
                request(
                    "OPTIONS",
                    "sip:100@example.com",
                    phone,
                    extra="User-Agent: friendly-scanner\r\n",
                ),
                udp_port(s),
            )
            try:
                answer = await phone.response(timeout=0.5)
            except TimeoutError:
                answer = None
            assert answer is None

    run(scenario())


def test_md5_first_is_a_setting_for_phones_that_read_only_the_first_challenge(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        auth = AUTH_ON.format(more='algorithms = ["MD5", "SHA-256"]\n')
        async with running_server(tmp_path, auth=auth, extra=PASSWORDS) as s:
            phone = await open_phone()
            challenge = await register(phone, udp_port(s), "2001")
            offered = [AuthParams.parse(v).params for v in challenge.get_all("WWW-Authenticate")]
            assert [p["algorithm"] for p in offered] == ["MD5", "SHA-256"]

    run(scenario())


def test_a_subscribe_to_the_registrar_is_challenged_as_its_user_agent_would(
    tmp_path: Path,
) -> None:
    # RFC 3261 22.1: the server answers it itself, so 401 with
    # WWW-Authenticate, answered with Authorization (it got a proxy's 407).
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            phone = await open_phone()
            extra = "Event: user-available\r\nExpires: 60\r\n"
            uri = "sip:Registrar@example.com"
            first = request("SUBSCRIBE", uri, phone, user="2001", call_id="s", extra=extra)
            phone.send(first, port)
            challenge = await phone.response()
            assert challenge.status == 401
            header = challenge.get_all("WWW-Authenticate")[0]
            creds = digest(header, "2001", "secret-2001", "SUBSCRIBE", uri, "SHA-256")
            again = request(
                "SUBSCRIBE",
                uri,
                phone,
                user="2001",
                call_id="s",
                cseq=2,
                extra=extra + f"Authorization: {creds}\r\n",
            )
            phone.send(again, port)
            assert (await phone.response()).status == 200

    run(scenario())


def test_the_token_of_ones_own_call_carries_no_other_request_unchallenged(
    tmp_path: Path,
) -> None:
    # A caller from another domain is not challenged; the ringing callee's
    # answer hands it our Record-Route with the dialog's token. That token
    # used to stand for the Call-ID alone: reused with a From of one of our
    # users, it carried a MESSAGE to a phone unchallenged.
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            callee = await _registered_callee(port)
            outsider = await open_phone()
            bye_from = "<sip:eve@elsewhere.example>;tag=eve0"
            record_route = await _ringing(
                outsider, callee, port, "chosen", from_=bye_from, to="sip:2001@example.com"
            )
            # The same Call-ID and token, as one of our users, to the callee's
            # contact and to its address of record.
            for uri in (f"sip:2001@127.0.0.1:{callee.port}", "sip:2001@example.com"):
                forged = request(
                    "MESSAGE",
                    uri,
                    outsider,
                    user="1001",
                    to="sip:2001@example.com",
                    call_id="chosen",
                    cseq=2,
                    body="x",
                    extra=f"Route: {record_route}\r\n",
                ).replace("To: <sip:2001@example.com>", "To: <sip:2001@example.com>;tag=c1")
                outsider.send(forged, port)
                assert (await outsider.response()).status == 407
            with pytest.raises(TimeoutError):
                await callee.request(timeout=0.5)
            # The caller's own in-dialog request is still carried unchallenged.
            bye = request(
                "BYE",
                f"sip:2001@127.0.0.1:{callee.port}",
                outsider,
                to="sip:2001@example.com",
                call_id="chosen",
                cseq=3,
                extra=f"Route: {record_route}\r\n",
            ).replace("To: <sip:2001@example.com>", "To: <sip:2001@example.com>;tag=c1")
            bye = bye.replace(bye.split("From: ")[1].split("\r\n")[0], bye_from)
            outsider.send(bye, port)
            assert (await callee.request()).method == "BYE"

    run(scenario())


async def _ringing(
    caller: Phone, callee: Phone, port: int, call_id: str, *, from_: str, to: str
) -> str:
    """An INVITE to 2001 from ``caller`` (From and To written whole), which
    2001 answers 180 with tag ``c1``: our Record-Route, with the dialog token."""
    invite = request("INVITE", "sip:2001@example.com", caller, call_id=call_id)
    invite = invite.replace("To: <sip:2001@example.com>", f"To: <{to}>")
    invite = invite.replace(invite.split("From: ")[1].split("\r\n")[0], from_)
    caller.send(invite, port)
    at_callee = await callee.request()
    callee.send(make_response(at_callee, 180, to_tag="c1").to_bytes(), port)
    assert (await caller.response()).status == 180
    (record_route,) = at_callee.get_all("Record-Route")
    return record_route


def _in_dialog(
    method: str, uri: str, phone: Phone, *, from_: str, to: str, call_id: str, cseq: int, extra: str
) -> str:
    """A request in a dialog: From and To written whole, tags included."""
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {phone.host}:{phone.port};branch=z9hG4bK{call_id}{cseq};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: {from_}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\nContact: <sip:x@{phone.host}:{phone.port}>\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    )


def test_only_the_callee_from_its_own_address_speaks_for_its_side_unchallenged(
    tmp_path: Path,
) -> None:
    # Both ends of a call see the dialog token. It used to let either send
    # requests as the other side unchallenged: a caller from another domain
    # rang 2001 once, then sent requests "From: 2001" (the callee's side,
    # tags of its own dialog) to anyone; or it wrote "To: 1001" in an INVITE
    # to 2001, and the callee's side spoke as 1001. The token now binds each
    # side to the address it was reached at, and the callee's side to the
    # user it was routed to: from elsewhere, or when its From (the To the
    # caller wrote) is another user of ours, it answers a challenge, as that
    # routed user (a phone that moved; the callee of a forwarded call).
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            callee = await _registered_callee(port)
            outsider, moved = await open_phone(), await open_phone()
            caller_from = "<sip:eve@elsewhere.example>;tag=eve1"

            async def call(call_id: str, to: str) -> str:
                return await _ringing(outsider, callee, port, call_id, from_=caller_from, to=to)

            def backwards(phone: Phone, to: str, call_id: str, cseq: int, route: str) -> str:
                return _in_dialog(
                    "BYE",
                    f"sip:eve@127.0.0.1:{outsider.port}",
                    phone,
                    from_=f"<{to}>;tag=c1",
                    to=caller_from,
                    call_id=call_id,
                    cseq=cseq,
                    extra=f"Route: {route}\r\n",
                )

            async def answered(phone: Phone, bye: str, call_id: str) -> None:
                phone.send(bye, port)
                challenge = await phone.response()
                assert challenge.status == 407
                creds = digest(
                    challenge.get_all("Proxy-Authenticate")[0],
                    "2001",
                    "secret-2001",
                    "BYE",
                    f"sip:eve@127.0.0.1:{outsider.port}",
                    "SHA-256",
                )
                phone.send(
                    bye.replace("CSeq: 1 BYE", "CSeq: 2 BYE")
                    .replace(f"{call_id}1;", f"{call_id}2;")
                    .replace("Content-Length", f"Proxy-Authorization: {creds}\r\nContent-Length"),
                    port,
                )
                assert (await outsider.request()).method == "BYE"

            # The caller speaking for the callee's side, as 2001 or as the
            # 1001 it wrote in its To.
            for to in ("sip:2001@example.com", "sip:1001@example.com"):
                route = await call(f"forged-{to[4:8]}", to)
                outsider.send(backwards(outsider, to, f"forged-{to[4:8]}", 1, route), port)
                assert (await outsider.response()).status == 407
            # The callee itself, from where it registered, as the user it was
            # called as: unchallenged.
            route = await call("own", "sip:2001@example.com")
            callee.send(backwards(callee, "sip:2001@example.com", "own", 1, route), port)
            assert (await outsider.request()).method == "BYE"
            # Called "To" 1001 (a forwarded call): it answers as 2001.
            route = await call("forwarded", "sip:1001@example.com")
            bye = backwards(callee, "sip:1001@example.com", "forwarded", 1, route)
            await answered(callee, bye, "forwarded")
            # From another address (the phone moved): it answers as 2001.
            route = await call("moved", "sip:2001@example.com")
            await answered(
                moved, backwards(moved, "sip:2001@example.com", "moved", 1, route), "moved"
            )

    run(scenario())


def test_a_dialog_token_of_the_previous_version_still_carries_its_dialog(tmp_path: Path) -> None:
    # The previous version's Record-Route carried the token of the dialog
    # alone (the first 16 digits of today's): its dialogs, set up before an
    # upgrade, still follow their route sets (their own users' requests
    # answer a challenge, the token says nothing of where they come from).
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port = udp_port(s)
            callee = await _registered_callee(port)
            outsider = await open_phone()
            caller_from = "<sip:eve@elsewhere.example>;tag=eve1"
            route = await _ringing(
                outsider, callee, port, "old", from_=caller_from, to="sip:2001@example.com"
            )
            token = route.split("cxd=")[1].split(">")[0].split(";")[0]
            old = route.replace(token, token[:16])
            bye = _in_dialog(
                "BYE",
                f"sip:2001@127.0.0.1:{callee.port}",
                outsider,
                from_=caller_from,
                to="<sip:2001@example.com>;tag=c1",
                call_id="old",
                cseq=2,
                extra=f"Route: {old}\r\n",
            )
            outsider.send(bye, port)
            assert (await callee.request()).method == "BYE"

    run(scenario())


class _TcpPhone:
    """A phone on one TCP connection to the server (raw SIP, Via TCP)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.host, self.port = writer.get_extra_info("sockname")[:2]

    @classmethod
    async def open(cls, port: int) -> _TcpPhone:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, text: str | bytes) -> None:
        raw = text.encode() if isinstance(text, str) else text
        self.writer.write(raw.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP", 1))

    async def receive(self) -> Request | Response:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 3)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(self.reader.readexactly(length), 3) if length else b""
        return parse_message(head + body)

    async def response(self) -> Response:
        while True:
            message = await self.receive()
            if isinstance(message, Response) and message.status != 100:
                return message

    def close(self) -> None:
        self.writer.close()


def test_a_tcp_side_of_a_dialog_speaks_unchallenged_only_from_its_connection(
    tmp_path: Path,
) -> None:
    # The token binds a TCP side to its address and port, as over UDP: the
    # callee's BYE over the connection the call reached it on is relayed; the
    # same BYE over a second connection from the same address (another port:
    # another phone behind the same NAT address, or the other end of the
    # call) answers a challenge.
    async def scenario() -> None:
        async with running_server(tmp_path, auth=AUTH_ON.format(more=""), extra=PASSWORDS) as s:
            port, tcp = udp_port(s), s.transport.bound_port("tcp")
            callee = await _TcpPhone.open(tcp)

            def registering(authorization: str, cseq: int) -> str:
                extra = "Expires: 60\r\n" + (
                    f"Authorization: {authorization}\r\n" if authorization else ""
                )
                text = request(
                    "REGISTER", "sip:example.com", callee, user="2001",
                    to="sip:2001@example.com", extra=extra, call_id="tcp-reg", cseq=cseq,
                )  # fmt: skip
                return text.replace(f":{callee.port}>", f":{callee.port};transport=tcp>")

            callee.send(registering("", 1))
            challenge = await callee.response()
            creds = digest(
                challenge.get_all("WWW-Authenticate")[0],
                "2001", "secret-2001", "REGISTER", "sip:example.com", "SHA-256",
            )  # fmt: skip
            callee.send(registering(creds, 2))
            assert (await callee.response()).status == 200

            outsider = await open_phone()
            caller_from = "<sip:eve@elsewhere.example>;tag=eve1"
            invite = request("INVITE", "sip:2001@example.com", outsider, call_id="tcp-call")
            invite = invite.replace(invite.split("From: ")[1].split("\r\n")[0], caller_from)
            outsider.send(invite, port)
            at_callee = await callee.receive()
            assert isinstance(at_callee, Request) and at_callee.method == "INVITE"
            callee.send(make_response(at_callee, 180, to_tag="c1").to_bytes())
            assert (await outsider.response()).status == 180
            routes = ", ".join(at_callee.get_all("Record-Route"))

            def bye(phone: _TcpPhone, cseq: int) -> str:
                return _in_dialog(
                    "BYE",
                    f"sip:eve@127.0.0.1:{outsider.port}",
                    phone,
                    from_="<sip:2001@example.com>;tag=c1",
                    to=caller_from,
                    call_id="tcp-call",
                    cseq=cseq,
                    extra=f"Route: {routes}\r\n",
                )

            again = await _TcpPhone.open(tcp)  # a second connection: another port
            assert again.port != callee.port
            again.send(bye(again, 1))
            assert (await again.response()).status == 407
            callee.send(bye(callee, 2))
            assert (await outsider.request()).method == "BYE"
            callee.close()
            again.close()

    run(scenario())


def test_a_related_domain_is_one_of_ours_for_routing_and_for_the_from_check(
    tmp_path: Path,
) -> None:
    # registrar.related_domains share one set of users, served here or by
    # another instance: a call to 2001 at a related domain this server does
    # not serve reaches 2001 (it was refused as a relay), and a request whose
    # From names 2001 there is challenged like one naming 2001 here (it went
    # unchallenged: "domain not served").
    related = 'related_domains = ["example.com", "other.example"]'

    async def scenario() -> None:
        async with running_server(
            tmp_path, registrar=related, auth=AUTH_ON.format(more=""), extra=PASSWORDS
        ) as s:
            port = udp_port(s)
            callee = await _registered_callee(port)
            outsider = await open_phone()
            invite = request("INVITE", "sip:2001@other.example", outsider, call_id="rel-1")
            outsider_from = "<sip:eve@elsewhere.example>;tag=eve1"
            invite = invite.replace(invite.split("From: ")[1].split("\r\n")[0], outsider_from)
            outsider.send(invite, port)
            assert (await callee.request()).method == "INVITE"

            spoof = request("MESSAGE", "sip:2001@example.com", outsider, call_id="rel-2")
            spoof = spoof.replace("From: <sip:1001@example.com>", "From: <sip:2001@other.example>")
            outsider.send(spoof, port)
            assert (await outsider.response()).status == 407

    run(scenario())
