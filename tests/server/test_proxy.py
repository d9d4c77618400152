"""The proxy pipeline on a real server over loopback UDP (RFC 3261 section 16)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from centrex.server import Server
from centrex.sip.build import make_response
from centrex.sip.message import Request

from .harness import Phone, open_phone, register, request, running_server, udp_port


def _with_from(data: str, value: str) -> str:
    """Request text ``data`` with its From replaced by ``value``."""
    line = next(x for x in data.split("\r\n") if x.startswith("From: "))
    return data.replace(line, f"From: {value}")


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_options_to_the_server_lists_its_capabilities(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            phone.send(request("OPTIONS", "sip:example.com", phone), udp_port(server))
            response = await phone.response()
            assert response.status == 200
            assert "INVITE" in (response.get("Allow") or "")
            assert response.get("Accept") == "application/sdp"
            # RFC 3261 11.2: Accept-Encoding and Accept-Language SHOULD be there.
            assert response.get("Accept-Encoding") == "identity"
            assert response.get("Accept-Language") == "en"

    run(scenario())


def test_max_forwards_zero_is_483(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            data = request("INVITE", "sip:1002@example.com", phone).replace(
                "Max-Forwards: 70", "Max-Forwards: 0"
            )
            phone.send(data, udp_port(server))
            assert (await phone.response()).status == 483

    run(scenario())


def test_unsupported_proxy_require_is_420_listing_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            data = request("INVITE", "sip:1002@example.com", phone, extra="Proxy-Require: foo\r\n")
            phone.send(data, udp_port(server))
            response = await phone.response()
            assert response.status == 420
            assert response.get("Unsupported") == "foo"

    run(scenario())


def test_unknown_user_is_404_and_offline_directory_user_is_480(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            phone.send(request("INVITE", "sip:9999@example.com", phone), udp_port(server))
            assert (await phone.response()).status == 404
            phone.send(request("INVITE", "sip:1002@example.com", phone), udp_port(server))
            assert (await phone.response()).status == 480

    run(scenario())


def test_a_request_uri_of_an_unknown_scheme_is_416_before_the_relay_policy(
    tmp_path: Path,
) -> None:
    # RFC 3261 16.3 step 2 comes before routing (16.5), where relaying is
    # decided: with relaying off, the scheme is still what the answer names.
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            for uri in ("foo:bar@example.com", "tel:+15551234567"):
                data = request("MESSAGE", uri, phone, to="sip:1002@example.com")
                phone.send(data, udp_port(server))
                response = await phone.response()
                assert response.status == 416, (uri, response.status)

    run(scenario())


def test_foreign_domain_is_not_relayed_by_default(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            phone.send(request("MESSAGE", "sip:bob@elsewhere.example", phone), udp_port(server))
            assert (await phone.response()).status == 403

    run(scenario())


def test_invite_reaches_the_registered_contact_with_via_and_record_route(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            caller, callee = await open_phone(), await open_phone()
            assert (await register(server, callee, "1002")).status == 200
            caller.send(request("INVITE", "sip:1002@example.com", caller), udp_port(server))
            trying = await caller.response(skip_100=False)
            assert trying.status == 100
            invite = await callee.request()
            assert isinstance(invite, Request)
            assert invite.uri == f"sip:1002@127.0.0.1:{callee.port}"
            assert len(invite.vias) == 2
            assert invite.top_via.branch is not None
            assert invite.top_via.branch.startswith("z9hG4bK")
            port = udp_port(server)
            (record_route,) = invite.get_all("Record-Route")
            assert record_route.startswith(f"<sip:127.0.0.1:{port};lr;cxd=")
            assert invite.max_forwards == 69

    run(scenario())


def test_a_contact_registered_through_a_path_is_reached_through_its_first_hop(
    tmp_path: Path,
) -> None:
    # RFC 3327 5.3: the Path is the Route set toward the contact, so a
    # request goes to its first hop (an edge proxy), with the Path as Route,
    # even when the REGISTER came from another address of the edge's
    # (trusted); from anyone else, it goes where the REGISTER came from, the
    # Path as Route: a phone must not be able to point the proxy's calls at
    # any host it likes.
    async def scenario() -> None:
        trusted = '[auth]\nenabled = false\ntrusted = ["127.0.0.3/32"]\n'
        async with running_server(tmp_path, auth=trusted) as server:
            port = udp_port(server)
            edge_side, edge, caller = (
                await open_phone("127.0.0.3"),
                await open_phone("127.0.0.4"),
                await open_phone(),
            )
            phone = await open_phone("127.0.0.5")
            path = f"<sip:127.0.0.4:{edge.port};lr>"
            for sender, user in ((edge_side, "1002"), (phone, "1003")):
                sender.send(
                    request(
                        "REGISTER",
                        "sip:example.com",
                        sender,
                        user=user,
                        to=f"sip:{user}@example.com",
                        extra=f"Expires: 60\r\nPath: {path}\r\nSupported: path\r\n",
                    ),
                    port,
                )
                assert (await sender.response()).status == 200
            caller.send(request("MESSAGE", "sip:1002@example.com", caller, body="x"), port)
            at_edge = await edge.request()
            assert at_edge.method == "MESSAGE"
            assert at_edge.get_all("Route") == [path]
            assert at_edge.uri == f"sip:1002@127.0.0.3:{edge_side.port}"
            caller.send(request("MESSAGE", "sip:1003@example.com", caller, body="x"), port)
            at_phone = await phone.request()
            assert at_phone.get_all("Route") == [path]
            with pytest.raises(TimeoutError):
                await edge.request(timeout=0.3)

    run(scenario())


@pytest.mark.parametrize("lr", [";lr", ""])
def test_a_strict_router_upstream_gets_its_request_uri_undone(tmp_path: Path, lr: str) -> None:
    # 16.4: a strict router before us put our Record-Route URI in the
    # Request-URI and the real target last in Route; we put it back. The
    # URI is ours with or without its lr (19.1.4 compares no lr).
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            caller, callee = await open_phone(), await open_phone()
            await register(server, callee, "1002")
            caller.send(request("INVITE", "sip:1002@example.com", caller, call_id="sr"), port)
            invite = await callee.request()
            (record_route,) = invite.get_all("Record-Route")
            callee.send(make_response(invite, 200, to_tag="c").to_bytes(), port)
            ok = await caller.response()
            ours = record_route.strip("<>").replace(";lr", lr)
            contact = f"sip:1002@127.0.0.1:{callee.port}"
            bye = request(
                "BYE", ours, caller, call_id="sr", cseq=2, to="sip:1002@example.com"
            ).replace("To: <sip:1002@example.com>", f"To: <sip:1002@example.com>;tag={ok.to_tag}")
            bye = bye.replace("Max-Forwards", f"Route: <{contact}>\r\nMax-Forwards")
            bye = bye.replace(bye.split("From: ")[1].split("\r\n")[0], invite.get("From") or "")
            caller.send(bye, port)
            at_callee = await callee.request()
            assert (at_callee.method, at_callee.uri) == ("BYE", contact)
            assert "Route" not in at_callee

    run(scenario())


def test_a_loop_back_to_the_proxy_is_482(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            caller, callee = await open_phone(), await open_phone()
            await register(server, callee, "1002")
            caller.send(request("MESSAGE", "sip:1002@example.com", caller), udp_port(server))
            forwarded = await callee.request()
            # The callee, a misconfigured proxy, sends the request straight back
            # for the same address-of-record.
            forwarded.set_uri("sip:1002@example.com")
            forwarded.push_via(f"SIP/2.0/UDP 127.0.0.1:{callee.port};branch=z9hG4bKloop;rport")
            callee.send(forwarded.to_bytes(), udp_port(server))
            response = await callee.response()
            assert response.status == 482

    run(scenario())


async def _message_to_a_registered_callee(server: Server) -> tuple[Phone, Phone, Request]:
    """A caller's MESSAGE to 1002, registered from the callee: as the callee got it."""
    caller, callee = await open_phone(), await open_phone()
    await register(server, callee, "1002")
    caller.send(request("MESSAGE", "sip:1002@example.com", caller, body="hi"), udp_port(server))
    return caller, callee, await callee.request()


def test_responses_are_relayed_upstream_without_the_proxy_via(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            caller, callee, forwarded = await _message_to_a_registered_callee(server)
            callee.send(make_response(forwarded, 486, to_tag="b1").to_bytes(), udp_port(server))
            response = await caller.response()
            assert response.status == 486
            assert len(response.vias) == 1
            assert response.top_via.port == caller.port

    run(scenario())


def test_a_response_with_a_bad_via_is_dropped_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A response whose Via after ours is malformed is discarded (18.1.2), with
    a transaction or without one: not relayed, no error logged, and the
    proxy goes on serving."""

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            caller, callee, forwarded = await _message_to_a_registered_callee(server)
            good = make_response(forwarded, 486, to_tag="b1").to_bytes()
            # The caller's Via (the second) with a port out of range.
            head, sep, tail = good.partition(f"127.0.0.1:{caller.port};".encode())
            assert sep
            bad = head + b"127.0.0.1:99999;" + tail
            callee.send(bad, udp_port(server))
            # Without a transaction: our branch changed, so it matches none.
            callee.send(bad.replace(b"branch=z9hG4bKcx", b"branch=z9hG4bKcy", 1), udp_port(server))
            with pytest.raises(TimeoutError):
                await caller.response(timeout=0.5)
            caller.send(request("OPTIONS", "sip:example.com", caller), udp_port(server))
            assert (await caller.response()).status == 200

    with caplog.at_level(logging.DEBUG, logger="centrex"):
        run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum("bad" in r.getMessage() and "Via" in r.getMessage() for r in caplog.records) == 2


def test_cancel_of_an_unknown_transaction_is_481(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            phone.send(request("CANCEL", "sip:1002@example.com", phone), udp_port(server))
            assert (await phone.response()).status == 481

    run(scenario())


def test_in_dialog_request_follows_its_route_and_our_route_is_removed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            caller, callee = await open_phone(), await open_phone()
            port = udp_port(server)
            await register(server, callee, "1002")
            caller.send(request("INVITE", "sip:1002@example.com", caller, call_id="dlg"), port)
            invite = await callee.request()
            (record_route,) = invite.get_all("Record-Route")
            bye = request(
                "BYE",
                f"sip:1002@127.0.0.1:{callee.port}",
                caller,
                to="sip:1002@example.com",
                call_id="dlg",
                cseq=2,
                extra=f"Route: {record_route}\r\n",
            ).replace("To: <sip:1002@example.com>", "To: <sip:1002@example.com>;tag=b2")
            # The dialog's From, tag and all (RFC 3261 12.2.1.1).
            bye = _with_from(bye, invite.get("From") or "")
            caller.send(bye, port)
            forwarded = await callee.request()
            assert forwarded.method == "BYE"
            assert "Route" not in forwarded

    run(scenario())


def test_a_route_without_our_dialog_token_does_not_make_us_relay(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            caller, victim = await open_phone(), await open_phone()
            port = udp_port(server)
            for route in (
                f"<sip:127.0.0.1:{port};lr>",
                f"<sip:127.0.0.1:{port};lr;cxd=forged>",
                f"<sip:127.0.0.1:{port};lr;cxd=%C3%A9%FF>",  # not ASCII once decoded
                f"<sip:127.0.0.1:{victim.port};lr>",
            ):
                data = request(
                    "BYE",
                    f"sip:x@127.0.0.1:{victim.port}",
                    caller,
                    to="sip:x@elsewhere.example",
                    extra=f"Route: {route}\r\n",
                ).replace("To: <sip:x@elsewhere.example>", "To: <sip:x@elsewhere.example>;tag=t")
                caller.send(data, port)
                assert (await caller.response()).status == 403
            assert victim.inbox.empty()

    run(scenario())


def test_ringing_timeout_cancels_the_callee_and_answers_408(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path, ringing=1) as server:
            caller, callee = await open_phone(), await open_phone()
            await register(server, callee, "1002")
            port = udp_port(server)
            caller.send(request("INVITE", "sip:1002@example.com", caller), port)
            invite = await callee.request()

            callee.send(make_response(invite, 180, to_tag="r1").to_bytes(), port)
            assert (await caller.response()).status == 180
            cancel = await callee.request(timeout=3.0)
            assert cancel.method == "CANCEL"
            assert cancel.branch == invite.branch
            callee.send(make_response(cancel, 200, to_tag="r1").to_bytes(), port)
            callee.send(make_response(invite, 487, to_tag="r1").to_bytes(), port)
            assert (await caller.response()).status == 408
            ack = await callee.request()
            assert ack.method == "ACK"

    run(scenario())


def test_registered_contacts_are_tried_in_q_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            caller, desk, mobile = await open_phone(), await open_phone(), await open_phone()
            port = udp_port(server)
            for phone, q in ((desk, "1.0"), (mobile, "0.5")):
                phone.send(
                    request(
                        "REGISTER",
                        "sip:example.com",
                        phone,
                        user="1002",
                        to="sip:1002@example.com",
                        extra="Expires: 60\r\n",
                    ).replace(f"127.0.0.1:{phone.port}>", f"127.0.0.1:{phone.port}>;q={q}"),
                    port,
                )
                assert (await phone.response()).status == 200
            caller.send(request("MESSAGE", "sip:1002@example.com", caller, body="x"), port)
            first = await desk.request()

            desk.send(make_response(first, 480, to_tag="d").to_bytes(), port)
            second = await mobile.request()
            mobile.send(make_response(second, 200, to_tag="m").to_bytes(), port)
            assert (await caller.response()).status == 200

    run(scenario())


def test_sip_trace_shows_the_bytes_as_they_crossed_the_wire(tmp_path: Path) -> None:
    async def scenario() -> None:
        extra = "[logging]\nsip_trace = true\n"
        async with running_server(tmp_path, extra=extra) as server:
            phone = await open_phone()
            phone.send(
                request("OPTIONS", "sip:example.com", phone, call_id="traced"), udp_port(server)
            )
            assert (await phone.response()).status == 200
        trace = (tmp_path / "data" / "sip-trace.log").read_text()
        received, sent = trace.split(">>>> TxTxTx...")
        assert received.startswith(f"<<<< RxRxRx... (0 Ms, From: 127.0.0.1:{phone.port}) <<<<\n")
        assert "Call-ID: traced" in received
        assert "received=" not in received  # as sent by the phone, before Centrex stamped it
        assert sent.startswith(" (") and f"To: 127.0.0.1:{phone.port}) >>>>\nSIP/2.0 200 OK" in sent

    run(scenario())


def test_sighup_reload_takes_new_users_from_the_settings_file(tmp_path: Path) -> None:
    from centrex.config import load_settings
    from centrex.server import Server

    async def scenario() -> None:
        path = tmp_path / "centrex.toml"
        base = (
            '[server]\ndomains = ["example.com"]\n'
            f'data_dir = "{tmp_path / "data"}"\n'
            '[network]\nlisten = ["udp:127.0.0.1:0"]\n[auth]\nenabled = false\n'
        )
        path.write_text(base + '[[users]]\nuser = "1001"\n')
        server = Server(load_settings(path), path)
        await server.start()
        try:
            phone = await open_phone()
            port = udp_port(server)
            phone.send(request("INVITE", "sip:1005@example.com", phone), port)
            assert (await phone.response()).status == 404
            path.write_text(base + '[[users]]\nuser = "1001"\n[[users]]\nuser = "1005"\n')
            server.reload_directory(path)
            phone.send(request("INVITE", "sip:1005@example.com", phone), port)
            assert (await phone.response()).status == 480  # known now, not registered
        finally:
            await server.stop()

    run(scenario())


def test_a_503_from_the_only_callee_reaches_the_caller_as_500(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            caller, callee = await open_phone(), await open_phone()
            await register(server, callee, "1002")
            port = udp_port(server)
            caller.send(request("MESSAGE", "sip:1002@example.com", caller, body="x"), port)
            forwarded = await callee.request()

            overloaded = make_response(forwarded, 503, to_tag="o")
            overloaded.add("Retry-After", "120")
            callee.send(overloaded.to_bytes(), port)
            response = await caller.response()
            assert (response.status, response.reason) == (500, "Server Internal Error")
            # 16.7 step 6: generated by the proxy, not the callee's 503 renamed.
            assert response.to_tag not in (None, "o")
            assert "Retry-After" not in response
            assert "Contact" not in response

    run(scenario())


def test_calls_route_through_the_database_store(tmp_path: Path) -> None:
    async def scenario() -> None:
        registrar = (
            'store = "database"\n[registrar.database]\n'
            f'url = "sqlite+aiosqlite:///{tmp_path / "loc.db"}"\nmigrate_on_start = true\n'
        )
        async with running_server(tmp_path, registrar=registrar) as server:
            caller, callee = await open_phone(), await open_phone()
            assert (await register(server, callee, "1002")).status == 200
            caller.send(
                request("MESSAGE", "sip:1002@example.com", caller, body="x"), udp_port(server)
            )
            forwarded = await callee.request()
            assert forwarded.uri == f"sip:1002@127.0.0.1:{callee.port}"

    run(scenario())


def test_a_retransmitted_register_gets_the_same_200_again(tmp_path: Path) -> None:
    # The completed transaction keeps answering retransmissions (Timer J)
    # after it let go of its parsed headers.
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            phone = await open_phone()
            data = request("REGISTER", "sip:example.com", phone, to="sip:1001@example.com")
            phone.send(data, udp_port(server))
            first = await phone.response()
            assert first.status == 200
            phone.send(data, udp_port(server))
            again = await phone.response()
            assert again.to_bytes() == first.to_bytes()
            assert len(await server.store.lookup("sip:1001@example.com")) == 1

    run(scenario())


def test_headers_of_a_registered_contact_stay_out_of_the_request_uri(tmp_path: Path) -> None:
    # RFC 3261 19.1.1: a Request-URI carries no headers (RFC 4475 escruri).
    # A contact registered with some used to be copied whole into the
    # Request-URI of every request forwarded to it.
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            callee, caller = await open_phone(), await open_phone()
            plain = f"<sip:1002@{callee.host}:{callee.port}>"
            headed = f"<sip:1002@{callee.host}:{callee.port}?Subject=hi&Route=%3Csip:x%3E>"
            registration = request(
                "REGISTER", "sip:example.com", callee, user="1002", to="sip:1002@example.com"
            ).replace(f"Contact: {plain}", f"Contact: {headed}")
            callee.send(registration, port)
            assert (await callee.response()).status == 200
            caller.send(request("MESSAGE", "sip:1002@example.com", caller, body="hi"), port)
            forwarded = await callee.request()
            assert str(forwarded.request_uri) == f"sip:1002@{callee.host}:{callee.port}"

    run(scenario())


def test_the_ack_of_a_stateless_400_ends_at_the_server(tmp_path: Path) -> None:
    # RFC 3261 17.1.1.3: the ACK of a non-2xx answer is hop by hop. The ACK
    # of a 400 given without a transaction (a malformed INVITE) matched no
    # transaction and went on to the callee as if it acknowledged a 2xx.
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            callee, caller = await open_phone(), await open_phone()
            assert (await register(server, callee, "1002")).status == 200
            invite = request("INVITE", "sip:1002@example.com", caller, call_id="bad", body="v=0")
            caller.send(invite.replace("Content-Length: 3", "Content-Length: 999"), port)
            refused = await caller.response()
            assert refused.status == 400
            tag = refused.to_tag
            assert tag is not None
            # The ACK: the INVITE's Via, From, Call-ID and CSeq number, the 400's To.
            branch = invite.split("branch=")[1].split(";")[0]
            ack = request("ACK", "sip:1002@example.com", caller, call_id="bad", branch=branch)
            sent_from = invite.split("From: ")[1].split("\r\n")[0]
            ack = ack.replace(ack.split("From: ")[1].split("\r\n")[0], sent_from)
            ack = ack.replace("To: <sip:1002@example.com>", f"To: <sip:1002@example.com>;tag={tag}")
            caller.send(ack, port)
            with pytest.raises(TimeoutError):
                await callee.request(timeout=0.5)

    run(scenario())


def test_a_request_too_large_for_the_callees_udp_gets_a_final_answer_with_a_tag(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Over TCP a body of 65,300 bytes is within max_message_bytes; no UDP
    # datagram holds it. The caller got a 500 without a To tag (8.2.6.2),
    # and nothing was logged.
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            callee = await open_phone()
            assert (await register(server, callee, "1002")).status == 200
            tcp = server.transport.bound_port("tcp")
            reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
            host, local_port = writer.get_extra_info("sockname")[:2]
            caller = Phone()
            caller.host, caller.port = host, local_port
            big = request("MESSAGE", "sip:1002@example.com", caller, body="x" * 65_300)
            writer.write(big.replace("SIP/2.0/UDP", "SIP/2.0/TCP").encode())
            await writer.drain()
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
            while head.startswith("SIP/2.0 100"):
                head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
            assert head.startswith("SIP/2.0 500")
            to = next(line for line in head.split("\r\n") if line.startswith("To:"))
            assert ";tag=" in to
            writer.close()

    with caplog.at_level(logging.WARNING):
        run(scenario())
    assert any("UDP datagram holds at most" in r.getMessage() for r in caplog.records)


def test_a_register_with_max_forwards_zero_is_served_by_the_registrar(tmp_path: Path) -> None:
    # The registrar is the REGISTER's endpoint: it answers as one would
    # (RFC 4475 "zeromf"); a request to forward still gets 483 (16.3 step 3).
    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            port = udp_port(server)
            phone = await open_phone()
            zero = request(
                "REGISTER", "sip:example.com", phone, user="1002", to="sip:1002@example.com"
            ).replace("Max-Forwards: 70", "Max-Forwards: 0")
            phone.send(zero, port)
            assert (await phone.response()).status == 200
            # Sent to the server as the phone's outbound proxy (a Route of ours).
            ours = zero.replace("Max-Forwards", f"Route: <sip:127.0.0.1:{port};lr>\r\nMax-Forwards")
            phone.send(ours.replace("z9hG4bK", "z9hG4bKours").replace("1 REG", "2 REG"), port)
            assert (await phone.response()).status == 200
            elsewhere = zero.replace("Max-Forwards", "Route: <sip:192.0.2.1;lr>\r\nMax-Forwards")
            phone.send(elsewhere.replace("z9hG4bK", "z9hG4bKaway").replace("1 REG", "3 REG"), port)
            assert (await phone.response()).status == 483
            message = request("MESSAGE", "sip:1002@example.com", phone, body="x")
            phone.send(message.replace("Max-Forwards: 70", "Max-Forwards: 0"), port)
            assert (await phone.response()).status == 483

    run(scenario())
