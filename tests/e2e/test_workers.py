"""Several worker processes behind one address (``[server] workers = 2``).

The kernel spreads the phones over the workers by a hash of their address
and port (SO_REUSEPORT), so with a dozen phones each worker serves some of
them (both workers' SIP trace files show traffic). A phone registered through
one worker must be reached through the other; the answer of a phone reached
by one worker's client transaction may arrive at the other worker and must
still get back to the caller; over TCP a request for a phone whose connection
the other worker holds must go over that connection. Worker 0 alone writes
the recovery file, with every worker's registrations in it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.e2e import wire
from tests.e2e.conftest import CentrexServer, _centrex_command

PHONES = 12
WAIT_S = 5.0


def _message(server_port: int, caller: str, callee: str, *, transport: str, port: int) -> bytes:
    return wire.request(
        "MESSAGE",
        f"sip:{callee}@example.com",
        transport=transport,
        local_port=port,
        headers={
            "From": f"<sip:{caller}@example.com>;tag={secrets.token_hex(4)}",
            "To": f"<sip:{callee}@example.com>",
            "Content-Type": "text/plain",
        },
        body=f"hello {callee}".encode(),
    )


def _next_request(peer: wire.UdpPeer | wire.TcpPeer, timeout: float) -> bytes | None:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        data = peer.receive(left)
        if data is None:
            return None
        if not data.startswith(b"SIP/2.0 "):
            return data
    return None


def _register_all(
    server: CentrexServer, phones: Sequence[wire.UdpPeer | wire.TcpPeer], transport: str
) -> None:
    for i, phone in enumerate(phones):
        phone.send(wire.register(server.port, f"p{i}", transport=transport, local_port=phone.port))
        answer = wire.final_answer(phone, WAIT_S)
        assert answer is not None and wire.status_line(answer).startswith("SIP/2.0 200"), (
            f"REGISTER of p{i} from port {phone.port}: {answer!r}\n{server.log()}"
        )


def _message_round(
    server: CentrexServer, phones: Sequence[wire.UdpPeer | wire.TcpPeer], transport: str
) -> None:
    """Phone i sends a MESSAGE to the user of phone i+1, which answers 200."""
    failures = []
    for i, caller in enumerate(phones):
        j = (i + 1) % len(phones)
        callee = phones[j]
        caller.send(_message(server.port, f"p{i}", f"p{j}", transport=transport, port=caller.port))
        request = _next_request(callee, WAIT_S)
        if request is None or not request.startswith(b"MESSAGE "):
            failures.append(f"p{i} -> p{j}: the callee got {request!r}")
            continue
        callee.send(wire.answer(request, "200 OK"))
        answer = wire.final_answer(caller, WAIT_S)
        if answer is None or not wire.status_line(answer).startswith("SIP/2.0 200"):
            failures.append(f"p{i} -> p{j}: the caller got {answer!r}")
    assert not failures, "\n".join(failures) + "\n" + server.log()


def _worker_traces(server: CentrexServer) -> list[str]:
    """The SIP trace of worker 0 and of worker 1 (each writes its own file)."""
    return [
        server.trace_path.read_text(encoding="utf-8", errors="replace"),
        server.trace_path.with_name("sip-trace.w1.log").read_text(
            encoding="utf-8", errors="replace"
        ),
    ]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_phones_on_different_workers_reach_each_other(
    make_server: Callable[..., CentrexServer], transport: str
) -> None:
    server = make_server({"allow_unknown_users": True}, server={"workers": 2})
    phones = [wire.open_peer(server.port, transport) for _ in range(PHONES)]
    try:
        _register_all(server, phones, transport)
        _message_round(server, phones, transport)
        time.sleep(1.2)  # the traces are flushed every second
        traces = _worker_traces(server)
    finally:
        for phone in phones:
            phone.close()
    served = [trace.count("MESSAGE sip:") for trace in traces]
    assert all(served), f"one worker saw no MESSAGE (MESSAGEs per worker: {served})"


def test_worker_0_saves_every_workers_registrations_and_both_load_them(
    make_server: Callable[..., CentrexServer],
) -> None:
    server = make_server({"allow_unknown_users": True}, server={"workers": 2})
    phones = [wire.UdpPeer(server.port) for _ in range(PHONES)]
    try:
        _register_all(server, phones, "udp")
        assert server.stop() == 0
        rows = server.registrations()
        assert sorted(rows) == sorted(f"sip:p{i}@example.com" for i in range(PHONES))
        # Started again: every worker reads the file, so every phone is reached
        # whichever worker the caller's messages land on.
        server.start()
        _message_round(server, phones, "udp")
    finally:
        for phone in phones:
            phone.close()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_a_worker_that_dies_stops_the_instance_with_an_error(
    make_server: Callable[..., CentrexServer],
) -> None:
    server = make_server(server={"workers": 2})
    assert server.process is not None
    workers = _children(server.process.pid)
    assert len(workers) == 2, f"workers of {server.process.pid}: {workers}"
    os.kill(workers[1], signal.SIGKILL)
    try:
        code = server.process.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail("the supervisor did not stop after a worker died", pytrace=False)
    assert code != 0
    # The worker killed is named, not the other one that stopped (cleanly)
    # once its link to the dead one broke.
    assert "ended (signal 9); stopping the other workers" in server.log()
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)


def test_sigterm_stops_every_worker_cleanly(make_server: Callable[..., CentrexServer]) -> None:
    server = make_server(server={"workers": 2})
    assert server.process is not None
    workers = _children(server.process.pid)
    assert server.stop() == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    assert server.log().count("stopped") >= 2


def _registered(
    make_server: Callable[..., CentrexServer], count: int
) -> tuple[CentrexServer, list[wire.UdpPeer]]:
    """A server of two workers with ``count`` UDP phones registered (p0, p1...)."""
    server = make_server({"allow_unknown_users": True}, server={"workers": 2})
    phones = [wire.UdpPeer(server.port) for _ in range(count)]
    try:
        _register_all(server, phones, "udp")
    except BaseException:
        for phone in phones:
            phone.close()
        raise
    return server, phones


def _invite(server_port: int, callee: str, *, port: int) -> bytes:
    return wire.request(
        "INVITE",
        f"sip:{callee}@example.com",
        transport="udp",
        local_port=port,
        headers={
            "From": f"<sip:caller@example.com>;tag={secrets.token_hex(4)}",
            "To": f"<sip:{callee}@example.com>",
            "Contact": f"<sip:caller@{wire.HOST}:{port}>",
        },
    )


def _ring(
    server: CentrexServer, phone: wire.UdpPeer, i: int, caller: wire.UdpPeer
) -> tuple[bytes, bytes]:
    """The caller's INVITE of p``i`` and the INVITE the phone got."""
    invite = _invite(server.port, f"p{i}", port=caller.port)
    caller.send(invite)
    forwarded = _next_request(phone, WAIT_S)
    assert forwarded is not None and forwarded.startswith(b"INVITE "), forwarded
    return invite, forwarded


def _cancel_of(invite: bytes) -> bytes:
    """The CANCEL of ``invite`` (RFC 3261 9.1: its Request-URI, top Via,
    From, To, Call-ID and CSeq number)."""
    head = invite.split(b"\r\n\r\n", 1)[0].decode()
    first, *lines = head.split("\r\n")
    kept = [
        line
        for line in lines
        if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "max-forwards")
    ]
    number = wire.headers(invite, "cseq")[0].split()[0]
    uri = first.split()[1]
    text = "\r\n".join(
        [f"CANCEL {uri} SIP/2.0", *kept, f"CSeq: {number} CANCEL", "Content-Length: 0"]
    )
    return (text + "\r\n\r\n").encode()


def _each_call(
    make_server: Callable[..., CentrexServer],
    call: Callable[[CentrexServer, int, wire.UdpPeer, wire.UdpPeer], str | None],
) -> None:
    """Register 8 phones with a server of two workers, then ``call(server, i,
    phone, caller)`` each from a new caller socket; fail with every problem."""
    server, phones = _registered(make_server, 8)
    failures = []
    try:
        for i, phone in enumerate(phones):
            with wire.UdpPeer(server.port) as caller:
                problem = call(server, i, phone, caller)
                if problem is not None:
                    failures.append(f"call {i}: {problem}")
                    phone.drain(0.2)
    finally:
        for phone in phones:
            phone.close()
    assert not failures, "\n".join(failures) + "\n" + server.log()


def test_a_cancel_from_another_port_reaches_the_worker_of_its_invite(
    make_server: Callable[..., CentrexServer],
) -> None:
    # RFC 3261 16.10: the CANCEL is answered 200 and the pending branch is
    # cancelled, whichever worker holds the INVITE; with 8 calls, each CANCEL
    # sent from a socket of its own, some land on the other worker.
    def call(
        server: CentrexServer, i: int, phone: wire.UdpPeer, caller: wire.UdpPeer
    ) -> str | None:
        invite, forwarded = _ring(server, phone, i, caller)
        phone.send(wire.answer(forwarded, "180 Ringing"))
        ringing = wire.final_answer(caller, WAIT_S)
        assert ringing is not None and b" 180 " in ringing.split(b"\r\n", 1)[0], ringing
        with wire.UdpPeer(server.port) as canceller:
            canceller.send(_cancel_of(invite))
            answer = wire.final_answer(canceller, WAIT_S)
        if answer is None or not wire.status_line(answer).startswith("SIP/2.0 200"):
            return f"the CANCEL got {answer!r}"
        cancel = _next_request(phone, WAIT_S)
        if cancel is None or not cancel.startswith(b"CANCEL "):
            return f"the callee got {cancel!r}, not the CANCEL"
        phone.send(wire.answer(cancel, "200 OK"))
        phone.send(wire.answer(forwarded, "487 Request Terminated"))
        final = wire.final_answer(caller, WAIT_S)
        phone.drain(0.2)  # the proxy's ACK of the 487
        if final is None or b" 487 " not in final.split(b"\r\n", 1)[0]:
            return f"the caller got {final!r}, not 487"
        return None

    _each_call(make_server, call)


def test_a_dialog_set_up_through_one_worker_is_ended_through_the_other(
    make_server: Callable[..., CentrexServer],
) -> None:
    # The callee's BYE follows the Record-Route made by the INVITE's worker and
    # lands on the callee's own worker, which must accept that worker's route
    # token (one secret for all workers, made before they start).
    def call(
        server: CentrexServer, i: int, phone: wire.UdpPeer, caller: wire.UdpPeer
    ) -> str | None:
        invite, forwarded = _ring(server, phone, i, caller)
        routes = wire.headers(forwarded, "record-route")
        assert routes, forwarded
        extra = [
            *(f"Record-Route: {r}" for r in routes),
            f"Contact: <sip:p{i}@{wire.HOST}:{phone.port}>",
            "Content-Length: 0",
        ]
        ok = wire.answer(forwarded, "200 OK").replace(
            b"Content-Length: 0", "\r\n".join(extra).encode()
        )
        phone.send(ok)
        answer = wire.final_answer(caller, WAIT_S)
        assert answer is not None and b" 200 " in answer.split(b"\r\n", 1)[0], answer
        bye = wire.request(
            "BYE",
            f"sip:caller@{wire.HOST}:{caller.port}",
            transport="udp",
            local_port=phone.port,
            headers={
                "Route": ", ".join(routes),
                "From": wire.headers(answer, "to")[0],
                "To": wire.headers(invite, "from")[0],
                "Call-ID": wire.headers(invite, "call-id")[0],
                "CSeq": "1 BYE",
            },
        )
        phone.send(bye)
        got = _next_request(caller, WAIT_S)
        if got is None or not got.startswith(b"BYE "):
            return f"the caller got {got!r}, not the BYE"
        caller.send(wire.answer(got, "200 OK"))
        done = wire.final_answer(phone, WAIT_S)
        if done is None or b" 200 " not in done.split(b"\r\n", 1)[0]:
            return f"the callee's BYE got {done!r}"
        return None

    _each_call(make_server, call)


def test_a_second_instance_on_the_same_ports_is_refused(
    make_server: Callable[..., CentrexServer], tmp_path: Path
) -> None:
    # SO_REUSEPORT would let a second instance's workers share the port and
    # take part of the traffic: the supervisor checks the ports first.
    server = make_server(server={"workers": 2})
    other = CentrexServer(tmp_path / "other", server.port, server={"workers": 2})
    result = subprocess.run(
        [*_centrex_command(), "serve", "--config", str(other.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot listen on udp:{wire.HOST}:{server.port}" in result.stderr
    assert wire.options_status(server.port, "udp") == "SIP/2.0 200 OK"


def test_a_stop_while_the_workers_start_ends_them_cleanly(
    make_server: Callable[..., CentrexServer],
) -> None:
    # SIGTERM as soon as both workers run their event loops, before they
    # serve: each stops once started, and the instance ends with 0 (a
    # worker used to die of the signal mid-start, and the instance with 1).
    server = make_server(server={"workers": 2})
    assert server.stop() == 0
    for attempt in range(3):
        mark = server.log_path.stat().st_size
        with server.log_path.open("ab") as log:
            process = subprocess.Popen(
                [*_centrex_command(), "serve", "--config", str(server.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=server.root,
            )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                with server.log_path.open("rb") as log:
                    log.seek(mark)
                    if log.read().count(b"event loop: ") >= 2:
                        break
                time.sleep(0.002)
            process.send_signal(signal.SIGTERM)
            code = process.wait(15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        assert code == 0, f"attempt {attempt}: exit code {code}\n{server.log()}"


def test_an_unreadable_recovery_file_is_set_aside_once(
    make_server: Callable[..., CentrexServer],
) -> None:
    # Worker 0 sets it aside and starts empty; the other worker starts empty
    # too, without touching it, and the instance serves.
    server = make_server({"allow_unknown_users": True}, server={"workers": 2})
    assert server.stop() == 0
    (server.data_dir / "registrations.json").write_text("{not json", encoding="utf-8")
    server.start()
    phones = [wire.UdpPeer(server.port) for _ in range(4)]
    try:
        _register_all(server, phones, "udp")
    finally:
        for phone in phones:
            phone.close()
    assert server.stop() == 0
    assert len(server.registrations()) == 4
    aside = [p for p in server.data_dir.iterdir() if ".bad-" in p.name]
    assert len(aside) == 1, sorted(p.name for p in server.data_dir.iterdir())


def test_a_closed_connection_takes_its_bindings_from_every_worker(
    make_server: Callable[..., CentrexServer],
) -> None:
    server = make_server({"allow_unknown_users": True}, server={"workers": 2})
    tcp = wire.TcpPeer(server.port)
    _register_all(server, [tcp], "tcp")  # p0, over TCP
    tcp.close()
    time.sleep(0.5)
    callers = [wire.UdpPeer(server.port) for _ in range(8)]
    try:
        answers = []
        for caller in callers:
            caller.send(_message(server.port, "x", "p0", transport="udp", port=caller.port))
            answer = wire.final_answer(caller, WAIT_S)
            answers.append(None if answer is None else wire.status_line(answer))
    finally:
        for caller in callers:
            caller.close()
    # 480: known but not registered any more, whichever worker answers.
    assert all(a is not None and a.startswith("SIP/2.0 4") for a in answers), answers


def test_presence_watchers_hear_of_registrations_through_every_worker(
    make_server: Callable[..., CentrexServer],
) -> None:
    # A user registered through either worker is announced to a watcher held
    # by one of them (the other's change reaches it as a remote change), and
    # the watcher's 200s, each sent from a new port, reach the worker holding
    # the NOTIFY's transaction wherever they land: no NOTIFY is sent twice.
    server = make_server({"allow_unknown_users": True}, server={"workers": 2})
    phones = [wire.UdpPeer(server.port) for _ in range(8)]
    watcher = wire.UdpPeer(server.port)
    notified: list[bytes] = []

    def answer_notifies(timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = watcher.receive(left)
            if got is None:
                return
            if got.startswith(b"NOTIFY "):
                notified.append(got)
                # Answered from a socket of its own, as a phone with one
                # socket per transaction does: it may reach either worker.
                with wire.UdpPeer(server.port) as answering:
                    answering.send(wire.answer(got, "200 OK"))

    try:
        watcher.send(wire.register(server.port, "1001", transport="udp", local_port=watcher.port))
        registered = wire.final_answer(watcher, WAIT_S)
        assert registered is not None and b" 200 " in registered.split(b"\r\n", 1)[0]
        watcher.send(
            wire.request(
                "SUBSCRIBE",
                "sip:Registrar@example.com",
                transport="udp",
                local_port=watcher.port,
                headers={
                    "From": f"<sip:1001@example.com>;tag={secrets.token_hex(4)}",
                    "To": "<sip:Registrar@example.com>",
                    "Contact": f"<sip:1001@{wire.HOST}:{watcher.port}>",
                    "Event": "user-available",
                    "Expires": "600",
                },
            )
        )
        answer_notifies(1.0)  # the 200, then the first list
        _register_all(server, phones, "udp")
        answer_notifies(2.5)  # past a NOTIFY's first retransmissions (T1 = 0.5 s)
    finally:
        for peer in [*phones, watcher]:
            peer.close()
    events = " ".join(h for n in notified for h in wire.headers(n, "event"))
    missing = [f"p{i}" for i in range(len(phones)) if f"p{i}" not in events]
    assert not missing, f"not announced: {missing}; Event headers: {events}\n{server.log()}"
    sent = [(wire.headers(n, "call-id")[0], wire.headers(n, "cseq")[0]) for n in notified]
    assert len(sent) == len(set(sent)), f"NOTIFYs sent again: {sent}\n{server.log()}"


def test_a_nonce_one_worker_issued_is_accepted_by_the_other(
    make_server: Callable[..., CentrexServer],
) -> None:
    # The workers of one start share the nonce epoch (centrex.auth.nonce): a
    # phone challenged through one worker that answers through the other (a
    # new socket, a new TCP connection) is not sent a stale challenge. From
    # 8 sockets, some answers land on the other worker.
    from tests.e2e.test_security import (
        PASSWORDS,
        USERS,
        challenge_params,
        digest_credentials,
        header,
    )

    server = make_server(
        users=USERS, auth={"enabled": True}, passwords=PASSWORDS, server={"workers": 2}
    )
    uri = "sip:example.com"
    failures = []
    for i in range(8):
        with wire.UdpPeer(server.port) as asker, wire.UdpPeer(server.port) as answerer:
            call_id = f"nonce-{i}-{secrets.token_hex(4)}"
            fields = {"From": "<sip:1001@example.com>;tag=a", "To": "<sip:1001@example.com>"}
            fields["Call-ID"] = call_id
            asker.send(
                wire.request(
                    "REGISTER", uri, transport="udp", local_port=asker.port, headers=fields
                )
            )
            challenged = wire.final_answer(asker, WAIT_S)
            assert challenged is not None and b" 401 " in challenged.split(b"\r\n", 1)[0]
            offered = [challenge_params(v) for v in header(challenged, "WWW-Authenticate")]
            (md5,) = [c for c in offered if c.get("algorithm", "MD5").upper() == "MD5"]
            fields["CSeq"] = "2 REGISTER"
            fields["Authorization"] = digest_credentials(
                md5, user="1001", password=PASSWORDS["1001"], method="REGISTER", uri=uri, nc=1
            )
            answerer.send(
                wire.request(
                    "REGISTER", uri, transport="udp", local_port=answerer.port, headers=fields
                )
            )
            answer = wire.final_answer(answerer, WAIT_S)
            status = None if answer is None else wire.status_line(answer)
            if status is None or not status.startswith("SIP/2.0 200"):
                failures.append(f"answer {i}: {status}")
    assert not failures, "\n".join(failures) + "\n" + server.log()


def test_ack_and_bye_reach_a_tcp_phone_whichever_worker_they_land_on(
    make_server: Callable[..., CentrexServer],
) -> None:
    # The caller's ACK and BYE go to the TCP callee's Contact (no binding
    # names its connection): the worker they land on hands them to the worker
    # holding that connection, where it used to try a new connection to the
    # phone and answer the BYE 500. Calls from 8 caller sockets, so some of
    # them land on the other worker.
    server = make_server({"allow_unknown_users": True}, server={"workers": 2})
    failures = []
    with wire.TcpPeer(server.port) as phone:
        _register_all(server, [phone], "tcp")
        for n in range(8):
            with wire.UdpPeer(server.port) as caller:
                invite = _invite(server.port, "p0", port=caller.port)
                caller.send(invite)
                forwarded = _next_request(phone, WAIT_S)
                assert forwarded is not None and forwarded.startswith(b"INVITE "), forwarded
                routes = wire.headers(forwarded, "record-route")
                contact = f"<sip:p0@{wire.HOST}:{phone.port};transport=tcp>"
                extra = [
                    *(f"Record-Route: {r}" for r in routes),
                    f"Contact: {contact}",
                    "Content-Length: 0",
                ]
                phone.send(
                    wire.answer(forwarded, "200 OK").replace(
                        b"Content-Length: 0", "\r\n".join(extra).encode()
                    )
                )
                ok = wire.final_answer(caller, WAIT_S)
                assert ok is not None and b" 200 " in ok.split(b"\r\n", 1)[0], ok
                dialog = {
                    "Route": ", ".join(reversed(routes)),
                    "From": wire.headers(invite, "from")[0],
                    "To": wire.headers(ok, "to")[0],
                    "Call-ID": wire.headers(invite, "call-id")[0],
                }
                target = f"sip:p0@{wire.HOST}:{phone.port};transport=tcp"
                for method in ("ACK", "BYE"):
                    caller.send(
                        wire.request(
                            method,
                            target,
                            transport="udp",
                            local_port=caller.port,
                            headers={**dialog, "CSeq": f"1 {method}"},
                        )
                    )
                    got = _next_request(phone, WAIT_S)
                    if got is None or not got.startswith(method.encode() + b" "):
                        failures.append(f"call {n}: the phone got {got!r}, not the {method}")
                        break
                    if method == "BYE":
                        phone.send(wire.answer(got, "200 OK"))
                        done = wire.final_answer(caller, WAIT_S)
                        if done is None or b" 200 " not in done.split(b"\r\n", 1)[0]:
                            failures.append(f"call {n}: the BYE got {done!r}")
    assert not failures, "\n".join(failures) + "\n" + server.log()
