"""Centrex side by side with Kamailio on this machine, in one run (issue 7).

Both servers run at once on loopback, each on an address of its own
(Kamailio on IP_BASE+1, Centrex on IP_BASE+2, port 5060, UDP); the loads are
sipp (Debian sip-tester) scenarios from bench/scenarios/, sent to one server
at a time, the servers taking turns step by step:

1. REGISTER load: each sipp call registers the next of --users distinct users
   (an injection file) and must be answered 200; all of them are registered
   in both servers first, so every step runs against a full table.
2. call load: a sipp caller calls a sipp callee through the server (INVITE,
   100, 180, 200 with Record-Route, ACK, --pause-ms, BYE, 200; ACK and BYE
   follow the route); the callee registered through the server first, from
   its own address and port. The same calls sipp to sipp with no server in
   between give the ceiling this machine allows.
3. For each load and server: the highest rate sustained for --window seconds
   with no failed call and under 1% retransmissions (sipp's own counters, both
   sides), found by doubling from --start-rate and then bisecting; before each
   step both servers are let idle (the backlog of an overloaded step drained)
   and sipp takes new ports. Then response times p50 / p99 at a common rate
   (half the lower of the two servers' highest, rounded down) and at
   fractions (--sweep) of the servers' highest rates up to --trace-max-rate,
   from sipp's message trace (microsecond timestamps; sipp's own
   response-time counters have millisecond resolution); the server's CPU
   seconds per 1,000 registrations or calls at the common rate (utime + stime
   of the server's processes, all of Kamailio's, from /proc/<pid>/stat), in a
   step of its own without the message trace, after the traced ones (writing
   the trace slows sipp and changes how it spreads its sends; the traced
   step's figure is printed beside it).
4. memory: both servers restarted empty, then 10,000 and 100,000 users
   registered (the rate halved for a chunk a server cannot take whole, all
   within --memory-max-s); resident memory of each (Kamailio: the
   proportional set size of all its processes, with the plain RSS sum and the
   shared memory in use from `kamcmd core.shmmem`, since its shared memory is
   one mapping seen by every process), right after the last REGISTER and
   --memory-settle-s later (their transactions ended). Then Centrex is
   stopped (it writes its recovery file) and started again: the time from
   process start to the first answered OPTIONS, and the time the location
   store takes to read the 100,000 registrations (MemoryLocationStore.open,
   in a fresh interpreter, best of three).

Kamailio is bench/kamailio/kamailio.cfg with --kamailio-children UDP workers
(2 by default, this machine's CPU count); Centrex is `centrex serve` with
--workers worker processes (server.workers; 1 by default) and the settings
written in its work folder (authentication and presence off, anyone may
register, loopback trusted, defaults otherwise). Kamailio and sipp are
installed with apt-get when missing (as root). Kamailio's workers all read
one socket; Centrex's each have their own (SO_REUSEPORT), and the kernel
picks one by the sender's address and port, so several Centrex workers need
several senders: --sipp-sockets N makes the REGISTERing phones and the
caller send from N addresses in turn, against both servers alike.

    .venv/bin/python bench/run.py                    # the issue's 20-s windows, ~40-55 min here
    .venv/bin/python bench/run.py --window 5         # a quick run, ~16 min here
    .venv/bin/python bench/run.py --only register --window 3 --skip-memory
    .venv/bin/python bench/run.py --only memory --fill-rate 1000
    .venv/bin/python bench/run.py --window 5 --workers 2 --sipp-sockets 8 --skip-memory

The run prints its longest possible duration before starting, prints each
step as it goes, then the table; it writes the table (results.md), every step
(results.json) and the chart of rate vs response time (--chart, PNG; needs
matplotlib: `pip install -e '.[bench]'`). Every sipp run has a deadline and
every process is ended at exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import harness
from harness import Centrex, Kamailio, RateSearch, ServerUnderTest, Sipp

ROOT = harness.BENCH.parent
CALLEE = "callee"
#: Seconds a step costs beyond its window: sipp start, the last calls, stats.
STEP_OVERHEAD_S = 4.0
LOADS = ("register", "call")
#: sipp's options for one socket per address of the injection file (sipp
#: refuses to start unless the most sockets it may open is below the open
#: files limit).
UI = ("-t", "ui", "-max_socket", "1000")


@dataclass
class Step:
    """One sipp run at one rate against one server (or none: the ceiling)."""

    load: str
    server: str
    rate: int
    purpose: str  # "search", "cpu" (the common rate, untraced) or "sweep" (traced)
    ok: bool
    reason: str
    calls: int
    successful: int
    failed: int
    retransmissions: int
    seconds: float
    server_cpu_s: float
    sipp_cpu_s: float
    #: datagrams the kernel dropped for a full receive buffer during the step (any socket)
    udp_drops: int = 0
    #: seconds waited before the step for both servers to idle (a backlog drained)
    settle_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    bye_p50_ms: float | None = None
    bye_p99_ms: float | None = None

    @property
    def cpu_per_1000(self) -> float | None:
        return self.server_cpu_s / self.successful * 1000 if self.successful else None

    def line(self) -> str:
        times = ""
        if self.p50_ms is not None:
            times = f", p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms"
        cpu = self.cpu_per_1000
        return (
            f"  {self.load:8} {self.server:12} {self.rate:6}/s  {'pass' if self.ok else 'FAIL'}"
            f"  {self.successful}/{self.calls} ok, {self.failed} failed, "
            f"{self.retransmissions} retrans, {self.seconds:.1f} s, "
            f"server CPU {self.server_cpu_s:.2f} s"
            + (f" ({cpu:.3f} s/1000)" if cpu is not None else "")
            + f", sipp CPU {self.sipp_cpu_s:.2f} s, UDP drops {self.udp_drops}{times}"
            + (f", waited {self.settle_s:.0f} s for idle servers" if self.settle_s > 2 else "")
            + (f"  [{self.reason}]" if self.reason else "")
        )


@dataclass
class Results:
    started: str
    command: str
    machine: dict[str, str]
    settings: dict[str, object]
    steps: list[Step] = field(default_factory=list)
    highest: dict[str, dict[str, int | None]] = field(default_factory=dict)
    common_rate: dict[str, int] = field(default_factory=dict)
    memory: dict[str, dict[str, object]] = field(default_factory=dict)
    recovery: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def nice_rate(rate: float) -> int:
    """``rate`` rounded down to 1, 2 or 5 times a power of ten (at least 1)."""
    if rate < 1:
        return 1
    power = 10 ** math.floor(math.log10(rate))
    for mantissa in (5, 2, 1):
        if mantissa * power <= rate:
            return mantissa * power
    return power


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _uvloop() -> str:
    import importlib.util

    return "yes" if importlib.util.find_spec("uvloop") is not None else "no"


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        base = args.ip_base.split(".")
        prefix, last = ".".join(base[:3]), int(base[3])

        def ip(offset: int) -> str:
            return f"{prefix}.{last + offset}"

        self.kamailio_ip, self.centrex_ip = ip(1), ip(2)
        self.uas_ip, self.uac_ip, self.phones_ip = ip(3), ip(4), ip(5)
        self.steps_started = 0
        self.uas_port = self.uac_port = self.phones_port = 20000
        self.sipp = harness.sipp_binary()
        #: sipp's UDP socket buffers (its default, 64 KB, drops bursts at a few 100 calls/s).
        self.sipp_buffer = ["-buff_size", str(4 * 1024 * 1024)]
        #: Where the REGISTERing phones and the caller send from: one socket,
        #: or one on each of --sipp-sockets loopback addresses, taken in turn
        #: by the lines of the injection file (sipp -t ui), for both servers
        #: (SO_REUSEPORT spreads senders over Centrex's workers).
        count = args.sipp_sockets
        self.phone_ips = [ip(10 + i) for i in range(count)] if count > 1 else []
        self.caller_ips = [ip(10 + count + i) for i in range(count)] if count > 1 else []
        self.kamailio: Kamailio | None = None
        self.centrex: Centrex | None = None
        self.users = [f"b{10000 + i}" for i in range(args.users)]
        self.offset: dict[str, int] = {}
        self.results = Results(
            started=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            command="bench/run.py " + " ".join(sys.argv[1:]),
            machine={
                "cpus": str(os.cpu_count()),
                "cpu_model": cpu_model(),
                "python": platform.python_version(),
                "sip_build": harness.sip_build(),
                "kamailio": Kamailio.version(),
                "centrex": Centrex.version(),
                "uvloop": _uvloop(),
                "sipp": self._sipp_version(),
                "kernel": platform.release(),
            },
            settings={k: v for k, v in vars(args).items() if k not in ("chart", "out")},
        )

    def _sipp_version(self) -> str:
        out = subprocess.run(
            [self.sipp, "-v"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        for word in out.split():
            if word.startswith("v") and word[1:2].isdigit():
                return word.split("-")[0]
        return "?"

    # -- servers --

    def start_servers(self, tag: str) -> None:
        self.kamailio = Kamailio(
            self.kamailio_ip,
            5060,
            self.workdir / tag / "kamailio",
            children=self.args.kamailio_children,
        )
        self.centrex = Centrex(
            self.centrex_ip, 5060, self.workdir / tag / "centrex", overrides=self.args.centrex_set
        )
        for server in (self.kamailio, self.centrex):
            server.start()
            print(f"{server.name} ready on {server.address} after {server.ready_after:.2f} s")

    def stop_servers(self) -> None:
        for server in (self.kamailio, self.centrex):
            if server is not None:
                server.stop()

    def servers(self) -> list[ServerUnderTest]:
        assert self.kamailio is not None and self.centrex is not None
        return [self.kamailio, self.centrex]

    # -- one sipp run --

    def _deadline(self, calls: int, rate: int) -> float:
        return calls / rate * 1.5 + self.args.pause_ms / 1000 + 20

    def _csv(
        self, name: str, users: list[str], contact_port: int = 5060, ips: list[str] | None = None
    ) -> Path:
        """An injection file of ``users``, each with ``contact_port`` for its
        contact, and with ``ips`` the address to send from (field 2, in turn)."""
        path = self.workdir / "csv" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{user};{contact_port}" for user in users]
        if ips:
            lines = [f"{line};{ips[i % len(ips)]}" for i, line in enumerate(lines)]
        path.write_text("SEQUENTIAL\n" + "\n".join(lines) + "\n", encoding="ascii")
        return path

    def _register_sipp(
        self,
        name: str,
        target: str,
        users: Path,
        rate: int,
        calls: int,
        *,
        ip: str,
        port: int,
        trace: bool = False,
        scenario: str = "register.xml",
        spread: bool = False,
    ) -> Sipp:
        deadline = self._deadline(calls, rate)
        argv = [
            self.sipp, target,
            "-sf", str(harness.SCENARIOS / scenario),
            "-inf", str(users),
            "-i", ip, "-p", str(port), "-mi", ip,
            *((*UI, "-ip_field", "2") if spread and self.phone_ips else ("-t", "u1")),
            "-r", str(rate), "-m", str(calls),
            "-timeout", f"{math.ceil(deadline)}s", "-timeout_error",
        ]  # fmt: skip
        return Sipp(name, argv, self.workdir / "sipp", trace_messages=trace)

    def _callers(self, tag: str) -> list[str]:
        """sipp's options for where the caller sends from (``caller_ips``)."""
        if not self.caller_ips:
            return ["-t", "u1"]
        path = self.workdir / "csv" / f"{tag}-callers.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("SEQUENTIAL\n" + "\n".join(self.caller_ips) + "\n", encoding="ascii")
        return ["-inf", str(path), *UI, "-ip_field", "0"]

    def register_callee(self, server: ServerUnderTest) -> bool:
        """The callee alone registered at this step's address; whether it worked."""
        users = self._csv("callee", [CALLEE], self.uas_port)
        run = self._register_sipp(
            "callee", server.address, users, 10, 1, ip=self.uas_ip, port=self.uas_port,
            scenario="register_callee.xml",
        ).start()  # fmt: skip
        return run.wait(30) == 0 and run.stats.successful == 1

    def step(self, load: str, server: ServerUnderTest | None, rate: int, purpose: str) -> Step:
        trace = purpose == "sweep"
        calls = max(1, round(rate * self.args.window))
        name = server.name if server is not None else "sipp-to-sipp"
        tag = f"{load}-{name}-{rate}-{purpose}"
        # A step after an overloaded one must not measure its backlog: wait for
        # both servers to idle, and use new sipp ports (the servers may still
        # retransmit to the old ones).
        settled = sum(each.settle() for each in self.servers())
        self.steps_started += 1
        port = 20000 + self.steps_started % 10000
        self.uas_port = self.uac_port = self.phones_port = port
        drops_before = harness.udp_receive_errors()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        uas: Sipp | None = None
        if load == "register":
            assert server is not None
            start = self.offset.get(name, 0)
            lines = [self.users[(start + i) % len(self.users)] for i in range(len(self.users))]
            self.offset[name] = (start + calls) % len(self.users)
            uac = self._register_sipp(
                tag, server.address, self._csv(tag, lines, ips=self.phone_ips), rate, calls,
                ip=self.phones_ip, port=self.phones_port, trace=trace, spread=True,
            )  # fmt: skip
            transactions = calls
        else:
            if server is not None and not self.register_callee(server):
                # Counted as a failed step (every call would fail), not an abort.
                print(f"  the callee could not register with {server.name}", flush=True)
            deadline = self._deadline(calls, rate)
            uas = Sipp(
                tag + "-uas",
                [
                    self.sipp,
                    "-sf",
                    str(harness.SCENARIOS / "uas.xml"),
                    "-i",
                    self.uas_ip,
                    "-p",
                    str(self.uas_port),
                    "-mi",
                    self.uas_ip,
                    "-t",
                    "u1",
                    *self.sipp_buffer,
                    "-m",
                    str(calls),
                    "-timeout",
                    f"{math.ceil(deadline)}s",
                ],
                self.workdir / "sipp",
            ).start()
            time.sleep(0.3)  # let the callee bind its port
            target = server.address if server is not None else f"{self.uas_ip}:{self.uas_port}"
            uac = Sipp(
                tag,
                [
                    self.sipp,
                    target,
                    "-sf",
                    str(harness.SCENARIOS / "uac.xml"),
                    "-s",
                    CALLEE,
                    "-i",
                    self.uac_ip,
                    "-p",
                    str(self.uac_port),
                    "-mi",
                    self.uac_ip,
                    *self._callers(tag),
                    *self.sipp_buffer,
                    "-r",
                    str(rate),
                    "-m",
                    str(calls),
                    "-d",
                    str(self.args.pause_ms),
                    "-recv_timeout",
                    "10000",
                    "-timeout",
                    f"{math.ceil(deadline)}s",
                    "-timeout_error",
                ],
                self.workdir / "sipp",
                trace_messages=trace,
            )
            transactions = 2 * calls  # INVITE and BYE
        cpu_before = server.cpu() if server is not None else 0.0
        uac.start()
        code = uac.wait(self._deadline(calls, rate) + 10)
        cpu_after = server.cpu() if server is not None else 0.0
        if uas is not None:
            uas.wait(10)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        drops = harness.udp_receive_errors() - drops_before
        sipp_cpu = (children_after.ru_utime + children_after.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        seconds = uac.ended - uac.started
        retrans = uac.stats.retransmissions + (uas.stats.retransmissions if uas else 0)
        failed = uac.stats.failed + (uas.stats.failed if uas else 0)
        reasons = []
        if code is None:
            reasons.append("sipp killed at its deadline")
        elif code != 0:
            reasons.append(f"sipp exit {code}")
        if uac.stats.successful < calls:
            reasons.append(f"{calls - uac.stats.successful} calls not completed")
        if failed:
            reasons.append(f"{failed} failed")
        if retrans >= 0.01 * transactions:
            reasons.append(f"retransmissions {retrans / transactions:.1%}")
        allowed = self.args.window * 1.1 + 3 + (self.args.pause_ms / 1000 if load == "call" else 0)
        if seconds > allowed:
            reasons.append(
                f"took {seconds:.1f} s for a {self.args.window} s window (rate not kept)"
            )
        step = Step(
            load, name, rate, purpose, not reasons, "; ".join(reasons), calls,
            uac.stats.successful, failed, retrans, seconds, cpu_after - cpu_before, sipp_cpu,
            drops, settled,
        )  # fmt: skip
        if trace:
            method = "REGISTER" if load == "register" else "INVITE"
            times = harness.response_times(uac.message_file, method)
            if times:
                step.p50_ms = harness.median(times) * 1000
                step.p99_ms = harness.percentile(times, 99) * 1000
            if load == "call":
                byes = harness.response_times(uac.message_file, "BYE")
                if byes:
                    step.bye_p50_ms = harness.median(byes) * 1000
                    step.bye_p99_ms = harness.percentile(byes, 99) * 1000
            uac.message_file.unlink(missing_ok=True)  # large; the figures are kept
        self.results.steps.append(step)
        print(step.line(), flush=True)
        return step

    # -- phases --

    def search(self, load: str) -> None:
        """Each server's highest sustained rate, the servers taking turns."""
        contenders: list[ServerUnderTest | None] = [*self.servers()]
        if load == "call" and not self.args.no_ceiling:
            contenders.append(None)
        searches = {
            id(c): RateSearch(
                self.args.start_rate, self.args.max_rate, bisections=self.args.bisections
            )
            for c in contenders
        }
        print(f"\n== {load} load: highest sustained rate ({self.args.window} s windows)")
        while True:
            moved = False
            for contender in contenders:
                search = searches[id(contender)]
                rate = search.next_rate()
                if rate is None:
                    continue
                moved = True
                step = self.step(load, contender, rate, "search")
                search.record(rate, step.ok)
            if not moved:
                break
        highest = {
            (c.name if c is not None else "sipp-to-sipp"): searches[id(c)].passed
            for c in contenders
        }
        self.results.highest[load] = highest
        print(f"   highest sustained {load} rate: {highest}")

    def sweep(self, load: str) -> None:
        """Response times at the common rate and at fractions of the servers' highest
        rates: each server at fractions of its own highest and of the higher of the
        two, up to its own highest and --trace-max-rate (sipp's message trace, which
        gives the times, slows sipp itself above a few thousand messages a second).
        Then each server's CPU at the common rate, in a step without the trace:
        last, so that what the search's overloaded steps left (their
        transactions end 32 s later, Timer J) has ended before it."""
        highest = self.results.highest[load]
        rates = [highest.get(s.name) or self.args.start_rate for s in self.servers()]
        common = self.args.common_rate or nice_rate(min(rates) / 2)
        self.results.common_rate[load] = common
        cap = self.args.trace_max_rate
        top = min(max(rates), cap)
        plans: list[tuple[ServerUnderTest, list[int]]] = []
        for server, own in zip(self.servers(), rates, strict=True):
            points = {common}
            for fraction in self.args.sweep:
                points.add(max(1, round(min(own, cap) * fraction)))
                shared = max(1, round(top * fraction))
                if shared <= own:
                    points.add(shared)
            plans.append((server, sorted(points)))
        print(f"\n== {load} load: response times and CPU (common rate {common}/s)")
        for i in range(max(len(p) for _, p in plans)):
            for server, points in plans:
                if i < len(points):
                    self.step(load, server, points[i], "sweep")
        for server, _ in plans:
            self.step(load, server, common, "cpu")

    def prefill(self) -> None:
        """Register every user of the REGISTER load in both servers at once (at
        --prefill-rate), so that every step of the load runs against a table of
        --users registrations."""
        print(f"\n== registering {len(self.users):,} users in both servers (not measured)")
        csv = self._csv("prefill", self.users)
        runs = [
            self._register_sipp(
                f"prefill-{server.name}", server.address, csv, self.args.prefill_rate,
                len(self.users), ip=self.phones_ip, port=20000 - 1 - i,
            ).start()
            for i, server in enumerate(self.servers())
        ]  # fmt: skip
        for server, run in zip(self.servers(), runs, strict=True):
            run.wait(self._deadline(len(self.users), self.args.prefill_rate) + 10)
            print(f"   {server.name}: {run.stats.successful:,} registered")
            self.results.notes.append(
                f"REGISTER load: {run.stats.successful:,} of {len(self.users):,} users "
                f"registered with {server.name} before its first step"
            )

    def memory(self) -> None:
        """RSS with 10,000 and 100,000 registrations; Centrex's restart with them."""
        print("\n== memory: both servers restarted empty")
        self.stop_servers()
        self.start_servers("memory")
        assert self.kamailio is not None and self.centrex is not None
        total = self.args.memory_users
        users = [f"m{100000 + i}" for i in range(total)]
        marks = sorted({min(10_000, total), total})
        for server in self.servers():
            info: dict[str, object] = {"ready_after_empty_s": round(server.ready_after, 3)}
            rate = self.args.fill_rate or max(
                200,
                min(
                    5000,
                    int(0.5 * (self.results.highest.get("register", {}).get(server.name) or 400)),
                ),
            )
            info["fill_rate"] = rate
            self._measure_memory(server, info, 0)
            done = answered = 0
            began = time.monotonic()
            for mark in marks:
                # In chunks of at most 10,000: a chunk the server could not take
                # whole at this rate is sent again at half the rate, within
                # --memory-max-s for the whole fill.
                while done < mark and time.monotonic() - began < self.args.memory_max_s:
                    chunk = users[done : min(mark, done + 10_000)]
                    name = f"memory-{server.name}-{done + len(chunk)}"
                    run = self._register_sipp(
                        name, server.address, self._csv(name, chunk), rate, len(chunk),
                        ip=self.phones_ip, port=self.phones_port,
                    ).start()  # fmt: skip
                    run.wait(self._deadline(len(chunk), rate) + 10)
                    answered += run.stats.successful
                    done += len(chunk)
                    if run.stats.successful < len(chunk) and rate > 50:
                        rate //= 2
                        done -= len(chunk)  # the same users again, at the lower rate
                        answered -= run.stats.successful
                        info["fill_rate_lowered_to"] = rate
                info[f"answered_{mark}"] = answered
                time.sleep(2)  # let the last recovery write and timers settle
                self._measure_memory(server, info, mark)
            # The last REGISTERs' transactions end 32 s (Timer J) after their 200:
            # then the server holds the registrations alone.
            time.sleep(self.args.memory_settle_s)
            mem = server.memory()
            info["rss_settled"], info["pss_settled"] = mem.rss, mem.pss
            self.results.memory[server.name] = info
            print(f"   {server.name}: {info}")
        self.recovery(total)

    def _measure_memory(self, server: ServerUnderTest, info: dict[str, object], mark: int) -> None:
        mem = server.memory()
        info[f"rss_{mark}"] = mem.rss
        info[f"pss_{mark}"] = mem.pss
        info["processes"] = mem.processes
        if isinstance(server, Kamailio):
            info[f"shm_used_{mark}"] = server.shm_used()
            info[f"registered_{mark}"] = server.registered()

    def recovery(self, total: int) -> None:
        """Stop Centrex (recovery file written), start it again: how long until it serves."""
        assert self.centrex is not None
        from centrex.registrar import recovery

        centrex = self.centrex
        print("\n== Centrex restart with its recovery file")
        centrex.stop()
        path = centrex.data_dir / recovery.FILE_NAME
        bindings = len(recovery.load(path, time.time())) if path.exists() else 0
        info: dict[str, object] = {
            "bindings_in_file": bindings,
            "file_bytes": path.stat().st_size if path.exists() else 0,
        }
        centrex.log_level = "info"  # for the "loaded N registrations" line
        centrex.write_config()
        log_start = centrex.log.stat().st_size if centrex.log.exists() else 0
        wall_start = time.time()
        centrex.start()
        info["start_to_ready_s"] = round(centrex.ready_after, 3)
        info["rss_after_restart"] = centrex.memory().rss
        for line in centrex.log.read_bytes()[log_start:].decode(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if str(record.get("msg", "")).startswith("loaded "):
                    at = datetime.datetime.fromisoformat(record["ts"]).timestamp()
                    info["start_to_loaded_log_s"] = round(at - wall_start, 3)
                    info["loaded_log"] = record["msg"]
        info["store_open_s"] = self._time_store_open(centrex)
        self.results.recovery = info
        print(f"   {info}")

    def _time_store_open(self, centrex: Centrex) -> float | None:
        """Best of three MemoryLocationStore.open() of the recovery file, each in a
        fresh interpreter (what `centrex serve` does at start, less the imports)."""
        code = (
            "import asyncio, sys, time\n"
            "from pathlib import Path\n"
            "from centrex.config import load_settings\n"
            "from centrex.registrar.memory import MemoryLocationStore\n"
            "path = Path(sys.argv[1])\n"
            "settings = load_settings(path)\n"
            "store = MemoryLocationStore.from_settings(\n"
            "    settings.registrar, settings.resolve_paths(path).data_dir)\n"
            "t = time.perf_counter()\n"
            "asyncio.run(store.open(time.time()))\n"
            "print(time.perf_counter() - t, store.binding_count)\n"
        )
        best: float | None = None
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", code, str(centrex.config)],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            try:
                seconds = float(out.stdout.split()[0])
            except (IndexError, ValueError):
                print(f"   store.open timing failed: {out.stderr.strip()[-300:]}")
                return None
            best = seconds if best is None else min(best, seconds)
        return round(best, 3) if best is not None else None

    # -- the whole run --

    def run(self) -> None:
        self.start_servers("load")
        loads = [load for load in LOADS if self.args.only in (None, load)]
        if self.args.only == "memory":
            self.args.skip_memory = False
        for load in loads:
            if load == "register":
                self.prefill()
            self.search(load)
            self.sweep(load)
        if not self.args.skip_memory:
            self.memory()
        self.stop_servers()


def estimate_s(args: argparse.Namespace) -> tuple[float, float]:
    """(the run's length if no step overloads a server and every rate search takes
    its most steps, what each overloaded step can add: sipp's deadline and the
    wait for the servers to idle)."""
    search = RateSearch(args.start_rate, args.max_rate, bisections=args.bisections)
    worst = search.worst_case_steps()
    total = 0.0
    pause = args.pause_ms / 1000
    for load in LOADS:
        if args.only not in (None, load):
            continue
        contenders = 3 if load == "call" and not args.no_ceiling else 2
        per_step = args.window * 1.05 + STEP_OVERHEAD_S + (pause if load == "call" else 0)
        total += contenders * worst * per_step
        total += 2 * (2 * len(args.sweep) + 2) * per_step
        if load == "register":
            total += args.users / args.prefill_rate + 5
    if not args.skip_memory or args.only == "memory":
        fill = args.fill_rate or 200  # the slowest automatic fill rate
        total += 2 * min(args.memory_users / fill + 10, args.memory_max_s) + 30
        total += 2 * args.memory_settle_s
    overload = args.window * 0.5 + 30 + pause + 60
    return total, overload


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The docstring as written, and every option's default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__,
        epilog="Figures and how to read them: docs/benchmarks.md.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--window",
        type=float,
        default=20.0,
        help="seconds each rate is held (the issue asks for 20)",
    )
    parser.add_argument("--start-rate", type=int, default=250, help="first rate tried (per s)")
    parser.add_argument("--max-rate", type=int, default=16000, help="highest rate tried (per s)")
    parser.add_argument(
        "--bisections",
        type=int,
        default=3,
        help="bisection steps after the doubling found a failing rate",
    )
    parser.add_argument(
        "--common-rate",
        type=int,
        default=0,
        help="rate of the side-by-side response times and CPU per 1,000; 0 = half "
        "the lower of the two servers' highest, rounded down to 1/2/5 x 10^n",
    )
    parser.add_argument(
        "--sweep",
        type=float,
        nargs="*",
        default=[0.25, 0.5, 0.75, 1.0],
        help="fractions of each server's own highest rate, and of the higher of the "
        "two, at which response times are measured (the chart)",
    )
    parser.add_argument(
        "--trace-max-rate",
        type=int,
        default=2000,
        help="highest rate at which response times are measured (sipp's message trace)",
    )
    parser.add_argument(
        "--prefill-rate",
        type=int,
        default=250,
        help="rate at which the --users are registered in both servers before the REGISTER load",
    )
    parser.add_argument(
        "--users", type=int, default=10_000, help="distinct users of the REGISTER load"
    )
    parser.add_argument(
        "--memory-users",
        type=int,
        default=100_000,
        help="registrations of the memory test (also measured at 10,000)",
    )
    parser.add_argument(
        "--memory-max-s",
        type=float,
        default=900,
        help="longest the memory test may take to register the users in one server",
    )
    parser.add_argument(
        "--memory-settle-s",
        type=float,
        default=35,
        help="after the last registrations, wait this long (Timer J is 32 s) and "
        "measure again: the registrations alone, without their transactions",
    )
    parser.add_argument(
        "--fill-rate",
        type=int,
        default=0,
        help="REGISTER rate of the memory test; 0 = half of each server's "
        "highest sustained rate, within 200-5000",
    )
    parser.add_argument(
        "--pause-ms", type=int, default=1000, help="call length: pause between ACK and BYE"
    )
    parser.add_argument(
        "--kamailio-children", type=int, default=2, help="Kamailio UDP worker processes (-n)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Centrex worker processes (server.workers); use with --sipp-sockets, "
        "since the kernel spreads the messages over the workers by source port",
    )
    parser.add_argument(
        "--sipp-sockets",
        type=int,
        default=1,
        help="loopback addresses the REGISTERing phones and the caller each send "
        "from, one socket on each, for both servers (sipp -t ui; after --ip-base "
        "+10); 1 = one socket (-t u1)",
    )
    parser.add_argument(
        "--ip-base",
        default="127.0.0.50",
        help="loopback base: Kamailio on +1, Centrex +2, callee +3, "
        "caller +4, registering phones +5",
    )
    parser.add_argument(
        "--centrex-set",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="a Centrex setting for this run, VALUE in TOML, e.g. "
        "registrar.recovery_every_registrations=10000 (repeatable)",
    )
    parser.add_argument(
        "--only",
        choices=(*LOADS, "memory"),
        default=None,
        help="run one load only, or only the memory and recovery-file measures",
    )
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip the sipp-to-sipp call ceiling"
    )
    parser.add_argument(
        "--skip-memory", action="store_true", help="skip the memory and recovery-file test"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "out",
        help="folder for results.md, results.json and the work files",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=ROOT / "docs" / "bench-kamailio.png",
        help="PNG chart of rate vs response time",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (sipp traces, server logs)"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, dict[str, str]] = {}
    for item in args.centrex_set:
        name, sep, value = item.partition("=")
        table, dot, key = name.strip().rpartition(".")
        if not sep or not dot or not key:
            parser.error(f"--centrex-set {item!r}: expected TABLE.KEY=VALUE")
        overrides.setdefault(table, {})[key] = value.strip()
    if args.workers != 1:
        overrides.setdefault("server", {})["workers"] = str(args.workers)
    args.centrex_set = overrides
    if args.window <= 0 or args.start_rate < 1 or args.max_rate < args.start_rate:
        parser.error("need --window > 0 and 1 <= --start-rate <= --max-rate")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    harness.ensure_debian_packages(
        {"kamailio": "kamailio", "kamcmd": "kamailio", "sipp": "sip-tester"}
    )
    length, overload = estimate_s(args)
    print(
        f"this run takes up to {length / 60:.0f} min if no step overloads a server "
        f"(usually less: searches stop early); each overloaded step adds up to {overload:.0f} s",
        flush=True,
    )

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="work-", dir=args.out))
    bench = Bench(args, workdir)
    began = time.monotonic()
    try:
        bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process", file=sys.stderr)
        return 130
    finally:
        harness.stop_all()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    bench.results.notes.append(f"run took {(time.monotonic() - began) / 60:.1f} min")
    import report

    table = report.markdown(bench.results)
    print("\n" + table)
    (args.out / "results.md").write_text(table, encoding="utf-8")
    (args.out / "results.json").write_text(
        json.dumps(asdict(bench.results), indent=1, default=str), encoding="utf-8"
    )
    print(f"written: {args.out / 'results.md'}, {args.out / 'results.json'}")
    chart = report.chart(bench.results, args.chart)
    print(chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
