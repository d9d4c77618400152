"""Several ``centrex serve`` instances sharing one PostgreSQL database (issue 6).

- three instances: a sipp callee registered through A is called by a sipp
  caller through C; an unregister on A shows on B within the staleness bound;
  ``kill -9`` of A loses no binding, calls from B to A's phone fail at once
  while A is down and reach it again when A is back;
- related domains: 1236 dialled on one domain reaches 1236 registered on another;
- a database restart under a registration load (a PostgreSQL of the test's
  own, stopped and started): no 200 for a binding that was not stored, no
  crash, service back by itself, the loss and the return logged once each.

Each test on the shared PostgreSQL gets a database of its own, dropped after.
Without PostgreSQL the tests skip with the reason (fail under
``CENTREX_TEST_STRICT=1``).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text

from centrex.registrar.sql import check_database
from centrex.registrar.sql.engine import make_engine
from tests.e2e import wire
from tests.e2e.conftest import CentrexServer, Phones
from tests.e2e.test_security import PASSWORDS, USERS, sipp_credentials
from tests.private_postgres import PrivatePostgres

SHARED_PG = os.environ.get(
    "CENTREX_TEST_POSTGRESQL_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
SHARED_MARIADB = os.environ.get(
    "CENTREX_TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test"
)
STRICT = os.environ.get("CENTREX_TEST_STRICT") == "1"
STALENESS_S = 0.5
DOWN_AFTER_S = 3.0
#: Load from one address is not a flood here.
NO_LIMITS = {"enabled": False, "rate_limit_per_s": 100000, "rate_limit_burst": 100000}


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_plain(url), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _bindings(url: str) -> list[tuple[str, str, str]]:
    connection = await asyncpg.connect(_plain(url), timeout=5)
    try:
        rows = await connection.fetch("SELECT aor, contact, server_id FROM centrex_binding")
    finally:
        await connection.close()
    return [(r["aor"], r["contact"], r["server_id"]) for r in rows]


def _usable(url: str, what: str) -> None:
    check = asyncio.run(check_database(url, timeout=3))
    if check.server_version is None:
        reason = f"{what} at {url} not usable: {check.problem}"
        if STRICT:
            pytest.fail(f"{reason} (CENTREX_TEST_STRICT=1)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL, dropped after the test."""
    _usable(SHARED_PG, "PostgreSQL")
    name = f"centrex_e2e_{secrets.token_hex(4)}"
    asyncio.run(_admin(SHARED_PG, f"CREATE DATABASE {name}"))
    yield SHARED_PG.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_admin(SHARED_PG, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _mariadb_admin(statement: str) -> None:
    engine = make_engine(SHARED_MARIADB, pooled=False)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
def mariadb_database() -> Iterator[str]:
    """A fresh database on the shared MariaDB, dropped after the test."""
    _usable(SHARED_MARIADB, "MariaDB")
    name = f"centrex_e2e_{secrets.token_hex(4)}"
    asyncio.run(_mariadb_admin(f"CREATE DATABASE {name}"))
    yield SHARED_MARIADB.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_mariadb_admin(f"DROP DATABASE IF EXISTS {name}"))


def _instance(
    make_server: Callable[..., CentrexServer], url: str, name: str, **more: Any
) -> CentrexServer:
    registrar = {"store": "database", "allow_unknown_users": True, **more.pop("registrar", {})}
    more.setdefault("auth", NO_LIMITS)
    return make_server(
        registrar,
        database={
            "url": url,
            "migrate_on_start": True,
            "staleness_s": STALENESS_S,
            "instance_down_after_s": DOWN_AFTER_S,
        },
        server={"instance_id": name},
        **more,
    )


# -- raw phones --------------------------------------------------------------------------

_CALL_ID = re.compile(rb"^(?:Call-ID|i):\s*(.+?)\r$", re.MULTILINE | re.IGNORECASE)


def _call_id(message: bytes) -> bytes:
    found = _CALL_ID.search(message)
    return found.group(1) if found else b""


def _answer(peer: wire.UdpPeer, request: bytes, timeout: float) -> bytes | None:
    """The final response to ``request`` (other datagrams are skipped)."""
    wanted = _call_id(request)
    peer.send(request)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        data = peer.receive(left)
        if data is None:
            return None
        provisional = data.startswith((b"SIP/2.0 100 ", b"SIP/2.0 18"))
        if data.startswith(b"SIP/2.0 ") and _call_id(data) == wanted and not provisional:
            return data
    return None


def _register(
    peer: wire.UdpPeer, port: int, user: str, *, expires: int = 600, domain: str = "example.com"
) -> bytes | None:
    aor = f"<sip:{user}@{domain}>"
    message = wire.request(
        "REGISTER",
        f"sip:{domain}",
        transport="udp",
        local_port=peer.port,
        headers={
            "From": f"{aor};tag={secrets.token_hex(4)}",
            "To": aor,
            "Contact": f"<sip:{user}@{wire.HOST}:{peer.port}>",
            "Expires": str(expires),
        },
    )
    return _answer(peer, message, 3.0)


def _contacts_seen_by(port: int, user: str) -> list[str]:
    """A registration query (REGISTER without Contact) to one instance: its view."""
    aor = f"<sip:{user}@example.com>"
    with wire.UdpPeer(port) as peer:
        query = wire.request(
            "REGISTER",
            "sip:example.com",
            transport="udp",
            local_port=peer.port,
            headers={"From": f"{aor};tag={secrets.token_hex(4)}", "To": aor},
        )
        answer = _answer(peer, query, 3.0)
    assert answer is not None and answer.startswith(b"SIP/2.0 200"), answer
    return re.findall(r"^Contact: (.*?)\r$", answer.decode(), re.MULTILINE)


class BusyPhone:
    """A phone on UDP that answers every INVITE 486 Busy Here: proof it was reached."""

    def __init__(self) -> None:
        self.peer = wire.UdpPeer(1)  # the server address is set per REGISTER
        self.invites = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def register(self, port: int, user: str, **kwargs: Any) -> bytes | None:
        self.peer.server = (wire.HOST, port)
        return _register(self.peer, port, user, **kwargs)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        sock = self.peer.sock
        sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data, source = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data.startswith(b"INVITE "):
                continue
            self.invites += 1
            head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
            keep = [
                line
                for line in head
                if line.split(b":", 1)[0].strip().lower()
                in (b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq")
            ]
            keep = [
                line + b";tag=busy" if line.lower().startswith((b"to:", b"t:")) else line
                for line in keep
            ]
            response = b"\r\n".join([b"SIP/2.0 486 Busy Here", *keep, b"Content-Length: 0"])
            sock.sendto(response + b"\r\n\r\n", source)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.peer.close()


def _call(port: int, user: str, timeout: float) -> tuple[str, float]:
    """INVITE sip:user@example.com through the instance on ``port``: the final
    status line and how long it took (ACKed when it is a failure)."""
    with wire.UdpPeer(port) as peer:
        invite = wire.request(
            "INVITE",
            f"sip:{user}@example.com",
            transport="udp",
            local_port=peer.port,
            headers={
                "From": f"<sip:caller@example.com>;tag={secrets.token_hex(4)}",
                "To": f"<sip:{user}@example.com>",
                "Contact": f"<sip:caller@{wire.HOST}:{peer.port}>",
            },
        )
        start = time.monotonic()
        answer = _answer(peer, invite, timeout)
        took = time.monotonic() - start
        if answer is None:
            return "no answer", took
        status = wire.status_line(answer)
        if not answer.startswith(b"SIP/2.0 2"):
            ack = _ack_for(invite, answer)
            peer.send(ack)
        return status, took


def _ack_for(invite: bytes, response: bytes) -> bytes:
    """The ACK of a non-2xx final response (RFC 3261 17.1.1.3)."""
    lines = invite.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    to = next(line for line in response.split(b"\r\n") if line.lower().startswith((b"to:", b"t:")))
    out = [lines[0].replace(b"INVITE ", b"ACK ", 1)]
    for line in lines[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if name in (b"via", b"from", b"call-id", b"max-forwards"):
            out.append(line)
        elif name == b"to":
            out.append(to)
        elif name == b"cseq":
            out.append(line.replace(b"INVITE", b"ACK"))
    return b"\r\n".join([*out, b"Content-Length: 0"]) + b"\r\n\r\n"


# -- three instances ----------------------------------------------------------------------


@pytest.mark.parametrize("digest", [False, True], ids=["open", "digest"])
def test_callee_registered_through_a_is_called_through_c(
    database: str,
    make_server: Callable[..., CentrexServer],
    make_phones: Callable[[CentrexServer], Phones],
    digest: bool,
) -> None:
    # With digest on, the caller answers C's 407 and the callee A's 401; A
    # must not challenge the INVITE C forwards to it (C authenticated it).
    security: dict[str, Any] = {}
    if digest:
        security = {
            "auth": {**NO_LIMITS, "enabled": True, "algorithms": ["MD5"]},
            "users": USERS,
            "passwords": PASSWORDS,
        }
    a = _instance(make_server, database, "A", **security)
    _instance(make_server, database, "B", **security)
    c = _instance(make_server, database, "C", **security)
    at_a, at_c = make_phones(a), make_phones(c)
    at_c.cid_str = at_a.cid_str  # the callee maps the caller's INVITE by Call-ID
    scenario, credentials = ("auth_", "sipp_credentials") if digest else ("", None)
    callee = at_a.start(
        f"{scenario}uas_register.xml",
        service="1002",
        extra=sipp_credentials("1002", "sip:example.com") if credentials else (),
    )
    callee.wait_logged("REGISTERED")
    time.sleep(STALENESS_S + 0.5)
    # C sends the INVITE to A (which holds the callee's flow); A to the phone.
    caller = at_c.start(
        f"{scenario}uac_call.xml",
        service="1002",
        extra=sipp_credentials("1001", "sip:1002@example.com") if credentials else (),
    )
    at_a.finish(caller, callee)
    assert "cxo=" in a.trace(), "the INVITE did not reach A with a flow token"
    if digest:
        assert "SIP/2.0 407" not in a.trace(), "A challenged the INVITE C forwarded"


def test_cancel_through_c_reaches_the_callee_registered_through_a(
    database: str,
    make_server: Callable[..., CentrexServer],
    make_phones: Callable[[CentrexServer], Phones],
) -> None:
    # The caller's CANCEL goes to C, C cancels its branch to A, A its branch
    # to the phone; the phone's 487 comes back the same way.
    a = _instance(make_server, database, "A")
    c = _instance(make_server, database, "C")
    at_a, at_c = make_phones(a), make_phones(c)
    at_c.cid_str = at_a.cid_str
    callee = at_a.start("uas_cancel_two_proxies.xml", service="1002")
    callee.wait_logged("REGISTERED")
    time.sleep(STALENESS_S + 0.5)
    caller = at_c.start("uac_cancel.xml", service="1002")
    at_a.finish(caller, callee)


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_unregister_on_a_is_seen_on_b_within_the_staleness_bound(
    kind: str, request: pytest.FixtureRequest, make_server: Callable[..., CentrexServer]
) -> None:
    # PostgreSQL: NOTIFY; MariaDB: the change poll every staleness_s.
    database = request.getfixturevalue("database" if kind == "postgresql" else "mariadb_database")
    a = _instance(make_server, database, "A")
    b = _instance(make_server, database, "B")
    with wire.UdpPeer(a.port) as phone:
        ok = _register(phone, a.port, "1001")
        assert ok is not None and ok.startswith(b"SIP/2.0 200"), ok
        deadline = time.monotonic() + STALENESS_S + 2
        while not _contacts_seen_by(b.port, "1001"):
            assert time.monotonic() < deadline, "B never saw the registration"
            time.sleep(0.02)
        gone = _register(phone, a.port, "1001", expires=0)
        assert gone is not None and gone.startswith(b"SIP/2.0 200"), gone
        unregistered = time.monotonic()
        while True:
            asked = time.monotonic()  # B's answer reflects its cache at about this time
            if not _contacts_seen_by(b.port, "1001"):
                break
            assert asked - unregistered < STALENESS_S + 2, "B still lists it"
            time.sleep(0.02)
        seen_after = asked - unregistered
    # The documented bound: staleness_s, plus one poll query when polling.
    bound = STALENESS_S if kind == "postgresql" else STALENESS_S + 0.2
    assert seen_after <= bound, f"B saw the unregister after {seen_after:.3f} s"
    print(f"{kind}: unregister on A seen on B after {seen_after * 1000:.0f} ms")


def test_kill_of_a_loses_no_binding_and_calls_from_b_fail_fast_until_a_is_back(
    database: str, make_server: Callable[..., CentrexServer]
) -> None:
    a = _instance(make_server, database, "A")
    b = _instance(make_server, database, "B")
    phone = BusyPhone()
    try:
        ok = phone.register(a.port, "1001")
        assert ok is not None and ok.startswith(b"SIP/2.0 200"), ok
        phone.start()
        time.sleep(STALENESS_S + 0.5)
        status, _ = _call(b.port, "1001", 10)
        assert status.startswith("SIP/2.0 486"), f"through B and A to the phone: {status}"
        a.kill()
        # Nothing lost: the binding is in the database and B still has it.
        assert [(x[0], x[2]) for x in asyncio.run(_bindings(database))] == [
            ("sip:1001@example.com", "A")
        ]
        assert len(_contacts_seen_by(b.port, "1001")) == 1
        assert a.registrations() == ["sip:1001@example.com"]  # `centrex registrations`
        # A is down: right away (A refuses B's TCP connection) and once its
        # heartbeat is stale (B does not even try), calls fail within seconds.
        timings = []
        for _ in range(2):
            status, took = _call(b.port, "1001", 10)
            assert status.startswith(("SIP/2.0 480", "SIP/2.0 500")), status
            assert took < 3.0, f"{status} after {took:.1f} s"
            timings.append((status, round(took, 3)))
            time.sleep(DOWN_AFTER_S + 0.5)
        assert timings[-1][0].startswith("SIP/2.0 480"), timings
        print(f"calls to A's phone while A is down: {timings}")
        a.start()
        time.sleep(1.5)  # A's heartbeat reaches B
        status, _ = _call(b.port, "1001", 10)
        assert status.startswith("SIP/2.0 486"), f"after A came back: {status}"
        assert phone.invites == 2
    finally:
        phone.close()


def _dial(port: int, uri: str, from_: str) -> bytes:
    """An INVITE to ``uri`` through the instance on ``port``: its final answer (ACKed)."""
    with wire.UdpPeer(port) as caller:
        invite = wire.request(
            "INVITE",
            uri,
            transport="udp",
            local_port=caller.port,
            headers={"From": f"{from_};tag={secrets.token_hex(4)}", "To": f"<{uri}>"},
        )
        answer = _answer(caller, invite, 10)
        assert answer is not None, "no answer"
        caller.send(_ack_for(invite, answer))
    return answer


def test_a_number_dialled_on_one_domain_reaches_it_registered_on_a_related_domain(
    database: str, make_server: Callable[..., CentrexServer]
) -> None:
    related = {"related_domains": ["site-a.example", "site-b.example"]}
    a = _instance(make_server, database, "A", registrar=related, domains=("site-a.example",))
    b = _instance(make_server, database, "B", registrar=related, domains=("site-b.example",))
    phone = BusyPhone()
    try:
        ok = phone.register(b.port, "1236", domain="site-b.example")
        assert ok is not None and ok.startswith(b"SIP/2.0 200"), ok
        phone.start()
        time.sleep(STALENESS_S + 0.5)
        answer = _dial(a.port, "sip:1236@site-a.example", "<sip:1001@site-a.example>")
        assert answer.startswith(b"SIP/2.0 486"), answer
        assert phone.invites == 1
        # The same number at the other domain, dialled through the phone's own
        # instance (B does not serve site-a.example: a call back to the
        # identity a callee was shown), reaches it too, where it was refused
        # as a relay.
        answer = _dial(b.port, "sip:1236@site-a.example", "<sip:1002@elsewhere.example>")
        assert answer.startswith(b"SIP/2.0 486"), answer
        assert phone.invites == 2
        answer = _dial(a.port, "sip:1237@site-a.example", "<sip:1001@site-a.example>")
        assert answer.startswith(b"SIP/2.0 404"), answer
    finally:
        phone.close()


# -- the database restarts under load ---------------------------------------------------------


def test_database_restart_under_registration_load(
    make_server: Callable[..., CentrexServer],
) -> None:
    pg = PrivatePostgres()
    try:
        pg.start()
        server = _instance(make_server, pg.url, "solo")
        statuses: dict[str, str] = {}
        retry_after: set[str] = set()
        with wire.UdpPeer(server.port) as peer:
            count = 0

            def load(
                seconds: float, until: Callable[[], bool] = lambda: False, pause: float = 0.0
            ) -> None:
                nonlocal count
                end = time.monotonic() + seconds
                while time.monotonic() < end and count < 20000 and not until():
                    time.sleep(pause)
                    count += 1
                    user = f"load{count}"
                    answer = _register(peer, server.port, user)
                    statuses[user] = "none" if answer is None else wire.status_line(answer)
                    if answer is not None and b"\r\nRetry-After: " in answer:
                        retry_after.add(user)

            load(1.5)
            pg.stop("immediate")  # a crash of the database server
            load(3.0)
            pg.start()
            recent: list[str] = []

            def back() -> bool:
                recent[:] = [s for u, s in list(statuses.items())[-5:]]
                return len(recent) == 5 and all(s.startswith("SIP/2.0 200") for s in recent)

            # Paced: while the database comes back, 503s come fast, and on a
            # busy machine 20,000 of them could use up the count before the 30 s.
            load(30.0, back, pause=0.002)
        assert back(), f"REGISTERs not answered 200 again: {Counter(statuses.values())}"
        assert server.running, "centrex serve died"
        counts = Counter(s.split(" ")[1] if s != "none" else s for s in statuses.values())
        assert counts["503"] > 0, counts
        assert all(u in retry_after for u, s in statuses.items() if s.startswith("SIP/2.0 503")), (
            "a 503 without Retry-After"
        )
        stored = {aor for aor, _, _ in asyncio.run(_bindings(pg.url))}
        ok = {f"sip:{u}@example.com" for u, s in statuses.items() if s.startswith("SIP/2.0 200")}
        assert ok - stored == set(), f"200 OK for bindings not in the database: {ok - stored}"
        log = server.log(100000)
        assert log.count("location database lost") == 1, log[-3000:]
        # Once it is known lost, a refused REGISTER is not a traceback each.
        assert log.count("location store failed") <= 10, log.count("location store failed")
        deadline = time.monotonic() + 5
        while server.log(100000).count("location database back") < 1:
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.1)
        assert server.log(100000).count("location database back") == 1
        print(f"REGISTER outcomes across the database restart: {dict(counts)}")
    finally:
        pg.cleanup()


def test_a_forged_flow_token_does_not_make_an_instance_relay(
    database: str, make_server: Callable[..., CentrexServer]
) -> None:
    a = _instance(make_server, database, "A")
    with wire.UdpPeer(a.port) as outsider:
        forged = wire.request(
            "INVITE",
            "sip:victim@198.51.100.1",
            transport="udp",
            local_port=outsider.port,
            headers={
                "To": "<sip:victim@198.51.100.1>",
                "Route": f"<sip:{wire.HOST}:{a.port};lr;cxo=c2lwOng.b1.{'0' * 32}>",
            },
        )
        answer = _answer(outsider, forged, 5)
    assert answer is not None and answer.startswith(b"SIP/2.0 403"), answer


def _two_instances_and_a_phone_on_a(
    make_server: Callable[..., CentrexServer], pg: PrivatePostgres, phone: BusyPhone
) -> tuple[CentrexServer, CentrexServer]:
    """``pg`` started, instances A and B on it, ``phone`` registered as 1001
    through A and answering (486), and B aware of it."""
    pg.start()
    a = _instance(make_server, pg.url, "A")
    b = _instance(make_server, pg.url, "B")
    ok = phone.register(a.port, "1001")
    assert ok is not None and ok.startswith(b"SIP/2.0 200"), ok
    phone.start()
    time.sleep(STALENESS_S + 0.5)
    return a, b


def test_calls_route_from_the_cache_across_instances_while_the_database_is_down(
    make_server: Callable[..., CentrexServer],
) -> None:
    pg = PrivatePostgres()
    phone = BusyPhone()
    try:
        a, b = _two_instances_and_a_phone_on_a(make_server, pg, phone)
        pg.stop("immediate")
        time.sleep(DOWN_AFTER_S + 1)  # the heartbeats B knows are old now
        for server in (a, b):
            status, took = _call(server.port, "1001", 10)
            assert status.startswith("SIP/2.0 486"), f"through {server.port}: {status}"
            assert took < 2
        with wire.UdpPeer(b.port) as other:
            refused = _register(other, b.port, "1002")
        assert refused is not None and refused.startswith(b"SIP/2.0 503"), refused
        assert b"\r\nRetry-After: " in refused
        assert phone.invites == 2
        pg.start()
        with wire.UdpPeer(b.port) as other:
            deadline = time.monotonic() + 15
            while True:
                answer = _register(other, b.port, "1002")
                if answer is not None and answer.startswith(b"SIP/2.0 200"):
                    break
                assert time.monotonic() < deadline, f"REGISTER still refused: {answer!r}"
                time.sleep(0.2)
        assert a.running and b.running
    finally:
        phone.close()
        pg.cleanup()


def test_a_database_that_hangs_is_found_lost_and_calls_keep_routing(
    make_server: Callable[..., CentrexServer],
) -> None:
    # A database that answers nothing (SIGSTOP: a network path dropping
    # packets), not one that refuses: the instances find it lost within
    # seconds, and B keeps reaching A's phone through A: the heartbeats it
    # cannot read do not make A look down (B answered 480 at +4 s, and never
    # logged the database lost).
    pg = PrivatePostgres()
    phone = BusyPhone()
    try:
        _, b = _two_instances_and_a_phone_on_a(make_server, pg, phone)
        pg.freeze()
        frozen_at = time.monotonic()
        calls = []
        while time.monotonic() - frozen_at < DOWN_AFTER_S + 3:
            status, took = _call(b.port, "1001", 10)
            calls.append((round(time.monotonic() - frozen_at, 1), status, round(took, 2)))
            time.sleep(0.5)
        assert all(status.startswith("SIP/2.0 486") for _, status, _ in calls), calls
        deadline = time.monotonic() + 3  # (the log is written out every second)
        while "location database lost: no answer within" not in b.log(400):
            assert time.monotonic() < deadline, b.log(400)
            time.sleep(0.2)
    finally:
        phone.close()
        pg.cleanup()
