"""Registrar presence events on a real server over loopback UDP (issue 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from centrex.server import Server
from centrex.sip.build import make_response
from centrex.sip.message import Request

from .harness import Phone, open_phone, register, request, running_server, udp_port


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


async def notify(phone: Phone, port: int, timeout: float = 2.0) -> Request:
    """The next NOTIFY, answered 200 as a phone would."""
    while True:
        message = await phone.request(timeout)
        if message.method == "NOTIFY":
            phone.send(make_response(message, 200).to_bytes(), port)
            return message


async def no_notify(phone: Phone, timeout: float = 1.0) -> bool:
    try:
        await phone.request(timeout)
    except TimeoutError:
        return True
    return False


def subscribe(phone: Phone, event: str, expires: int, **kwargs: object) -> str:
    return request(
        "SUBSCRIBE",
        "sip:Registrar@example.com",
        phone,
        extra=f"Event: {event}\r\nExpires: {expires}\r\n",
        **kwargs,  # type: ignore[arg-type]
    )


def scenario_for(compat: str) -> object:
    async def scenario(tmp_path: Path) -> None:
        registrar = f'presence_compat = "{compat}"' if compat else ""
        async with running_server(tmp_path, registrar=registrar) as server:
            port = udp_port(server)
            watcher, bob, carol = await open_phone(), await open_phone(), await open_phone()
            assert (await register(server, watcher, "1001")).status == 200
            original = subscribe(watcher, "user-available", 3600, call_id="sub-a")
            watcher.send(original, port)
            ok = await watcher.response()
            assert ok.status == 200
            first = await notify(watcher, port)
            assert first.get("Event") == "user-available;param=1001|Alice"
            if compat:
                assert first.call_id != "sub-a"
                assert first.to_tag is None
                assert "Subscription-State" not in first
            else:
                assert first.call_id == "sub-a"
                assert first.to_tag is not None
                assert (first.get("Subscription-State") or "").startswith("active")

            watcher.send(subscribe(watcher, "user-unavailable", 3600, call_id="sub-u"), port)
            assert (await watcher.response()).status == 200
            offline = await notify(watcher, port)
            names = (offline.get("Event") or "").split("param=")[1].split("|")[0::2]
            assert sorted(names) == ["1002", "1003"]

            assert (await register(server, bob, "1002")).status == 200
            joined = await notify(watcher, port)
            assert joined.get("Event") == "user-available;param=1002|Bob"

            assert (await register(server, bob, "1002", expires=0)).status == 200
            left = await notify(watcher, port)
            assert left.get("Event") == "user-unavailable;param=1002|Bob"

            # Expires 0 ends the user-available subscription.
            to_tag = "" if compat else f";tag={ok.to_tag}"
            unsubscribe = (
                original.replace("Expires: 3600", "Expires: 0")
                .replace("CSeq: 1 SUBSCRIBE", "CSeq: 2 SUBSCRIBE")
                .replace("branch=z9hG4bKt", "branch=z9hG4bKu")
                .replace(
                    "To: <sip:Registrar@example.com>", f"To: <sip:Registrar@example.com>{to_tag}"
                )
            )
            watcher.send(unsubscribe, port)
            assert (await watcher.response()).status == 200
            if not compat:
                final = await notify(watcher, port)
                assert (final.get("Subscription-State") or "").startswith("terminated")
            assert (await register(server, carol, "1003")).status == 200
            assert await no_notify(watcher)

    return scenario


def test_user_available_and_unavailable_in_the_rfc_6665_form(tmp_path: Path) -> None:
    run(scenario_for("")(tmp_path))  # type: ignore[operator]


def test_user_available_and_unavailable_in_the_lanscape_form(tmp_path: Path) -> None:
    run(scenario_for("lanscape")(tmp_path))  # type: ignore[operator]


def test_only_users_of_the_domain_may_subscribe(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            stranger = await open_phone()
            data = subscribe(stranger, "user-available", 3600).replace(
                "From: <sip:1001@example.com>", "From: <sip:eve@elsewhere.example>"
            )
            stranger.send(data, udp_port(server))
            assert (await stranger.response()).status == 403

    run(scenario())


async def watching(server: Server) -> tuple[int, Phone]:
    """1001 registered and subscribed to user-available, its initial list read."""
    port = udp_port(server)
    watcher = await open_phone()
    assert (await register(server, watcher, "1001")).status == 200
    watcher.send(subscribe(watcher, "user-available", 3600), port)
    assert (await watcher.response()).status == 200
    await notify(watcher, port)  # the initial list
    return port, watcher


def test_registrations_in_quick_succession_reach_a_watcher_together(tmp_path: Path) -> None:
    """The throttle (notify_min_interval_ms, default 1 s): the first change
    after a quiet spell is told at once, the next ones within the interval
    wait and arrive in one NOTIFY."""

    async def scenario() -> None:
        dave = '[[users]]\nuser = "1004"\ndescription = "Dave"\n'
        async with running_server(tmp_path, extra=dave) as server:
            port, watcher = await watching(server)
            bob, carol, dave_phone = [await open_phone() for _ in range(3)]
            loop = asyncio.get_running_loop()
            assert (await register(server, bob, "1002")).status == 200
            started = loop.time()
            first = await notify(watcher, port, timeout=0.5)
            assert first.get("Event") == "user-available;param=1002|Bob"
            assert (await register(server, carol, "1003")).status == 200
            assert (await register(server, dave_phone, "1004")).status == 200
            together = await notify(watcher, port, timeout=3.0)
            waited = loop.time() - started
            assert together.get("Event") == "user-available;param=1003|Carol|1004|Dave"
            assert 0.9 <= waited <= 2.5

    run(scenario())


def test_a_change_held_while_the_watcher_was_answering_goes_when_its_interval_ends(
    tmp_path: Path,
) -> None:
    """The hold starts when the watcher's answer comes in (not at a
    registration): the loop still sends the held NOTIFY on time (at the
    interval, at the subscription's phase of the next one), not at a later
    housekeeping tick."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port, watcher = await watching(server)
            bob, carol = [await open_phone() for _ in range(2)]
            loop = asyncio.get_running_loop()
            assert (await register(server, bob, "1002")).status == 200
            started = loop.time()
            first = await watcher.request(0.5)  # not answered yet
            assert first.get("Event") == "user-available;param=1002|Bob"
            assert (await register(server, carol, "1003")).status == 200
            await asyncio.sleep(0.3)
            watcher.send(make_response(first, 200).to_bytes(), port)  # the hold starts here
            held = await notify(watcher, port, timeout=3.0)
            waited = loop.time() - started
            assert held.get("Event") == "user-available;param=1003|Carol"
            assert 0.9 <= waited <= 2.0 + 0.3

    run(scenario())


def test_a_subscribe_read_in_the_turn_of_a_register_lists_that_user(tmp_path: Path) -> None:
    """The REGISTER is answered before the SUBSCRIBE is read, both in one turn
    of the loop (one read of the socket): the first NOTIFY lists the user,
    although registration events reach presence on a later turn."""
    from centrex.sip.parser import parse_message
    from centrex.transport.address import LocalSocket, Peer

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            watcher = await open_phone()
            peer = Peer("udp", watcher.host, watcher.port)
            local = LocalSocket("udp", "127.0.0.1", port)
            registering = request(
                "REGISTER", "sip:example.com", watcher, to="sip:1001@example.com",
                extra="Expires: 60\r\n", call_id="reg-1",
            )  # fmt: skip
            for text in (registering, subscribe(watcher, "user-available", 3600, call_id="sub")):
                server._on_message(parse_message(text.encode()), peer, local)
            assert (await watcher.response()).status == 200  # the REGISTER's
            assert (await watcher.response()).status == 200  # the SUBSCRIBE's
            first = await notify(watcher, port)
            assert first.get("Event") == "user-available;param=1001|Alice"

    run(scenario())


def test_the_server_names_its_event_packages_and_holds_no_other_dialogs(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            phone = await open_phone()
            # RFC 6665 4.4.4: OPTIONS lists the packages the server answers.
            for uri in ("sip:example.com", "sip:Registrar@example.com"):
                # (the registrar's own URI too: it is the server, not a user)
                phone.send(request("OPTIONS", uri, phone), port)
                answer = await phone.response()
                assert answer.status == 200
                assert "user-available" in (answer.get("Allow-Events") or "")
            # A NOTIFY in a dialog the registrar never had: 481 (RFC 3261
            # 12.2.2), not the 404 of a user with no phone.
            stray = request("NOTIFY", "sip:Registrar@example.com", phone, extra="Event: x\r\n")
            to = "To: <sip:Registrar@example.com>"
            phone.send(stray.replace(to, to + ";tag=gone"), port)
            assert (await phone.response()).status == 481

    run(scenario())


def test_watchers_hear_of_users_who_expired_while_the_server_was_down(tmp_path: Path) -> None:
    # They were not told: the restarted server dropped the expired bindings
    # as it read its recovery file, and a phone kept showing the user online.
    async def scenario() -> None:
        watcher, bob = await open_phone(), await open_phone()
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            assert (await register(server, watcher, "1001")).status == 200
            watcher.send(subscribe(watcher, "user-unavailable", 3600, call_id="sub-d"), port)
            assert (await watcher.response()).status == 200
            await notify(watcher, port)  # the first list
            assert (await register(server, bob, "1002", expires=1)).status == 200
        await asyncio.sleep(1.5)  # bob's binding runs out while no server runs
        async with running_server(tmp_path) as server:
            left = await notify(watcher, udp_port(server), timeout=3.0)
            assert left.get("Event") == "user-unavailable;param=1002|Bob"

    run(scenario())


def test_a_subscribe_the_registrar_answers_refuses_an_extension_it_lacks(
    tmp_path: Path,
) -> None:
    # RFC 3261 8.2.2.3: the server is the user agent of its subscriptions, so
    # a Require it does not support gets 420 with Unsupported, and no NOTIFY.
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            watcher = await open_phone()
            text = subscribe(watcher, "user-available", 3600, call_id="sub-r")
            watcher.send(text.replace("Expires:", "Require: foo, bar\r\nExpires:", 1), port)
            answer = await watcher.response()
            assert answer.status == 420
            assert answer.get("Unsupported") == "foo, bar"
            assert await no_notify(watcher)
            # The same subscription without it is taken.
            watcher.send(subscribe(watcher, "user-available", 3600, call_id="sub-r2"), port)
            assert (await watcher.response()).status == 200

    run(scenario())
