"""REGISTERs per second through ``centrex serve``: the memory store against the
PostgreSQL database store, in the same run (issue 6: the database rate must
be at least half the memory rate).

Each mode starts a real ``centrex serve`` (UDP on 127.0.0.1, authentication
off, 127.0.0.0/8 trusted so no rate limit applies, unknown users allowed,
logging at warning, no SIP trace) and sends ``--users`` (10,000) REGISTERs for
distinct users from one UDP socket, keeping ``--window`` (100) unanswered at
a time; a REGISTER unanswered for 1 s is sent again, at most 5 times. The rate
is 200 OKs over the time from the first send to the last answer. The database
mode runs in a database of its own (``CREATE DATABASE``, dropped after) on the
PostgreSQL at ``--postgresql``, schema created by ``migrate_on_start``.

    .venv/bin/python bench/registrations.py
    .venv/bin/python bench/registrations.py --users 2000 --window 50 --rounds 1

The machine may be busy with other work: ``--rounds`` (3) pairs of runs are
interleaved (memory, database, memory, ...) and the ratio is that of the
median rates. Exit status 1 when the database rate is below half the memory rate, or when a
REGISTER went unanswered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
DOMAIN = "bench.example"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def config_text(port: int, data_dir: Path, database_url: str | None) -> str:
    lines = [
        "[server]",
        f'domains = ["{DOMAIN}"]',
        f'data_dir = "{data_dir}"',
        'instance_id = "bench"',
        "[network]",
        f'listen = ["udp:{HOST}:{port}"]',
        "[registrar]",
        "allow_unknown_users = true",
        "presence_events = false",
    ]
    if database_url is not None:
        lines += [
            'store = "database"',
            "[registrar.database]",
            f'url = "{database_url}"',
            "migrate_on_start = true",
        ]
    lines += [
        "[logging]",
        'level = "warning"',
        "sip_trace = false",
        "[admin]",
        "enabled = false",
        "[auth]",
        "enabled = false",
        'trusted = ["127.0.0.0/8"]',
    ]
    return "\n".join(lines) + "\n"


def register_request(n: int, port: int) -> bytes:
    user = f"u{n:06d}"
    aor = f"<sip:{user}@{DOMAIN}>"
    return (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bKr{n};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: {aor};tag=t{n}\r\n"
        f"To: {aor}\r\n"
        f"Call-ID: bench-{n}@{HOST}\r\n"
        f"CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@{HOST}:{port}>\r\n"
        f"Expires: 3600\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


@dataclass
class Result:
    mode: str
    ok: int
    failed: int
    unanswered: int
    seconds: float
    server_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


class Client(asyncio.DatagramProtocol):
    """Keeps ``window`` REGISTERs outstanding; a 200 or another final answer frees a slot."""

    def __init__(self, total: int, window: int, server: tuple[str, int]) -> None:
        self.total = total
        self.window = window
        self.server = server
        self.next = 0
        self.pending: dict[int, tuple[float, int]] = {}
        self.ok = 0
        self.failed = 0
        self.unanswered = 0
        self.done = asyncio.get_running_loop().create_future()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def fill(self) -> None:
        while len(self.pending) < self.window and self.next < self.total:
            self._send(self.next, 0)
            self.next += 1
        if not self.pending and self.next >= self.total and not self.done.done():
            self.done.set_result(None)

    def _send(self, n: int, tries: int) -> None:
        assert self.transport is not None
        self.pending[n] = (time.monotonic(), tries)
        self.transport.sendto(register_request(n, self.port), self.server)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(b"SIP/2.0 100"):
            return
        start = data.find(b"Call-ID: bench-")
        if start < 0:
            return
        end = data.find(b"@", start)
        n = int(data[start + 15 : end])
        if self.pending.pop(n, None) is None:
            return
        if data.startswith(b"SIP/2.0 200"):
            self.ok += 1
        else:
            self.failed += 1
        self.fill()

    def retransmit(self) -> None:
        now = time.monotonic()
        for n, (sent, tries) in list(self.pending.items()):
            if now - sent >= 1.0:
                if tries >= 5:
                    del self.pending[n]
                    self.unanswered += 1
                else:
                    self._send(n, tries + 1)
        self.fill()


async def measure(mode: str, port: int, users: int, window: int) -> Result:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: Client(users, window, (HOST, port)), local_addr=(HOST, 0)
    )
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    start = time.monotonic()
    client.fill()
    try:
        while not client.done.done():
            await asyncio.wait({client.done}, timeout=0.25)
            client.retransmit()
            if time.monotonic() - start > 600:
                raise TimeoutError(f"{mode}: not done within 600 s")
    finally:
        transport.close()
    return Result(mode, client.ok, client.failed, client.unanswered, time.monotonic() - start)


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    options = (
        f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:9;branch=z9hG4bKo;rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:b@{HOST}>;tag=o\r\nTo: <sip:{HOST}>\r\n"
        f"Call-ID: ready@{HOST}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    deadline = time.monotonic() + 30
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.3)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"centrex serve exited:\n{log.read_text()[-3000:]}")
            probe.sendto(options, (HOST, port))
            with contextlib.suppress(TimeoutError):
                if probe.recv(65535).startswith(b"SIP/2.0 200"):
                    return
    raise RuntimeError(f"centrex serve not ready:\n{log.read_text()[-3000:]}")


def run_mode(mode: str, database_url: str | None, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"centrex-bench-{mode}-") as folder:
        root = Path(folder)
        port = free_port()
        config = root / "centrex.toml"
        config.write_text(config_text(port, root / "data", database_url))
        log = root / "server.log"
        centrex = Path(sys.executable).parent / "centrex"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(centrex), "serve", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_ready(port, process, log)
            before = cpu_seconds(process.pid)
            result = asyncio.run(measure(mode, port, args.users, args.window))
            result.server_cpu_s = cpu_seconds(process.pid) - before
            return result
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _admin(url: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(plain, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="distinct users (10000)")
    parser.add_argument("--window", type=int, default=100, help="REGISTERs in flight (100)")
    parser.add_argument(
        "--postgresql",
        default=os.environ.get("CENTREX_TEST_POSTGRESQL_URL", DEFAULT_PG),
        help=f"a PostgreSQL to create the bench database on ({DEFAULT_PG})",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="memory / database pairs, interleaved (3)"
    )
    args = parser.parse_args()
    results: list[Result] = []
    for _ in range(args.rounds):
        results.append(run_mode("memory", None, args))
        name = f"centrex_bench_{secrets.token_hex(4)}"
        asyncio.run(_admin(args.postgresql, f"CREATE DATABASE {name}"))
        try:
            url = args.postgresql.rsplit("/", 1)[0] + "/" + name
            results.append(run_mode("database", url, args))
        finally:
            asyncio.run(_admin(args.postgresql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    print(
        f"{args.users} distinct users per run, {args.window} REGISTERs in flight, "
        f"one UDP socket, {args.rounds} rounds"
    )
    print("| store | 200 OK | other | unanswered | seconds | REGISTER/s | server CPU µs/REGISTER |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        cpu = r.server_cpu_s / args.users * 1e6
        print(
            f"| {r.mode} | {r.ok} | {r.failed} | {r.unanswered} | {r.seconds:.2f} "
            f"| {r.rate:,.0f} | {cpu:,.0f} |"
        )
    memory = statistics.median(r.rate for r in results if r.mode == "memory")
    database = statistics.median(r.rate for r in results if r.mode == "database")
    ratio = database / memory if memory else 0.0
    print(
        f"median: memory {memory:,.0f}/s, database {database:,.0f}/s, "
        f"database / memory = {ratio:.2f} (target >= 0.5)"
    )
    missed = ratio < 0.5 or any(r.unanswered for r in results)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
