"""Registrar presence events under load (issue 4, "What it must show").

With ``--users`` (10,000) users registered and ``--subscribers`` (100) of them
subscribed to user-available and user-unavailable, this measures:

(a) the time until every subscriber holds both initial lists whole (all
    registered users in user-available, the directory's ``--new`` other users
    in user-unavailable);
(b) the fan-out of ``--new`` (1,000) registrations sent at ``--rate`` per
    second: the time from the first REGISTER until every subscriber has been
    told of every new user, and the NOTIFYs that took;
(c) the size of every NOTIFY received (the limit is ``notify_max_bytes``,
    1300 by default);
(d) the response time of those REGISTERs, p50 / p99 / max, against a run of
    the same registrations on a server with the same registrations but no
    subscribers (the issue asks for within 2x).

The server is a ``centrex.server.Server`` built with ``parse_settings``, in a
process of its own (as ``centrex serve`` runs it: same loop factory, UDP on
127.0.0.1:0, authentication off, 127.0.0.0/8 trusted so no rate limit
applies, logging at warning, no SIP trace, the other settings at their
defaults). Phones and subscribers are UDP sockets in this process, with
receive buffers as large as the server's, so a burst of NOTIFYs is not
dropped here; subscribers answer every NOTIFY 200 at once. A REGISTER's
response time runs from its send to the kernel's receive timestamp of its
200 (SO_TIMESTAMPNS): this process's own work with the NOTIFYs does not count
in it. Each phase also reports the server's CPU time and its full (generation
2) garbage collections, which stop its event loop.

    .venv/bin/python bench/presence.py                      # the issue's figures
    .venv/bin/python bench/presence.py --form both --rate 200 50 10
    .venv/bin/python bench/presence.py --users 2000 --subscribers 20 --new 200

Everything is bounded: each phase has ``--phase-timeout`` seconds (a phase
that does not complete is reported INCOMPLETE with what the subscribers got),
a REGISTER is retransmitted at most 6 times (then it counts as never
answered), and the server process is killed if it does not stop within 10 s.
The exit status is 1 when a target of the issue is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HOST = "127.0.0.1"
DOMAIN = "example.com"
FIRST_USER = 20000
#: Linux: SO_TIMESTAMPNS (= SCM_TIMESTAMPNS), a struct timespec per datagram.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")
#: REGISTER retransmissions before it counts as unanswered.
MAX_RETRANSMISSIONS = 6

FIRST_NAMES = ("Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Mia", "Lucas")
LAST_NAMES = ("Garcia", "Smith", "Johnson", "Martinez", "Brown", "Nguyen", "Rossi", "Schmidt")


def user_name(i: int) -> str:
    return str(FIRST_USER + i)


def description(i: int) -> str:
    return f"{FIRST_NAMES[i % 10]} {LAST_NAMES[i // 10 % 8]} ({i % 97 + 1}F)"


# -- the server, in a process of its own ------------------------------------------------


def config_text(data_dir: Path, form: str, directory_size: int) -> str:
    lines = [
        "[server]",
        f'domains = ["{DOMAIN}"]',
        f'data_dir = "{data_dir}"',
        "[network]",
        f'listen = ["udp:{HOST}:0"]',
        "[registrar]",
        f'presence_compat = "{"lanscape" if form == "lanscape" else ""}"',
        "[logging]",
        'level = "warning"',
        "sip_trace = false",
        "[admin]",
        "enabled = false",
        "[auth]",
        "enabled = false",
        'trusted = ["127.0.0.0/8"]',
    ]
    for i in range(directory_size):
        lines += ["[[users]]", f'user = "{user_name(i)}"', f'description = "{description(i)}"']
    return "\n".join(lines) + "\n"


class Watchdog:
    """In the server process: a thread that samples the event loop thread's
    stack whenever the loop has not run for ``threshold_s`` (--watchdog), so
    that what stops the loop can be named. A callback on the loop marks it
    alive every few milliseconds; the sampling itself takes the GIL, so the
    numbers of a run with it are not the bench's figures."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self.beat = time.perf_counter()
        self.cpu = 0.0
        self.stalls: list[tuple[float, float, dict[str, int]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id = 0
        self._gc_started = 0.0
        self.collections: dict[int, tuple[int, float, float]] = {}
        self.calls: dict[str, tuple[int, float, float]] = {}
        self.totals: dict[str, list[Any]] = {}
        self.beat_totals: dict[str, tuple[int, float]] = {}

    def time_calls(self, owner: Any, name: str) -> None:
        """Time every call of method ``name`` of class ``owner`` (CPU, on the loop).

        Only calls that look the method up on the class are timed: in the
        compiled build, compiled code calls a compiled method directly (the
        service's ``_send_each``, its ``tick`` from the server), so those need
        ``CENTREX_PURE_PYTHON=1`` to be counted."""
        method = getattr(owner, name)
        label = f"{owner.__name__}.{name}"
        watchdog = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                took = time.thread_time() - started
                calls = watchdog.calls
                count, total, longest = calls.get(label, (0, 0.0, 0.0))
                calls[label] = (count + 1, total + took, max(longest, took))
                running = watchdog.totals.setdefault(label, [0, 0.0])
                running[0] += 1
                running[1] += took
                if took >= watchdog.threshold_s / 2:
                    watchdog.stalls.append((time.perf_counter(), took, {f"call {label}": 1}))

        setattr(owner, name, timed)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        import threading

        self._loop = loop
        self._thread_id = threading.get_ident()
        self._heartbeat()
        threading.Thread(target=self._watch, daemon=True).start()

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """A collection of any generation longer than 2 ms counts as a stall of its own."""
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_started
        gen = info["generation"]
        count, total, longest = self.collections.get(gen, (0, 0.0, 0.0))
        self.collections[gen] = (count + 1, total + took, max(longest, took))
        if took >= 0.002:
            what = f"gc gen {gen}, {info.get('collected', 0)} collected"
            self.stalls.append((self._gc_started, took, {what: 1}))

    def take(self) -> list[tuple[float, float, dict[str, int]]]:
        """The stalls since the previous call: (start, seconds, stack -> samples)."""
        stalls, self.stalls = self.stalls, []
        for gen, (count, total, longest) in sorted(self.collections.items()):
            what = f"collections of gen {gen}: {count}, {total * 1000:.1f} ms"
            stalls.append((0.0, longest, {what: 1}))
        self.collections = {}
        for label, (count, total, longest) in sorted(self.calls.items()):
            what = f"{label}: {count} calls, {total * 1000:.1f} ms CPU"
            stalls.append((0.0, longest, {what: 1}))
        self.calls = {}
        return stalls

    def _heartbeat(self) -> None:
        self.beat_totals = {label: (n, cpu) for label, (n, cpu) in self.totals.items()}
        self.cpu = time.thread_time()
        self.beat = time.perf_counter()
        assert self._loop is not None
        self._loop.call_later(0.002, self._heartbeat)

    def _watch(self) -> None:
        import threading
        import traceback

        here = str(Path(__file__).resolve().parent.parent)
        while True:
            time.sleep(0.002)
            beat = self.beat
            if time.perf_counter() - beat < self.threshold_s:
                continue
            cpu = self.cpu
            before = self.beat_totals
            stacks: dict[str, int] = {}
            me = threading.get_ident()
            while self.beat == beat:
                # Every thread's: a worker thread holding the GIL stops the loop too.
                parts = []
                for ident, frame in sys._current_frames().items():
                    if ident == me:
                        continue
                    lines = [
                        f"{Path(f.filename).name}:{f.lineno} {f.name}"
                        for f in traceback.extract_stack(frame)
                        if f.filename.startswith(here)
                    ]
                    if ident == self._thread_id:
                        parts.insert(0, " < ".join(reversed(lines[-8:])) or "(in C)")
                    elif lines:
                        parts.append("thread: " + " < ".join(reversed(lines[-4:])))
                key = " | ".join(parts)
                stacks[key] = stacks.get(key, 0) + 1
                time.sleep(0.002)
            # The loop thread's own CPU time in the gap: much less than the gap
            # means it waited (for the GIL, or for a CPU another process had).
            ran = []
            for label, (n, spent) in self.beat_totals.items():
                n0, spent0 = before.get(label, (0, 0.0))
                if n > n0:
                    ran.append(f"{n - n0} {label.split('.')[-1]} {(spent - spent0) * 1000:.1f} ms")
            stacks[f"loop thread CPU {(self.cpu - cpu) * 1000:.1f} ms; ran {', '.join(ran)}"] = 0
            self.stalls.append((beat, self.beat - beat, stacks))


def _serve(
    text: str, conn: multiprocessing.connection.Connection, profile: str, watchdog_ms: float
) -> None:
    from centrex.cli import tune_serving_process
    from centrex.config import parse_settings
    from centrex.server import Server
    from centrex.transport import best_loop_factory

    # Full (generation 2) garbage collections stop the loop: count and time them.
    full_gc = {"count": 0, "seconds": 0.0, "longest": 0.0, "started": 0.0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            full_gc["started"] = time.perf_counter()
            return
        took = time.perf_counter() - full_gc["started"]
        full_gc["count"] += 1
        full_gc["seconds"] += took
        full_gc["longest"] = max(full_gc["longest"], took)

    gc.callbacks.append(on_gc)
    watchdog = Watchdog(watchdog_ms / 1000) if watchdog_ms > 0 else None
    if watchdog is not None:
        gc.callbacks.append(watchdog.on_gc)
        from centrex.presence.service import PresenceService
        from centrex.registrar.events import EventListeners
        from centrex.transport.udp import UdpEndpoint

        for owner, name in (
            (UdpEndpoint, "datagram_received"),
            (Server, "_on_timer"),
            (PresenceService, "_release_due"),
            (PresenceService, "_send_each"),
            (PresenceService, "on_aor_event"),
            (PresenceService, "tick"),
            (EventListeners, "_deliver"),
        ):
            watchdog.time_calls(owner, name)

    async def main() -> None:
        server = Server(parse_settings(text))
        await server.start()
        tune_serving_process()  # as `centrex serve` does after start-up
        conn.send(server.transport.bound_port("udp"))
        loop = asyncio.get_running_loop()
        if watchdog is not None:
            watchdog.start(loop)
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "freeze":
                # --freeze-gc: what a server could do after loading (not what
                # centrex serve does): collect once, then keep everything that
                # survived out of later collections.
                gc.collect()
                gc.freeze()
                conn.send(gc.get_freeze_count())
                continue
            if command == "stalls":
                conn.send(watchdog.take() if watchdog is not None else [])
                continue
            if command == "sample":
                conn.send(
                    Sample(
                        time.process_time(),
                        int(full_gc["count"]),
                        full_gc["seconds"],
                        full_gc["longest"],
                        len(gc.get_objects()),
                    )
                )
                full_gc["longest"] = 0.0
                continue
            break  # "stop"
        presence = server.presence
        stats = {
            "notifies_sent": presence.notifies_sent if presence else 0,
            "notifies_failed": presence.notifies_failed if presence else 0,
            "subscriptions": len(presence.table) if presence else 0,
        }
        await server.stop()
        conn.send(stats)

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    with asyncio.Runner(loop_factory=best_loop_factory()) as runner:
        runner.run(main())
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)


@dataclass(frozen=True)
class Sample:
    """The server process's CPU time and full garbage collections (count, total
    seconds; ``longest`` since the previous sample); ``since`` keeps the object
    count of the earlier sample."""

    cpu_s: float
    full_gc: int
    full_gc_s: float
    longest_gc_s: float
    #: Objects the collector tracks (what a full collection walks).
    objects: int = 0

    def since(self, before: Sample) -> Sample:
        return Sample(
            self.cpu_s - before.cpu_s,
            self.full_gc - before.full_gc,
            self.full_gc_s - before.full_gc_s,
            self.longest_gc_s,
            before.objects,
        )


class ServerProcess:
    def __init__(
        self, form: str, directory_size: int, root: Path, profile: str = "", watchdog_ms: float = 0
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        text = config_text(root / "data", form, directory_size)
        self.process = ctx.Process(
            target=_serve, args=(text, child, profile, watchdog_ms), daemon=True
        )
        self.process.start()
        if not self.conn.poll(60):
            self.process.kill()
            raise RuntimeError("the server did not start within 60 s")
        self.port: int = self.conn.recv()

    def sample(self) -> Sample:
        """The server process's CPU seconds and full collections so far."""
        self.conn.send("sample")
        if not self.conn.poll(30):
            raise RuntimeError("the server did not answer within 30 s")
        sample: Sample = self.conn.recv()
        return sample

    def stalls(self) -> list[tuple[float, float, dict[str, int]]]:
        """The loop stalls the server's watchdog saw since the previous call."""
        self.conn.send("stalls")
        if not self.conn.poll(30):
            raise RuntimeError("the server did not answer within 30 s")
        stalls: list[tuple[float, float, dict[str, int]]] = self.conn.recv()
        return stalls

    def freeze_gc(self) -> int:
        """gc.collect() and gc.freeze() in the server process; objects frozen."""
        self.conn.send("freeze")
        if not self.conn.poll(60):
            raise RuntimeError("the server did not freeze its heap within 60 s")
        frozen: int = self.conn.recv()
        return frozen

    def stop(self) -> dict[str, int]:
        stats: dict[str, int] = {}
        try:
            self.conn.send("stop")
            if self.conn.poll(10):
                stats = self.conn.recv()
        except (OSError, EOFError):
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        return stats


# -- SIP bits ---------------------------------------------------------------------------


def register_request(user: str, port: int, call_id: str, cseq: int, branch: str) -> bytes:
    aor = f"<sip:{user}@{DOMAIN}>"
    return (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bK{branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: {aor};tag=r{call_id}\r\n"
        f"To: {aor}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{user}@{HOST}:{port}>\r\n"
        f"Expires: 3600\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def subscribe_request(user: str, port: int, event: str, call_id: str) -> bytes:
    return (
        f"SUBSCRIBE sip:Registrar@{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bKs{call_id};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{DOMAIN}>;tag=s{call_id}\r\n"
        f"To: <sip:Registrar@{DOMAIN}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 SUBSCRIBE\r\n"
        f"Contact: <sip:{user}@{HOST}:{port}>\r\n"
        f"Event: {event}\r\n"
        f"Expires: 3600\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def header(lines: list[bytes], name: bytes) -> bytes | None:
    prefix = name.lower() + b":"
    for line in lines[1:]:
        if line[: len(prefix)].lower() == prefix:
            return line[len(prefix) :].strip()
    return None


def ok_for(lines: list[bytes]) -> bytes:
    """200 OK to a request (RFC 3261 8.2.6): its Via, From, To (with a tag), Call-ID, CSeq."""
    out = [b"SIP/2.0 200 OK"]
    for line in lines[1:]:
        key = line.split(b":", 1)[0].strip().lower()
        if key in (b"via", b"from", b"call-id", b"cseq"):
            out.append(line)
        elif key == b"to":
            out.append(line if b";tag=" in line else line + b";tag=w")
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"


# -- phones: REGISTERs with their response times ----------------------------------------


def udp_socket() -> socket.socket:
    """A UDP socket on 127.0.0.1 with a receive buffer as large as the server's
    (the kernel caps it at net.core.rmem_max), so that what the server sends
    in a burst is not dropped here."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return sock


class Registrar:
    """One UDP socket sending REGISTERs and timing their 200s by the kernel's clock."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: tuple[str, int]) -> None:
        self.loop = loop
        self.server = server
        self.sock = udp_socket()
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.port: int = self.sock.getsockname()[1]
        #: call_id -> (first send time, user, retransmissions, future)
        self.pending: dict[str, tuple[float, str, int, asyncio.Future[float]]] = {}
        self.statuses: dict[int, int] = {}
        self.retransmissions = 0
        self.unanswered = 0
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def register(self, user: str, call_id: str) -> asyncio.Future[float]:
        """Send the REGISTER; the future gets its response time in seconds (inf:
        no final answer to it or its retransmissions)."""
        future: asyncio.Future[float] = self.loop.create_future()
        sent = time.time()
        self.pending[call_id] = (sent, user, 0, future)
        self.sock.sendto(register_request(user, self.port, call_id, 1, call_id), self.server)
        self.loop.call_later(0.5, self._retransmit, call_id, 0.5)
        return future

    def _retransmit(self, call_id: str, interval: float) -> None:
        entry = self.pending.get(call_id)
        if entry is None:
            return
        sent, user, count, future = entry
        if count >= MAX_RETRANSMISSIONS:
            # Sent at 0, 0.5, 1.5, 3.5, 7.5, 11.5 and 15.5 s and still
            # unanswered at 19.5 s: counted as never answered.
            del self.pending[call_id]
            self.unanswered += 1
            future.set_result(math.inf)
            return
        self.pending[call_id] = (sent, user, count + 1, future)
        self.retransmissions += 1
        self.sock.sendto(register_request(user, self.port, call_id, 1, call_id), self.server)
        self.loop.call_later(min(interval * 2, 4.0), self._retransmit, call_id, interval * 2)

    def _readable(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(65535, 64)
            except BlockingIOError:
                return
            received = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = TIMESPEC.unpack(value[: TIMESPEC.size])
                    received = seconds + nanoseconds / 1e9
            if not data.startswith(b"SIP/2.0 "):
                continue
            status = int(data[8:11])
            if status < 200:
                continue
            lines = header_lines(data)
            call_id = (header(lines, b"Call-ID") or b"").decode()
            entry = self.pending.pop(call_id, None)
            if entry is None:
                continue
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if not entry[3].done():
                entry[3].set_result(received - entry[0])


async def register_crowd(registrar: Registrar, users: list[str], window: int = 200) -> float:
    """Register ``users`` with at most ``window`` REGISTERs outstanding; seconds taken."""
    started = time.perf_counter()
    semaphore = asyncio.Semaphore(window)

    async def one(user: str) -> None:
        async with semaphore:
            if math.isinf(await registrar.register(user, f"crowd-{user}")):
                raise RuntimeError(f"setup: the REGISTER of {user} was never answered")

    await asyncio.gather(*(one(u) for u in users))
    return time.perf_counter() - started


async def register_paced(
    registrar: Registrar, users: list[str], rate: float, tag: str
) -> tuple[list[float], float]:
    """Register ``users`` at ``rate`` per second (open loop); response times and
    the time the first was sent (perf_counter)."""
    futures: list[asyncio.Future[float]] = []
    started = time.perf_counter()
    for n, user in enumerate(users):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        futures.append(registrar.register(user, f"{tag}-{user}"))
    return list(await asyncio.gather(*futures)), started


# -- subscribers --------------------------------------------------------------------------


@dataclass
class Watch:
    """What one subscription of one subscriber has been told."""

    names: set[str] = field(default_factory=set)
    notifies: int = 0


class Subscriber(asyncio.DatagramProtocol):
    """A phone that subscribes both registrar events and answers every NOTIFY 200."""

    def __init__(self, user: str, board: Board) -> None:
        self.user = user
        self.board = board
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.watches = {"user-available": Watch(), "user-unavailable": Watch()}
        self.seen: set[bytes] = set()
        self.answers: dict[str, int] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.board.server)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data.startswith(b"SIP/2.0 "):
            lines = header_lines(data)
            cseq = (header(lines, b"CSeq") or b"").decode()
            if cseq.endswith("SUBSCRIBE") or cseq.endswith("REGISTER"):
                self.answers[cseq] = int(data[8:11])
                self.board.changed()
            return
        if not data.startswith(b"NOTIFY "):
            return
        lines = header_lines(data)
        assert self.transport is not None
        self.transport.sendto(ok_for(lines), addr)
        key = (header(lines, b"Call-ID") or b"") + b" " + (header(lines, b"CSeq") or b"")
        if key in self.seen:
            self.board.retransmitted += 1
            return
        self.seen.add(key)
        self.board.notify_sizes.append(len(data))
        event = (header(lines, b"Event") or b"").decode("utf-8", "replace")
        package, _, rest = event.partition(";")
        watch = self.watches.get(package.strip())
        if watch is None:
            return
        watch.notifies += 1
        for param in rest.split(";"):
            key_, _, value = param.partition("=")
            if key_.strip() == "param":
                watch.names.update(value.split("|")[0::2])
        self.board.changed()


def _least(row: tuple[str, dict[str, tuple[int, int]]]) -> int:
    return sum(names for names, _ in row[1].values())


class Board:
    """All subscribers, and a wait for a condition over them."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.subscribers: list[Subscriber] = []
        self.notify_sizes: list[int] = []
        self.retransmitted = 0
        self._condition: Callable[[], bool] | None = None
        self._met: asyncio.Future[float] | None = None

    def changed(self) -> None:
        if self._met is not None and not self._met.done():
            assert self._condition is not None
            if self._condition():
                self._met.set_result(time.perf_counter())

    async def until(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Wait until ``condition`` holds; the perf_counter time it first did."""
        loop = asyncio.get_running_loop()
        self._condition = condition
        self._met = loop.create_future()
        self.changed()
        try:
            return await asyncio.wait_for(self._met, timeout)
        except TimeoutError:
            told = [
                (s.user, {e: (len(w.names), w.notifies) for e, w in s.watches.items()})
                for s in self.subscribers
            ]
            raise TimeoutError(
                f"{what}: not within {timeout} s; (names, NOTIFYs) per subscriber and event,"
                f" first ones: {told[:5]}, least told: {min(told, key=_least, default=None)}"
            ) from None
        finally:
            self._condition = None


# -- one run ------------------------------------------------------------------------------


@dataclass
class Result:
    """What one run measured (``subscribers`` = 0: the run without subscribers)."""

    form: str
    subscribers: int
    rate: float
    crowd_s: float = 0.0
    lists_s: float | None = None
    lists_notifies: int = 0
    lists_server: Sample | None = None
    lists_retransmitted: int = 0
    lists_client_cpu_s: float = 0.0
    fanout_s: float | None = None
    fanout_notifies: int = 0
    fanout_names: int = 0
    register_times: list[float] = field(default_factory=list)
    register_span_s: float = 0.0
    register_server: Sample | None = None
    register_client_cpu_s: float = 0.0
    notify_sizes: list[int] = field(default_factory=list)
    retransmitted: int = 0
    register_retransmissions: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
    stalls: list[tuple[float, float, dict[str, int]]] = field(default_factory=list)
    server: dict[str, int] = field(default_factory=dict)


async def run(args: argparse.Namespace, form: str, subscribers: int, rate: float) -> Result:
    """A fresh server, ``args.users`` registered, ``subscribers`` subscribed, then
    ``args.new`` registrations at ``rate`` per second."""
    result = Result(form, subscribers, rate)
    loop = asyncio.get_running_loop()
    profile = ""
    if args.profile and subscribers:
        profile = f"{args.profile}.{form}.{rate:g}"
    with tempfile.TemporaryDirectory(prefix="centrex-bench-presence-") as tmp:
        server = await loop.run_in_executor(
            None, ServerProcess, form, args.users + args.new, Path(tmp), profile, args.watchdog
        )
        registrar = Registrar(loop, (HOST, server.port))
        board = Board((HOST, server.port))
        try:
            await _run(args, result, server, registrar, board, loop)
        finally:
            for sub in board.subscribers:
                if sub.transport is not None:
                    sub.transport.close()
            registrar.close()
            result.server = await loop.run_in_executor(None, server.stop)
    return result


async def _run(
    args: argparse.Namespace,
    result: Result,
    server: ServerProcess,
    registrar: Registrar,
    board: Board,
    loop: asyncio.AbstractEventLoop,
) -> None:
    timeout = args.phase_timeout
    everyone = [user_name(i) for i in range(args.users)]
    newcomers = [user_name(args.users + i) for i in range(args.new)]

    # The subscribers are registered users: the first ones, from their own sockets.
    for user in everyone[: result.subscribers]:
        _, sub = await loop.create_datagram_endpoint(
            lambda u=user: Subscriber(u, board), sock=udp_socket()
        )
        board.subscribers.append(sub)
    for sub in board.subscribers:
        sub.send(register_request(sub.user, sub.port, f"reg-{sub.user}", 1, f"r{sub.user}"))
    await board.until(
        lambda: all(s.answers.get("1 REGISTER") == 200 for s in board.subscribers),
        timeout,
        "subscribers registered",
    )
    result.crowd_s = await asyncio.wait_for(
        register_crowd(registrar, everyone[result.subscribers :]), timeout
    )

    if args.freeze_gc:
        server.freeze_gc()

    if board.subscribers:
        # (a) Both initial lists, to every subscriber.
        at_start = server.sample()
        client_cpu = time.process_time()
        started = time.perf_counter()
        for sub in board.subscribers:
            for event in ("user-available", "user-unavailable"):
                sub.send(subscribe_request(sub.user, sub.port, event, f"{event}-{sub.user}"))
        available, unavailable = len(everyone), len(newcomers)
        try:
            done = await board.until(
                lambda: all(
                    len(s.watches["user-available"].names) >= available
                    and len(s.watches["user-unavailable"].names) >= unavailable
                    for s in board.subscribers
                ),
                timeout,
                "initial lists",
            )
            result.lists_s = done - started
        except TimeoutError as exc:
            result.incomplete.append(str(exc))
        result.lists_notifies = len(board.notify_sizes)
        result.lists_server = server.sample().since(at_start)
        result.lists_client_cpu_s = time.process_time() - client_cpu
        result.lists_retransmitted = board.retransmitted
        bad = [s.answers for s in board.subscribers if s.answers.get("1 SUBSCRIBE") != 200]
        if bad:
            raise RuntimeError(f"SUBSCRIBE not answered 200: {bad[:3]}")
        # Let the last 200s land and the server settle before the measured phase.
        await asyncio.sleep(2.0)

    # (b), (d) New users register at a steady rate.
    if args.freeze_gc:
        server.freeze_gc()
    before = len(board.notify_sizes)
    names_before = sum(len(s.watches["user-available"].names) for s in board.subscribers)
    registrar.retransmissions = 0
    registrar.unanswered = 0
    registrar.statuses.clear()
    server.stalls()
    sampled = server.sample()
    client_cpu = time.process_time()
    times, started = await asyncio.wait_for(
        register_paced(registrar, newcomers, result.rate, f"new{result.subscribers}"), timeout
    )
    result.register_times = times
    result.register_span_s = time.perf_counter() - started
    result.register_retransmissions = registrar.retransmissions
    result.statuses = dict(registrar.statuses)
    if registrar.unanswered:
        result.statuses[0] = registrar.unanswered  # "0": never answered
    if board.subscribers:
        target = len(everyone) + len(newcomers)
        try:
            done = await board.until(
                lambda: all(
                    len(s.watches["user-available"].names) >= target for s in board.subscribers
                ),
                timeout,
                "fan-out of the new registrations",
            )
            result.fanout_s = done - started
        except TimeoutError as exc:
            result.incomplete.append(str(exc))
        result.fanout_notifies = len(board.notify_sizes) - before
        names_after = sum(len(s.watches["user-available"].names) for s in board.subscribers)
        result.fanout_names = names_after - names_before
    result.register_server = server.sample().since(sampled)
    result.stalls = server.stalls()
    result.register_client_cpu_s = time.process_time() - client_cpu
    result.notify_sizes = list(board.notify_sizes)
    result.retransmitted = board.retransmitted


# -- report -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value * 1000:.1f}"


def busy(sample: Sample | None) -> str:
    """The server's CPU time and full garbage collections in a phase."""
    if sample is None:
        return "-"
    return (
        f"CPU {sample.cpu_s:.2f} s, {sample.full_gc} full GCs"
        f" ({sample.full_gc_s * 1000:.0f} ms, longest {sample.longest_gc_s * 1000:.0f} ms,"
        f" {sample.objects / 1e6:.2f}M objects)"
    )


def seconds(value: float | None) -> str:
    return "incomplete" if value is None else f"{value:.2f} s"


def print_header(args: argparse.Namespace) -> None:
    print(
        f"# bench/presence.py, {datetime.date.today().isoformat()}: {args.users} registered"
        f" users, {args.subscribers} subscribers x 2 events, {args.new} new registrations"
        + (" (--freeze-gc)" if args.freeze_gc else "")
    )
    print(
        f"# {platform.python_implementation()} {platform.python_version()},"
        f" {platform.machine()}, {os.cpu_count()} CPUs, server loop: {_loop_name()},"
        f" compiled modules: {_sip_build()}"
    )


def _sip_build() -> str:
    """Which build of the compiled modules the server (this checkout, this
    environment) runs: "compiled" or "pure (why)"."""
    from centrex import native

    return native.mode + (f" ({native.reason})" if native.reason else "")


def report(args: argparse.Namespace, base: Result, loaded: Result) -> bool:
    """Print the figures of one pair of runs; False when a target of the issue was missed."""
    sizes = loaded.notify_sizes
    over = sum(1 for s in sizes if s > args.notify_max_bytes)
    print(f"\n## form {loaded.form}, new registrations at {loaded.rate:g}/s")
    crowd = args.users - loaded.subscribers
    print(
        f"setup: {crowd} others registered in {loaded.crowd_s:.2f} s"
        f" ({crowd / max(loaded.crowd_s, 1e-9):,.0f}/s, 200 outstanding)"
    )
    per_s = loaded.lists_notifies / loaded.lists_s if loaded.lists_s else 0.0
    print(
        f"(a) initial lists: {seconds(loaded.lists_s)}, {loaded.lists_notifies} NOTIFYs"
        f" ({per_s:,.0f}/s), {loaded.lists_retransmitted} of them retransmitted;"
        f" server {busy(loaded.lists_server)}; this process's CPU"
        f" {loaded.lists_client_cpu_s:.2f} s"
    )
    names = loaded.fanout_names / max(loaded.fanout_notifies, 1)
    print(
        f"(b) fan-out: {seconds(loaded.fanout_s)} from the first REGISTER to the last"
        f" subscriber told (REGISTERs sent over {loaded.register_span_s:.2f} s),"
        f" {loaded.fanout_notifies} NOTIFYs, {names:.1f} names per NOTIFY;"
        f" server {busy(loaded.register_server)}; this process's CPU"
        f" {loaded.register_client_cpu_s:.2f} s"
    )
    print(
        f"(c) NOTIFY sizes: {len(sizes)} NOTIFYs, largest {max(sizes, default=0)} B,"
        f" mean {statistics.fmean(sizes) if sizes else 0:.0f} B, {over} over"
        f" {args.notify_max_bytes} B; {loaded.retransmitted - loaded.lists_retransmitted}"
        " retransmitted during the fan-out"
    )
    print("(d) REGISTER response times during the new registrations (ms), and the server then:")
    print("    run             |   p50 |   p90 |   p99 |   max | retransmitted | answers | server")
    for label, r in (("no subscribers", base), (f"{loaded.subscribers} subscribers", loaded)):
        t = r.register_times
        print(
            f"    {label:<15} | {ms(percentile(t, 50)):>5} | {ms(percentile(t, 90)):>5} |"
            f" {ms(percentile(t, 99)):>5} | {ms(max(t)):>5} |"
            f" {r.register_retransmissions:>13} | {r.statuses} | {busy(r.register_server)}"
        )
    p50 = percentile(loaded.register_times, 50) / percentile(base.register_times, 50)
    p99 = percentile(loaded.register_times, 99) / percentile(base.register_times, 99)
    verdict = "within 2x" if max(p50, p99) <= 2.0 else "NOT within 2x"
    print(f"    with / without subscribers: p50 {p50:.2f}x, p99 {p99:.2f}x ({verdict})")
    print(f"server: {loaded.server}")
    for r in (base, loaded) if args.watchdog else ():
        # The REGISTERs are sent on a fixed schedule: n / rate seconds after the first.
        slowest = sorted(range(len(r.register_times)), key=lambda n: -r.register_times[n])
        print(
            f"slowest REGISTERs, {r.subscribers} subscribers (ms at s after the first): "
            + ", ".join(f"{ms(r.register_times[n])} at {n / r.rate:.3f}" for n in slowest[:15])
        )
    for r in (base, loaded) if args.watchdog else ():
        for _, took, stacks in r.stalls:
            if not _:  # a summary: collections, timed calls
                print(f"    {next(iter(stacks))}, longest {took * 1000:.1f} ms")
        longest = sorted((s for s in r.stalls if s[0]), key=lambda s: -s[1])
        total = sum(s[1] for s in r.stalls)
        print(
            f"watchdog, {r.subscribers} subscribers: {len(r.stalls)} stalls over"
            f" {args.watchdog:g} ms during the new registrations, {total * 1000:.0f} ms in all"
        )
        calls = sorted((s for s in longest if "call " in next(iter(s[2]))), key=lambda s: s[0])
        print(f"    calls over {args.watchdog / 2:g} ms CPU: {len(calls)}")
        for at, took, stacks in calls:
            print(f"    {at - calls[0][0]:7.3f} s {took * 1000:5.1f} ms {next(iter(stacks))}")
        for _, took, stacks in longest[:8]:
            cpu = [k for k in stacks if k.startswith("loop thread CPU")]
            print(f"    {took * 1000:.1f} ms{', ' + cpu[0] if cpu else ''}:")
            samples = {k: n for k, n in stacks.items() if k not in cpu}
            for stack, n in sorted(samples.items(), key=lambda kv: -kv[1])[:3]:
                print(f"        {n} x {stack}")
    for line in loaded.incomplete:
        print(f"INCOMPLETE: {line}")
    sys.stdout.flush()
    return not (over or max(p50, p99) > 2.0 or loaded.incomplete)


def _loop_name() -> str:
    from centrex.transport import best_loop_factory

    return "asyncio" if best_loop_factory() is asyncio.new_event_loop else "uvloop"


async def main_async(args: argparse.Namespace) -> int:
    forms = ["rfc6665", "lanscape"] if args.form == "both" else [args.form]
    print_header(args)
    met = True
    for form in forms:
        for rate in args.rate:
            base = await run(args, form, 0, rate)
            loaded = await run(args, form, args.subscribers, rate)
            met = report(args, base, loaded) and met
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="registered before (10000)")
    parser.add_argument("--subscribers", type=int, default=100, help="subscribers (100)")
    parser.add_argument("--new", type=int, default=1_000, help="registrations measured (1000)")
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[200.0],
        help="their rate per second; several values: one pair of runs each (200)",
    )
    parser.add_argument(
        "--form", choices=("rfc6665", "lanscape", "both"), default="rfc6665", help="wire form"
    )
    parser.add_argument("--notify-max-bytes", type=int, default=1300)
    parser.add_argument("--phase-timeout", type=float, default=120.0, help="seconds per phase")
    parser.add_argument(
        "--freeze-gc",
        action="store_true",
        help="gc.freeze() in the server after the setup and after the initial lists"
        " (an experiment: centrex serve does not do this)",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="write the cProfile stats of each server with subscribers to PATH.<form>.<rate>",
    )
    parser.add_argument(
        "--watchdog",
        type=float,
        default=0,
        metavar="MS",
        help="report where the server's loop was whenever it did not run for MS ms"
        " during the new registrations (sampling costs time: not for the figures;"
        " the per-method times count every call only with CENTREX_PURE_PYTHON=1)",
    )
    args = parser.parse_args()
    if not 0 < args.subscribers <= args.users:
        parser.error("--subscribers must be between 1 and --users")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
