"""Forking, CANCEL and dialogs through the proxy, as the phones on either side
see them (RFC 3261 16.6-16.11, RFC 3326, RFC 4320, RFC 5393)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from centrex.config import parse_settings
from centrex.server import Server
from centrex.sip.build import make_response
from centrex.sip.message import Request
from centrex.sip.parser import parse_message
from centrex.transport.selfsigned import make_self_signed
from tests.transport.helpers import read_message

from .harness import Phone, open_phone, register, request, running_server, udp_port


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


async def _silent(phone: Phone, seconds: float = 0.5) -> bool:
    """True when nothing reaches ``phone`` for ``seconds``."""
    await asyncio.sleep(seconds)
    return phone.inbox.empty()


async def _phones_of(server: Server, user: str, count: int) -> list[Phone]:
    """``count`` phones registered as ``user``, in the order they registered."""
    phones = []
    for _ in range(count):
        phone = await open_phone()
        assert (await register(server, phone, user)).status == 200
        phones.append(phone)
    return phones


def _in_dialog(method: str, uri: str, phone: Phone, route: str, call_id: str, cseq: int) -> str:
    return request(
        method,
        uri,
        phone,
        to="sip:1002@example.com",
        call_id=call_id,
        cseq=cseq,
        extra=f"Route: {route}\r\n",
    ).replace("To: <sip:1002@example.com>", "To: <sip:1002@example.com>;tag=b2")


def test_a_bye_that_passes_the_proxy_twice_is_no_loop(tmp_path: Path) -> None:
    """A record-routing element (an app server) between two passes through the
    proxy: the callee's BYE comes back to the proxy with fewer Route values
    and must reach the caller, not get 482 (16.3 step 4, 16.6 step 8)."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller, app, bob = await open_phone(), await open_phone(), await open_phone()
            await register(server, app, "1002")
            await register(server, bob, "1003")
            caller.send(request("INVITE", "sip:1002@example.com", caller, call_id="sp"), port)
            first = await app.request()
            # The app server stays in the dialog and retargets the call to 1003.
            first.set_uri("sip:1003@example.com")
            first.add_record_route(f"<sip:127.0.0.1:{app.port};lr;app>")
            first.push_via(f"SIP/2.0/UDP 127.0.0.1:{app.port};branch=z9hG4bKapp1;rport")
            app.send(first.to_bytes(), port)
            second = await bob.request()
            assert second.method == "INVITE"
            route_set = second.get_all("Record-Route")
            assert len(route_set) == 3  # the proxy, the app server, the proxy

            # The callee's side of the dialog: From is the INVITE's To (the app
            # server retargeted the Request-URI only), To the caller's From.
            caller_from = second.get("From") or ""
            bye = request(
                "BYE",
                f"sip:1001@127.0.0.1:{caller.port}",
                bob,
                user="1002",
                to="sip:1001@example.com",
                call_id="sp",
                cseq=1,
                extra="".join(f"Route: {value}\r\n" for value in route_set),
            ).replace("To: <sip:1001@example.com>", f"To: {caller_from}")
            bob.send(bye, port)
            at_app = await app.request()
            assert at_app.method == "BYE"
            # The app server takes its own Route off and sends it back.
            (rest,) = at_app.get_all("Route")[1:]
            at_app.remove("Route")
            at_app.add("Route", rest)
            at_app.push_via(f"SIP/2.0/UDP 127.0.0.1:{app.port};branch=z9hG4bKapp2;rport")
            app.send(at_app.to_bytes(), port)
            at_caller = await caller.request()
            assert at_caller.method == "BYE"
            assert await _silent(app, 0.2)  # no 482 came back

    run(scenario())


def test_an_ack_is_not_relayed_without_our_dialog_token(tmp_path: Path) -> None:
    """docs/security.md: only requests in a dialog the proxy record-routed follow
    their route set elsewhere; an ACK is no exception."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            attacker, victim = await open_phone(), await open_phone()
            for routes in (
                [f"<sip:127.0.0.1:{victim.port};lr>"],
                [f"<sip:127.0.0.1:{port};lr>", f"<sip:127.0.0.1:{victim.port};lr>"],
                [f"<sip:127.0.0.1:{port};lr;cxd=forged>", f"<sip:127.0.0.1:{victim.port};lr>"],
            ):
                ack = request(
                    "ACK",
                    f"sip:victim@127.0.0.1:{victim.port}",
                    attacker,
                    to="sip:victim@elsewhere.example",
                    extra="".join(f"Route: {route}\r\n" for route in routes),
                    body="hello",
                ).replace("To: <sip:victim@elsewhere.example>", "To: <sip:victim@x>;tag=2")
                attacker.send(ack, port)
            assert await _silent(victim)

    run(scenario())


def test_an_ack_to_a_served_users_address_reaches_the_phone(tmp_path: Path) -> None:
    """A callee whose 200 gave its address of record as Contact: the caller's
    ACK goes to that address and is delivered like the BYE would be (16.11)."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller, callee = await open_phone(), await open_phone()
            await register(server, callee, "1002")
            caller.send(request("INVITE", "sip:1002@example.com", caller, call_id="ak"), port)
            invite = await callee.request()
            (record_route,) = invite.get_all("Record-Route")
            ack = _in_dialog("ACK", "sip:1002@example.com", caller, record_route, "ak", 1)
            caller.send(ack, port)
            delivered = await callee.request()
            assert delivered.method == "ACK"
            assert delivered.uri == f"sip:1002@127.0.0.1:{callee.port}"

    run(scenario())


def test_a_forked_message_gets_one_final_response(tmp_path: Path) -> None:
    """16.7 step 5: of a non-INVITE's finals only the first goes upstream."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller = await open_phone()
            phones = await _phones_of(server, "1002", 2)
            caller.send(request("MESSAGE", "sip:1002@example.com", caller, body="x"), port)
            for n, phone in enumerate(phones):
                message = await phone.request()
                phone.send(make_response(message, 200, to_tag=f"m{n}").to_bytes(), port)
            assert (await caller.response()).status == 200
            assert await _silent(caller)

    run(scenario())


def test_max_breadth_limits_the_branches_pending_at_once(tmp_path: Path) -> None:
    """RFC 5393: no more parallel branches than the request's Max-Breadth, their
    values adding up to it; the rest are tried as the first ones end."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller = await open_phone()
            phones = await _phones_of(server, "1002", 3)
            invite = request("INVITE", "sip:1002@example.com", caller, extra="Max-Breadth: 2\r\n")
            caller.send(invite, port)
            await asyncio.sleep(0.3)
            first = [phone for phone in phones if not phone.inbox.empty()]
            assert len(first) == 2
            got = [await phone.request() for phone in first]
            assert [r.get("Max-Breadth") for r in got] == ["1", "1"]
            for n, (phone, branch) in enumerate(zip(first, got, strict=True)):
                phone.send(make_response(branch, 486, to_tag=f"b{n}").to_bytes(), port)
            (last,) = [phone for phone in phones if phone not in first]
            third = await last.request()
            assert third.method == "INVITE"
            assert third.get("Max-Breadth") == "2"

    run(scenario())


def test_max_breadth_is_added_and_shared_and_zero_is_440(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller = await open_phone()
            phones = await _phones_of(server, "1002", 3)
            caller.send(request("MESSAGE", "sip:1002@example.com", caller, body="x"), port)
            got = [await phone.request() for phone in phones]
            assert [r.get("Max-Breadth") for r in got] == ["20", "20", "20"]
            for n, (phone, message) in enumerate(zip(phones, got, strict=True)):
                phone.send(make_response(message, 200, to_tag=f"m{n}").to_bytes(), port)
            assert (await caller.response()).status == 200

            zero = request("INVITE", "sip:1002@example.com", caller, extra="Max-Breadth: 0\r\n")
            caller.send(zero, port)
            assert (await caller.response()).status == 440
            assert all([await _silent(phone, 0.1) for phone in phones])

    run(scenario())


def test_a_challenge_wins_over_busy_whichever_branch_gave_it(tmp_path: Path) -> None:
    """16.7 step 6: within the 4xx class a 401/407 (and 415, 420, 484) is
    preferred, as it tells the caller how to try again."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller = await open_phone()
            phones = await _phones_of(server, "1002", 2)
            for challenger in (0, 1):
                caller.send(request("INVITE", "sip:1002@example.com", caller), port)
                for n, phone in enumerate(phones):
                    invite = await phone.request()
                    if n == challenger:
                        answer = make_response(
                            invite,
                            407,
                            to_tag=f"c{n}",
                            headers=[("Proxy-Authenticate", 'Digest realm="gw", nonce="n1"')],
                        )
                    else:
                        answer = make_response(invite, 486, to_tag=f"c{n}")
                    phone.send(answer.to_bytes(), port)
                final = await caller.response()
                assert final.status == 407
                assert final.get("Proxy-Authenticate") == 'Digest realm="gw", nonce="n1"'
                for phone in phones:
                    assert (await phone.request()).method == "ACK"

    run(scenario())


@pytest.mark.parametrize("late", [487, 200])
def test_cancel_passes_its_reason_on_and_the_caller_waits_for_a_silent_branch(
    tmp_path: Path, late: int
) -> None:
    """RFC 3326 2: the caller's Reason is copied into the proxy's CANCELs. A
    branch that has not answered at all may not be cancelled yet (9.1), and
    it may still answer 2xx (16.7 step 5): the caller's final response waits
    for it (16.7 step 6). When it rings it is cancelled; its 487 ends the
    request, or its 200 reaches the caller with no 487 before it (it used to
    get a 487 at once, then that 200)."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller = await open_phone()
            ringing, silent = await _phones_of(server, "1002", 2)
            invite = request("INVITE", "sip:1002@example.com", caller, call_id="cx")
            caller.send(invite, port)
            at_ringing = await ringing.request()
            at_silent = await silent.request()
            ringing.send(make_response(at_ringing, 180, to_tag="r").to_bytes(), port)
            assert (await caller.response()).status == 180

            reason = 'Q.850;cause=16;text="Normal call clearing"'
            caller.send(
                invite.replace("INVITE sip", "CANCEL sip")
                .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
                .replace("Content-Length: 0", f"Reason: {reason}\r\nContent-Length: 0"),
                port,
            )
            assert (await caller.response()).status == 200  # the CANCEL's
            cancel = await ringing.request()
            assert cancel.method == "CANCEL"
            assert cancel.get("Reason") == reason
            ringing.send(make_response(cancel, 200, to_tag="r").to_bytes(), port)
            ringing.send(make_response(at_ringing, 487, to_tag="r").to_bytes(), port)
            with pytest.raises(TimeoutError):  # the silent branch is pending
                await caller.response(timeout=0.5)

            if late == 200:
                silent.send(make_response(at_silent, 200, to_tag="s").to_bytes(), port)
                assert (await caller.response()).status == 200
                with pytest.raises(TimeoutError):
                    await caller.response(timeout=0.5)
                return
            silent.send(make_response(at_silent, 180, to_tag="s").to_bytes(), port)
            late_cancel = await silent.request()
            for _ in range(3):  # (after the INVITE's retransmissions, if any)
                if late_cancel.method == "CANCEL":
                    break
                late_cancel = await silent.request()
            assert late_cancel.method == "CANCEL"
            assert late_cancel.get("Reason") == reason
            silent.send(make_response(late_cancel, 200, to_tag="s").to_bytes(), port)
            silent.send(make_response(at_silent, 487, to_tag="s").to_bytes(), port)
            statuses = [(await caller.response(timeout=2.0)).status for _ in range(2)]
            assert statuses == [180, 487]

    run(scenario())


def test_a_cancelled_call_whose_silent_branch_then_fails_ends_with_our_487(
    tmp_path: Path,
) -> None:
    """16.10: the caller who cancelled gets 487, not the 500 a failed branch
    would make; it is the proxy's own, with the To tag of the 200 to the
    CANCEL (9.2: SHOULD be the same)."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller = await open_phone()
            (silent,) = await _phones_of(server, "1002", 1)
            invite = request("INVITE", "sip:1002@example.com", caller, call_id="cf")
            caller.send(invite, port)
            at_silent = await silent.request()
            caller.send(
                invite.replace("INVITE sip", "CANCEL sip").replace("1 INVITE", "1 CANCEL"), port
            )
            cancelled = await caller.response()
            assert cancelled.status == 200
            silent.send(make_response(at_silent, 503, to_tag="s").to_bytes(), port)
            final = await caller.response()
            assert (final.status, final.to_tag) == (487, cancelled.to_tag)

    run(scenario())


def _drain(phone: Phone) -> list[object]:
    out: list[object] = []
    while not phone.inbox.empty():
        out.append(phone.inbox.get_nowait())
    return out


def test_the_branches_left_when_one_answers_are_cancelled_as_completed_elsewhere(
    tmp_path: Path,
) -> None:
    """RFC 3326: the Reason a phone reads to not show a missed call."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller = await open_phone()
            desk, mobile = await _phones_of(server, "1002", 2)
            caller.send(request("INVITE", "sip:1002@example.com", caller), port)
            at_desk, at_mobile = await desk.request(), await mobile.request()
            mobile.send(make_response(at_mobile, 180, to_tag="m").to_bytes(), port)
            desk.send(make_response(at_desk, 200, to_tag="d").to_bytes(), port)
            cancel = await mobile.request()
            assert cancel.method == "CANCEL"
            assert cancel.get("Reason") == 'SIP;cause=200;text="Call completed elsewhere"'

    run(scenario())


def test_timer_c_on_a_silent_branch_cancels_it_if_it_rings_later(tmp_path: Path) -> None:
    """16.8: a branch with no provisional when Timer C fires counts as 408; a
    phone that rings after the caller was told so is cancelled, and its 180
    is not passed on."""

    async def scenario() -> None:
        async with running_server(tmp_path, ringing=1) as server:
            port = udp_port(server)
            caller, callee = await open_phone(), await open_phone()
            await register(server, callee, "1002")
            caller.send(request("INVITE", "sip:1002@example.com", caller), port)
            invite = await callee.request()
            assert (await caller.response(timeout=3.0)).status == 408
            callee.send(make_response(invite, 180, to_tag="late").to_bytes(), port)
            while (late := await callee.request()).method == "INVITE":
                pass  # (retransmissions of the INVITE)
            assert late.method == "CANCEL"
            assert all(isinstance(m, Request) or m.status != 180 for m in _drain(caller))

    run(scenario())


def test_a_message_that_times_out_downstream_gets_no_408(tmp_path: Path) -> None:
    """RFC 4320 4.2: no 408 to a non-INVITE request; the proxy's transaction
    is let go all the same."""

    async def scenario() -> None:
        async with running_server(tmp_path, transaction=1) as server:
            port = udp_port(server)
            caller, callee = await open_phone(), await open_phone()
            await register(server, callee, "1002")
            caller.send(request("MESSAGE", "sip:1002@example.com", caller, body="x"), port)
            await callee.request()
            assert await _silent(caller, 2.0)
            assert server.proxy is not None
            assert server.proxy.active_calls == 0

    run(scenario())


def test_a_response_with_a_sent_by_we_did_not_write_is_discarded(tmp_path: Path) -> None:
    """18.1.2: the top Via's sent-by must be ours, whatever the branch says."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller, callee = await open_phone(), await open_phone()
            await register(server, callee, "1002")
            caller.send(request("MESSAGE", "sip:1002@example.com", caller, body="x"), port)
            message = await callee.request()
            forged = make_response(message, 486, to_tag="f").to_bytes()
            ours = f"127.0.0.1:{port};branch=".encode()
            assert ours in forged
            callee.send(forged.replace(ours, b"10.9.9.9:5060;branch=", 1), port)
            assert await _silent(caller)
            callee.send(make_response(message, 486, to_tag="f").to_bytes(), port)
            assert (await caller.response()).status == 486

    run(scenario())


def test_a_sips_call_goes_only_to_phones_registered_over_tls(tmp_path: Path) -> None:
    """RFC 5630 / 3261 16.6 step 4: a SIPS Request-URI is reached over TLS, with
    a SIPS Record-Route; a user registered only over UDP gets 480 with
    Warning 380 "SIPS Not Allowed" instead of a call in clear text."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, "127.0.0.1", days=1)
    text = (
        '[server]\ndomains = ["example.com"]\n'
        f'data_dir = "{tmp_path / "data"}"\n'
        '[network]\nlisten = ["udp:127.0.0.1:0", "tls:127.0.0.1:0"]\n'
        f'tls_certificate = "{cert}"\ntls_private_key = "{key}"\n'
        "[auth]\nenabled = false\n"
        '[[users]]\nuser = "1002"\n[[users]]\nuser = "1003"\n'
    )

    async def scenario() -> None:
        server = Server(parse_settings(text))
        await server.start()
        try:
            port = udp_port(server)
            tls_port = server.transport.bound_port("tls")
            trust = ssl.create_default_context(cafile=str(cert))
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", tls_port, ssl=trust, server_hostname="127.0.0.1"
            )
            local = writer.get_extra_info("sockname")
            secure = type("Tls", (), {"host": "127.0.0.1", "port": local[1]})()
            registration = request(
                "REGISTER",
                "sips:example.com",
                secure,
                user="1002",
                to="sips:1002@example.com",
                extra="Expires: 60\r\n",
            ).replace("SIP/2.0/UDP", "SIP/2.0/TLS")
            writer.write(registration.encode())
            assert parse_message(await read_message(reader), stream=True).status == 200
            caller, clear = await open_phone(), await open_phone()
            await register(server, clear, "1003")

            caller.send(request("INVITE", "sips:1003@example.com", caller), port)
            refused = await caller.response()
            assert refused.status == 480
            assert refused.get("Warning") == '380 example.com "SIPS Not Allowed"'

            caller.send(request("INVITE", "sips:1002@example.com", caller), port)
            invite = parse_message(await read_message(reader), stream=True)
            assert isinstance(invite, Request) and invite.method == "INVITE"
            assert any(v.startswith("<sips:") for v in invite.get_all("Record-Route"))
            writer.close()
        finally:
            await server.stop()

    run(scenario())


def test_a_datagram_whose_via_says_tcp_is_answered_over_udp_to_its_source(
    tmp_path: Path,
) -> None:
    """No connection is opened to wherever a forged Via points: the answer goes
    back as the request came."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            options = request("OPTIONS", "sip:example.com", phone).replace(
                f"SIP/2.0/UDP 127.0.0.1:{phone.port}", "SIP/2.0/TCP 127.0.0.1:9"
            )
            phone.send(options, udp_port(server))
            assert (await phone.response()).status == 200
            assert server.transport.connection_count == 0

    run(scenario())


def test_an_ack_to_a_served_user_with_no_phone_is_not_sent_back_to_the_server(
    tmp_path: Path,
) -> None:
    # With relaying allowed, it went to the server's own address again and
    # again, until Max-Forwards ran out (71 times).
    text = (
        '[server]\ndomains = ["example.com"]\n'
        f'data_dir = "{tmp_path / "data"}"\nallow_relay = true\n'
        '[network]\nlisten = ["udp:127.0.0.1:0"]\n[auth]\nenabled = false\n'
        '[[users]]\nuser = "1002"\n'
    )

    async def scenario() -> None:
        server = Server(parse_settings(text))
        await server.start()
        caller = await open_phone()
        try:
            port = udp_port(server)
            before = server.transport.stats.messages
            target = f"sip:1002@127.0.0.1:{port}"
            ack = request("ACK", target, caller).replace(f"To: <{target}>", f"To: <{target}>;tag=x")
            caller.send(ack, port)
            await asyncio.sleep(0.5)
            # The caller's ACK, and nothing the server sent itself.
            assert server.transport.stats.messages - before == 1
        finally:
            caller.close()
            await server.stop()

    run(scenario())


def test_an_ack_without_a_to_tag_is_dropped(tmp_path: Path) -> None:
    # Every final response carries a To tag, so an ACK without one
    # acknowledges nothing: it used to reach the registered phone.
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            callee, caller = await open_phone(), await open_phone()
            assert (await register(server, callee, "1002")).status == 200
            target = "sip:1002@example.com"
            caller.send(request("ACK", target, caller), port)
            with pytest.raises(TimeoutError):
                await callee.request(timeout=0.5)
            tagged = request("ACK", target, caller).replace(
                f"To: <{target}>", f"To: <{target}>;tag=t"
            )
            caller.send(tagged, port)
            assert (await callee.request()).method == "ACK"

    run(scenario())
