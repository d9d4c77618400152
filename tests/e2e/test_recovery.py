"""Crash tests of the memory location store's recovery file (DESIGN.md: "nothing
is lost on a crash beyond what the configuration allows").

sipp registers a crowd of users, the server is killed with SIGKILL (no chance
to flush), restarted with the same config, and ``centrex registrations``
(which reads the recovery file) must show what the settings promise. To be sure
the restarted server itself holds them (not just the file), one more user
registers with it and a graceful stop (SIGTERM flushes) must list all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e import wire
from tests.e2e.conftest import CentrexServer, Phones

FIRST_USER = 2000
LATE_USER = "3000"
#: Registrations per second that sipp sends.
RATE = 500


def aor(user: int | str) -> str:
    return f"sip:{user}@example.com"


def injection_file(tmp_path: Path, count: int) -> Path:
    """sipp -inf file: one user per line, 2000, 2001, ..."""
    path = tmp_path / f"users-{count}.csv"
    lines = ["SEQUENTIAL", *(str(FIRST_USER + i) for i in range(count))]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def register_crowd(phones: Phones, tmp_path: Path, count: int) -> set[str]:
    """Register users 2000.. (``count`` of them) with sipp; their AORs."""
    users = injection_file(tmp_path, count)
    phones.run(
        "register_many.xml",
        calls=count,
        name=f"register-{count}",
        extra=("-inf", str(users), "-r", str(RATE), "-rp", "1000"),
    )
    return {aor(FIRST_USER + i) for i in range(count)}


def register_late_user_and_stop(server: CentrexServer) -> None:
    """REGISTER one more user with the (restarted) server, then stop it gracefully."""
    with wire.UdpPeer(server.port) as peer:
        peer.send(wire.register(server.port, LATE_USER, transport="udp", local_port=peer.port))
        answer = wire.final_answer(peer, 5.0)
    assert answer is not None and wire.status_line(answer).startswith("SIP/2.0 200 "), answer
    assert server.stop() == 0, f"graceful stop failed:\n{server.log()}"


def test_registrations_flushed_before_a_kill_9_all_come_back(
    make_server: Callable[..., CentrexServer],
    make_phones: Callable[[CentrexServer], Phones],
    tmp_path: Path,
) -> None:
    server = make_server(registrar={"allow_unknown_users": True, "recovery_every_seconds": 1})
    registered = register_crowd(make_phones(server), tmp_path, 1000)
    # recovery_every_seconds = 1: within a couple of seconds all are on disk.
    server.wait_registrations(lambda rows: len(rows) >= 1000, timeout=10, what="1000")

    server.kill()
    server.start()

    assert set(server.registrations()) == registered
    register_late_user_and_stop(server)
    assert sorted(server.registrations()) == sorted(registered | {aor(LATE_USER)})


def test_kill_9_between_flushes_loses_at_most_the_changes_since_the_last_count_flush(
    make_server: Callable[..., CentrexServer],
    make_phones: Callable[[CentrexServer], Phones],
    tmp_path: Path,
) -> None:
    every, count = 100, 250
    server = make_server(
        registrar={
            "allow_unknown_users": True,
            "recovery_every_seconds": 30,
            "recovery_every_registrations": every,
        }
    )
    started = time.monotonic()
    registered = register_crowd(make_phones(server), tmp_path, count)
    server.kill()
    # The kill came long before the 30 s timer could flush anything.
    assert time.monotonic() - started < 30

    server.start()

    # The file was written after the 100th and the 200th change (each REGISTER
    # is answered only once its flush is done), so only the 50 registered
    # since the last count-flush may be lost: never 100 or more.
    promised = count - count % every
    survivors = set(server.registrations())
    assert survivors <= registered
    assert promised <= len(survivors) <= count, (
        f"{len(survivors)} of {count} registrations survived a kill -9 with "
        f"recovery_every_registrations = {every}; at least {promised} were promised"
    )
    register_late_user_and_stop(server)
    assert set(server.registrations()) == survivors | {aor(LATE_USER)}
