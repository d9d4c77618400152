"""The server's hot path under load: CPU seconds per 1,000 REGISTERs and calls.

Starts ``centrex serve`` (this checkout's, as a subprocess) on
127.0.0.70:15060 UDP with authentication off (127.0.0.0/8 trusted, so no
rate limit applies), registrations in memory with
the recovery file at its defaults, no SIP trace and logging at ``warning``,
then drives it with sipp (Debian package ``sip-tester``), every peer on its
own loopback address:

1. REGISTER: ``--registers`` (20,000) distinct users, each one REGISTER
   answered 200, from 127.0.0.71 at ``--register-rate`` per second;
2. calls: the callee (a sipp UAS on 127.0.0.72) registered as 1002, then
   ``--calls`` (2,000) calls from a sipp UAC on 127.0.0.73 at ``--call-rate``:
   INVITE/100/180/200/ACK/pause 100 ms/BYE/200 through the server, which
   record-routes and stays stateful.

For each phase it prints the server's CPU time (user + system, from
/proc/<pid>/stat, threads included) per 1,000 REGISTERs or calls, the
load generator's CPU time (sipp's rusage) and the wall time, failed calls,
retransmissions, and the response time (sipp's, REGISTER to 200 and INVITE
to 200) p50 / p99. CPU time is what to compare between two runs: on this
shared 2-CPU machine it is far less noisy than a rate or a latency.

``--top`` runs each phase as fast as it goes instead (sipp's rate unbounded,
``--window`` transactions or calls outstanding at most), which gives the
highest rate this machine reaches and how the CPU splits between the server
and the load generator at that rate.

    .venv/bin/python bench/hotpath.py                       # the figures of docs/benchmarks.md
    .venv/bin/python bench/hotpath.py --top
    .venv/bin/python bench/hotpath.py --set server.event_loop='"asyncio"'
    .venv/bin/python bench/hotpath.py --preload 50000          # a restart with 50,000 registered
    .venv/bin/python bench/hotpath.py --registers 2000 --calls 200 --py-spy prof.txt

``--py-spy`` needs ``py-spy`` on PATH (``pip install py-spy``). To count
instructions instead of seconds, ``HOTPATH_WRAP`` puts a command in front
of the server's, and with callgrind each phase gets a profile part of its
own (``callgrind_control --dump`` after it)::

    HOTPATH_WRAP="valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p.out" \
        .venv/bin/python bench/hotpath.py --registers 300 --register-rate 20 \
        --calls 100 --call-rate 4

Every run is bounded: sipp gets ``-m`` (a count) and ``-timeout``, the
server is stopped with SIGTERM (SIGKILL after 10 s), and all traffic stays
on 127.0.0.0/8. Exit status 1 when a transaction failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "hotpath"
SERVER_IP = "127.0.0.70"
REGISTER_IP = "127.0.0.71"
CALLEE_IP = "127.0.0.72"
CALLER_IP = "127.0.0.73"
PORT = 15060
CALLEE_PORT = 15072
FIRST_USER = 200000
TICK = os.sysconf("SC_CLK_TCK")
#: The most one sipp run may take (sipp's own -timeout) before it fails.
PHASE_TIMEOUT_S = 300


def centrex_command() -> list[str]:
    """``centrex``, after the words of $HOTPATH_WRAP (e.g. a valgrind command line)."""
    script = Path(sys.executable).parent / "centrex"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "centrex.cli"]
    return os.environ.get("HOTPATH_WRAP", "").split() + command


def config_text(data_dir: Path, overrides: list[str]) -> str:
    """The server's settings: the defaults but for what a load test needs."""
    tables: dict[str, dict[str, str]] = {
        "server": {"domains": '["example.com"]', "data_dir": f'"{data_dir}"'},
        "network": {"listen": f'["udp:{SERVER_IP}:{PORT}"]'},
        "registrar": {"allow_unknown_users": "true"},
        "logging": {"level": '"warning"'},
        "admin": {"enabled": "false"},
        # No authentication; one address sends everything, so no rate limit.
        "auth": {"enabled": "false", "trusted": '["127.0.0.0/8"]'},
    }
    for item in overrides:
        key, _, value = item.partition("=")
        table, _, name = key.rpartition(".")
        if not table or not value:
            raise SystemExit(f"--set {item!r}: expected table.key=value (a TOML value)")
        tables.setdefault(table, {})[name] = value
    lines: list[str] = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{name} = {value}" for name, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def preload(data_dir: Path, count: int) -> None:
    """A recovery file with ``count`` registrations (users 100000...), as a server
    restarted with a full registrar finds it."""
    from centrex.registrar import recovery
    from centrex.registrar.binding import Binding, Source

    now = time.time()
    bindings = [
        Binding(
            id=f"{i:016x}",
            aor=f"sip:{100000 + i}@example.com",
            contact=f"sip:{100000 + i}@127.0.1.{i % 250 + 1}:{5060 + i % 1000}",
            expires_at=now + 3600,
            q=None,
            call_id=f"preload-{i}@127.0.1.1",
            cseq=1,
            source=Source(
                "udp", f"127.0.1.{i % 250 + 1}", 5060 + i % 1000, f"udp:{SERVER_IP}:{PORT}"
            ),
            user_agent="preloaded",
            server_id="bench",
            created_at=now,
            updated_at=now,
        )
        for i in range(count)
    ]
    data_dir.mkdir(parents=True, exist_ok=True)
    recovery.save(data_dir / recovery.FILE_NAME, bindings, now)


def callgrind_dump(pid: int, name: str) -> None:
    """Under ``HOTPATH_WRAP="valgrind --tool=callgrind ..."``: close a profile part
    here, so each phase's instruction count stands in a file of its own."""
    if "callgrind" in os.environ.get("HOTPATH_WRAP", ""):
        subprocess.run(
            ["callgrind_control", f"--dump={name}", str(pid)],
            stdout=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time of process ``pid`` (all its threads, live or ended)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def options_answered(timeout: float) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((REGISTER_IP, 0))
        sock.settimeout(timeout)
        port = sock.getsockname()[1]
        request = (
            f"OPTIONS sip:{SERVER_IP}:{PORT} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {REGISTER_IP}:{port};branch=z9hG4bK{time.time_ns()};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{REGISTER_IP}>;tag=probe\r\n"
            f"To: <sip:{SERVER_IP}:{PORT}>\r\n"
            f"Call-ID: probe-{time.time_ns()}\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (SERVER_IP, PORT))
        try:
            data = sock.recv(65535)
        except OSError:
            return False
    return data.startswith(b"SIP/2.0 200")


def register_callee() -> None:
    """1002's Contact is the callee sipp's address: the server reaches a contact
    where its REGISTER came from, so this is sent from that address and port
    before sipp takes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((CALLEE_IP, CALLEE_PORT))
        sock.settimeout(2.0)
        port = sock.getsockname()[1]
        request = (
            "REGISTER sip:example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {CALLEE_IP}:{port};branch=z9hG4bK{time.time_ns()};rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:1002@example.com>;tag=callee\r\n"
            "To: <sip:1002@example.com>\r\n"
            f"Call-ID: callee-{time.time_ns()}\r\n"
            "CSeq: 1 REGISTER\r\n"
            f"Contact: <sip:1002@{CALLEE_IP}:{CALLEE_PORT}>\r\n"
            "Expires: 3600\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (SERVER_IP, PORT))
        for _ in range(3):
            data = sock.recv(65535)
            if data.startswith(b"SIP/2.0 200"):
                return
            if not data.startswith(b"SIP/2.0 1"):
                break
    raise SystemExit(f"the callee's REGISTER was answered {data[:40]!r}")


@contextlib.contextmanager
def centrex_server(
    root: Path, overrides: list[str], py_spy: str | None, preloaded: int = 0
) -> Iterator[int]:
    """A running ``centrex serve``; yields its pid."""
    if preloaded:
        preload(root / "data", preloaded)
    config = root / "centrex.toml"
    config.write_text(config_text(root / "data", overrides), encoding="utf-8")
    try:
        harness.ensure_port_free(SERVER_IP, PORT)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [*centrex_command(), "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    spy: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + (300 if os.environ.get("HOTPATH_WRAP") else 20)
        while not options_answered(0.3):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "centrex serve did not answer OPTIONS:\n"
                    + (root / "server.log").read_text(errors="replace")
                )
        if py_spy:
            spy = subprocess.Popen(
                ["py-spy", "record", "--pid", str(process.pid), "--format", "raw",
                 "--rate", "200", "--output", py_spy, "--nonblocking"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)
        yield process.pid
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Phase:
    name: str
    count: int
    server_cpu: float
    server_system: float
    sipp_cpu: float
    wall: float
    failed: int
    retransmissions: int
    times_ms: list[float]

    def line(self) -> str:
        times = sorted(self.times_ms)
        p50 = percentile(times, 50)
        p99 = percentile(times, 99)
        return (
            f"{self.name:<9} {self.count:>7,} in {self.wall:6.2f} s"
            f" ({self.count / self.wall:7,.0f}/s)"
            f"  server CPU {self.server_cpu:6.2f} s = {1000 * self.server_cpu / self.count:6.3f}"
            f" s/1000 ({100 * self.server_cpu / self.wall:3.0f}% of a CPU,"
            f" {100 * self.server_system / max(self.server_cpu, 1e-9):2.0f}% in the kernel)"
            f"  sipp CPU {self.sipp_cpu:5.2f} s ({100 * self.sipp_cpu / self.wall:3.0f}%)"
            f"  failed {self.failed}  retrans {self.retransmissions}"
            f"  p50 {p50:.2f} ms  p99 {p99:.2f} ms"
        )


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def sipp(
    work: Path, name: str, args: list[str], *, background: bool = False
) -> subprocess.Popen[bytes]:
    command = [
        "sipp", f"{SERVER_IP}:{PORT}", *args,
        "-timeout", f"{PHASE_TIMEOUT_S}s", "-timeout_error", "-nostdin",
        "-trace_err", "-error_file", str(work / f"{name}_errors.log"),
        "-trace_stat", "-stf", str(work / f"{name}_stat.csv"), "-fd", "3600",
        "-trace_rtt", "-rtt_freq", "1",
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(work / f"{name}.stderr").open("wb"),
    )


def wait_rusage(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Wait for ``process``; its exit status and CPU seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            process.returncode = -9
            return -9, usage.ru_utime + usage.ru_stime
        time.sleep(0.05)


def stat_counts(work: Path, name: str) -> tuple[int, int]:
    """Failed calls and retransmissions from the last line of sipp's statistics."""
    lines = (work / f"{name}_stat.csv").read_text(errors="replace").splitlines()
    header = lines[0].split(";")
    last = lines[-1].split(";")
    row = dict(zip(header, last, strict=False))
    return int(row.get("FailedCall(C)", "0")), int(row.get("Retransmissions(C)", "0"))


def rtt_times(work: Path, scenario: str) -> list[float]:
    times: list[float] = []
    for path in work.glob(f"{scenario}_*_rtt.csv"):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                with contextlib.suppress(ValueError):
                    times.append(float(parts[1]))
        path.unlink()
    return times


def rate_args(rate: float | None, window: int) -> list[str]:
    if rate is None:
        return ["-r", "100000", "-l", str(window)]
    return ["-r", str(rate), "-l", str(window)]


def run_registers(work: Path, pid: int, count: int, rate: float | None, window: int) -> Phase:
    users = work / "users.csv"
    users.write_text(
        "SEQUENTIAL\n" + "".join(f"{FIRST_USER + i}\n" for i in range(count)), encoding="ascii"
    )
    shutil.copy(SCENARIOS / "register.xml", work / "register.xml")
    (user0, system0), start = cpu_times(pid), time.monotonic()
    process = sipp(
        work,
        "register",
        ["-sf", "register.xml", "-inf", str(users), "-m", str(count), "-i", REGISTER_IP,
         "-p", "0", *rate_args(rate, window)],
    )  # fmt: skip
    status, sipp_cpu = wait_rusage(process, PHASE_TIMEOUT_S + 30)
    wall = time.monotonic() - start
    user1, system1 = cpu_times(pid)
    server_cpu, server_system = user1 + system1 - user0 - system0, system1 - system0
    failed, retrans = stat_counts(work, "register")
    if status != 0:
        failed = max(failed, 1)
    return Phase(
        "REGISTER",
        count,
        server_cpu,
        server_system,
        sipp_cpu,
        wall,
        failed,
        retrans,
        rtt_times(work, "register"),
    )


def run_calls(work: Path, pid: int, count: int, rate: float | None, window: int) -> Phase:
    for name in ("uac.xml", "uas.xml"):
        shutil.copy(SCENARIOS / name, work / name)
    register_callee()
    callee = sipp(
        work,
        "uas",
        ["-sf", "uas.xml", "-m", str(count), "-i", CALLEE_IP, "-p", str(CALLEE_PORT)],
    )
    time.sleep(0.5)
    (user0, system0), start = cpu_times(pid), time.monotonic()
    caller = sipp(
        work,
        "uac",
        ["-sf", "uac.xml", "-s", "1002", "-m", str(count), "-i", CALLER_IP, "-p", "0",
         *rate_args(rate, window)],
    )  # fmt: skip
    status, caller_cpu = wait_rusage(caller, PHASE_TIMEOUT_S + 30)
    callee_status, callee_cpu = wait_rusage(callee, 30)
    wall = time.monotonic() - start
    user1, system1 = cpu_times(pid)
    server_cpu, server_system = user1 + system1 - user0 - system0, system1 - system0
    failed, retrans = stat_counts(work, "uac")
    callee_failed, callee_retrans = stat_counts(work, "uas")
    failed += callee_failed
    if status != 0 or callee_status != 0:
        failed = max(failed, 1)
    return Phase(
        "call",
        count,
        server_cpu,
        server_system,
        caller_cpu + callee_cpu,
        wall,
        failed,
        retrans + callee_retrans,
        rtt_times(work, "uac"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--registers", type=int, default=20_000, help="REGISTERs (20000)")
    parser.add_argument("--calls", type=int, default=2_000, help="calls (2000)")
    parser.add_argument("--register-rate", type=float, default=1000.0, help="per second (1000)")
    parser.add_argument("--call-rate", type=float, default=100.0, help="per second (100)")
    parser.add_argument(
        "--top", action="store_true", help="no rate limit: as fast as the machine goes"
    )
    parser.add_argument(
        "--window", type=int, default=200, help="most transactions/calls outstanding (200)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="a server setting (TOML value), e.g. server.event_loop='\"asyncio\"'",
    )
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        metavar="N",
        help="start with N other registrations in the recovery file (a restart)",
    )
    parser.add_argument("--py-spy", metavar="FILE", help="profile the server with py-spy (raw)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (Debian package sip-tester)", file=sys.stderr)
        return 2
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  {platform.python_implementation()} "
        f"{platform.python_version()} {platform.machine()}, {os.cpu_count()} CPUs"
        f"{'  top rate' if args.top else ''}  settings: {args.set or 'bench defaults'}"
        f"  compiled modules: {harness.sip_build()}"
    )
    work = Path(tempfile.mkdtemp(prefix="centrex-hotpath-"))
    phases: list[Phase] = []
    try:
        with centrex_server(work, args.set, args.py_spy, args.preload) as pid:
            callgrind_dump(pid, "start")
            if args.registers:
                rate = None if args.top else args.register_rate
                phases.append(run_registers(work, pid, args.registers, rate, args.window))
                print(phases[-1].line(), flush=True)
                callgrind_dump(pid, "registers")
            if args.calls:
                rate = None if args.top else args.call_rate
                phases.append(run_calls(work, pid, args.calls, rate, args.window))
                print(phases[-1].line(), flush=True)
                callgrind_dump(pid, "calls")
    finally:
        if args.keep:
            print(f"# work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if any(p.failed for p in phases) else 0


if __name__ == "__main__":
    sys.exit(main())
