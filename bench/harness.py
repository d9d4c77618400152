"""The measuring parts of bench/run.py: server processes, /proc, sipp, rate search.

Every process started here is in a session (process group) of its own and is
remembered, so ``stop_all`` can end each group, also on Ctrl-C or an
exception; every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCENARIOS = BENCH / "scenarios"
KAMAILIO_CFG = BENCH / "kamailio" / "kamailio.cfg"
DOMAIN = "example.com"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

_started: list[subprocess.Popen[bytes]] = []


# -- processes ------------------------------------------------------------------------


def sip_build() -> str:
    """Which build of the compiled modules (``centrex/native.py``: the SIP
    message core and the rest of the hot path) ``centrex serve`` runs with
    this Python: "compiled" (mypyc, ``make native``) or "pure (why)"."""
    code = "import centrex.native as n; print(n.mode + (f' ({n.reason})' if n.reason else ''))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return out.stdout.strip() or "unknown"


def spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with stdout and stderr to ``log``."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    _started.append(process)
    return process


def stop_group(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait: float = 10
) -> None:
    """Signal the process group of ``process``; SIGKILL it if it has not ended in ``wait`` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    # Children of the group (Kamailio's) may outlive the leader for a moment.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def stop_all() -> None:
    """End every process group this module started and that still runs."""
    while _started:
        process = _started.pop()
        if process.poll() is None:
            stop_group(process, wait=5)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/*/stat)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parent_of[int(entry)] = int(fields[1])
    found = [pid]
    frontier = [pid]
    while frontier:
        frontier = [child for child, parent in parent_of.items() if parent in frontier]
        found += frontier
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime (+ those of reaped children) of ``pids``, from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields 14-17 of proc(5): utime, stime, cutime, cstime; [0] here is field 3.
        total += sum(int(v) for v in fields[11:15])
    return total / CLOCK_TICKS


@dataclass
class Memory:
    rss: int  # bytes, summed over processes (shared pages counted in each)
    pss: int  # bytes, proportional set size summed: shared pages divided among sharers
    processes: int


def memory(pids: list[int]) -> Memory:
    rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                value = int(rest.split()[0]) * 1024
                if name == "Rss":
                    rss += value
                else:
                    pss += value
    return Memory(rss, pss, len(pids))


def udp_receive_errors() -> int:
    """The kernel's count of UDP datagrams dropped for a full receive buffer
    (RcvbufErrors of /proc/net/snmp; this network namespace, every socket)."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    except OSError:
        return 0
    udp = [line for line in lines if line and line[0] == "Udp:"]
    if len(udp) < 2 or "RcvbufErrors" not in udp[0]:
        return 0
    return int(udp[1][udp[0].index("RcvbufErrors")])


def options_ok(host: str, port: int, timeout: float = 0.3) -> bool:
    """Whether ``host:port`` answers an OPTIONS (UDP) with 200."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host.rsplit(".", 1)[0] + ".1", 0) if host.startswith("127.") else ("", 0))
        local_host, local_port = sock.getsockname()
        branch = f"z9hG4bK-bench-{os.urandom(6).hex()}"
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local_host}:{local_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:bench@{DOMAIN}>;tag={os.urandom(4).hex()}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {os.urandom(8).hex()}@bench\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        sock.settimeout(timeout)
        try:
            sock.sendto(request, (host, port))
            while True:
                data = sock.recv(65535)
                if branch.encode() in data:
                    return data.startswith(b"SIP/2.0 200")
        except OSError:
            return False


def ensure_port_free(host: str, port: int) -> None:
    """Refuse to start a server on a UDP port something already holds: a
    server left over from an interrupted run would answer the readiness probe
    and the load in place of the one being measured (whose CPU time would then
    read as nearly nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise RuntimeError(
                f"udp {host}:{port} is taken ({exc.strerror}): stop what holds it "
                f"(`ss -ulpn | grep {port}`) and run again"
            ) from None


def wait_ready(process: subprocess.Popen[bytes], host: str, port: int, timeout: float) -> float:
    """Poll OPTIONS until a 200; the time.monotonic() at which it came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before ready")
        if options_ok(host, port, timeout=0.05):
            return time.monotonic()
        time.sleep(0.01)
    raise RuntimeError(f"{host}:{port} did not answer OPTIONS within {timeout} s")


# -- the servers ------------------------------------------------------------------------


class ServerUnderTest:
    """A SIP server on ``host:port`` (UDP) that the loads are sent to."""

    name = ""
    process: subprocess.Popen[bytes] | None = None

    def __init__(self, host: str, port: int, workdir: Path) -> None:
        self.host = host
        self.port = port
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "server.log"
        self.started_at = 0.0
        self.ready_after = 0.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, ready_timeout: float = 60) -> None:
        ensure_port_free(self.host, self.port)
        self.started_at = time.monotonic()
        self.process = spawn(self.argv(), self.log, self.workdir)
        try:
            ready = wait_ready(self.process, self.host, self.port, ready_timeout)
        except RuntimeError as exc:
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{self.name}: {exc}; its log ends:\n" + "\n".join(tail)) from None
        self.ready_after = ready - self.started_at

    def stop(self) -> int | None:
        if self.process is None:
            return None
        stop_group(self.process)
        return self.process.returncode

    def pids(self) -> list[int]:
        assert self.process is not None
        return descendants(self.process.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def memory(self) -> Memory:
        return memory(self.pids())

    def settle(self, idle_share: float = 0.05, limit: float = 60.0) -> float:
        """Wait until the server's CPU use over 0.5 s falls under ``idle_share`` of
        a core (a backlog of an overloaded step drained), at most ``limit`` s;
        returns the seconds waited."""
        began = time.monotonic()
        while time.monotonic() - began < limit:
            before = self.cpu()
            time.sleep(0.5)
            if self.cpu() - before <= idle_share * 0.5:
                break
        return time.monotonic() - began


class Kamailio(ServerUnderTest):
    name = "Kamailio"

    def __init__(
        self, host: str, port: int, workdir: Path, *, children: int, shm_mb: int = 512
    ) -> None:
        super().__init__(host, port, workdir)
        self.children = children
        self.shm_mb = shm_mb
        # A Unix socket's path must be short (108 bytes): not under a deep work folder.
        self.ctl = Path(tempfile.mkdtemp(prefix="kamailio-ctl-")) / "ctl"

    def argv(self) -> list[str]:
        return [
            kamailio_binary(),
            "-f", str(KAMAILIO_CFG),
            "-DD", "-E",  # stay in the foreground (children forked), log to stderr
            "-n", str(self.children),
            "-m", str(self.shm_mb),
            "-M", "16",
            "-Y", str(self.workdir),
            "-A", f'CTL_SOCKET="unix:{self.ctl}"',
            "-A", f"LISTEN=udp:{self.host}:{self.port}",
        ]  # fmt: skip

    def stop(self) -> int | None:
        code = super().stop()
        _remove_socket_folder(self.ctl)
        return code

    def rpc(self, *command: str) -> str:
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        result = subprocess.run(
            [kamcmd, "-s", f"unix:{self.ctl}", *command],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return result.stdout

    def shm_used(self) -> int | None:
        """Bytes of Kamailio's shared memory in use (kamcmd core.shmmem real_used)."""
        match = re.search(r"real_used:\s*(\d+)", self.rpc("core.shmmem"))
        return int(match.group(1)) if match else None

    def registered(self) -> int | None:
        match = re.search(
            r"usrloc:location_contacts = (\d+)", self.rpc("stats.get_statistics", "usrloc:")
        )
        return int(match.group(1)) if match else None

    @staticmethod
    def version() -> str:
        out = subprocess.run(
            [kamailio_binary(), "-v"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        match = re.search(r"version: kamailio (\S+)", out)
        return match.group(1) if match else "?"


class Centrex(ServerUnderTest):
    name = "Centrex"

    def __init__(
        self,
        host: str,
        port: int,
        workdir: Path,
        *,
        log_level: str = "warning",
        overrides: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__(host, port, workdir)
        self.data_dir = workdir / "data"
        self.config = workdir / "centrex.toml"
        self.log_level = log_level
        #: {table: {key: TOML value}} from --centrex-set, replacing or adding to the below.
        self.overrides = overrides or {}
        self.write_config()

    def write_config(self) -> None:
        # The settings a user would change for this use: one domain, UDP on one
        # address, anyone may register (no [[users]] list of 100,000), no
        # authentication (Kamailio's config has none), loopback trusted so the
        # per-address rate limit does not apply (sipp sends from one address),
        # no presence events, no web admin. The rest at the defaults, including
        # the recovery file (every 100 changes, every 10 s).
        tables: dict[str, dict[str, str]] = {
            "server": {"domains": f'["{DOMAIN}"]', "data_dir": f'"{self.data_dir}"'},
            "network": {"listen": f'["udp:{self.host}:{self.port}"]'},
            "registrar": {"allow_unknown_users": "true", "presence_events": "false"},
            "logging": {"level": f'"{self.log_level}"', "format": '"json"'},
            "admin": {"enabled": "false"},
            "auth": {"enabled": "false", "trusted": '["127.0.0.0/8"]'},
        }
        for table, values in self.overrides.items():
            tables.setdefault(table, {}).update(values)
        lines = []
        for table, values in tables.items():
            lines += [f"[{table}]", *(f"{key} = {value}" for key, value in values.items()), ""]
        self.config.write_text("\n".join(lines), encoding="utf-8")

    def argv(self) -> list[str]:
        script = Path(sys.executable).parent / "centrex"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "centrex.cli"]
        return [*command, "serve", "--config", str(self.config)]

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return version("centrex")


def _remove_socket_folder(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def kamailio_binary() -> str:
    return shutil.which("kamailio") or "/usr/sbin/kamailio"


def ensure_debian_packages(needed: dict[str, str]) -> None:
    """Install the Debian packages whose command is missing ({command: package})."""
    missing = [package for command, package in needed.items() if not _have(command)]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: run `sudo apt-get install -y {' '.join(missing)}`")
    print(f"installing {', '.join(missing)} (apt-get)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, timeout=900, env=env)
    # The Debian package may start its own service (on port 5060 of every address).
    if shutil.which("systemctl") is None and Path("/etc/init.d/kamailio").exists():
        subprocess.run(
            ["/etc/init.d/kamailio", "stop"], timeout=30, check=False, capture_output=True
        )


def _have(command: str) -> bool:
    return shutil.which(command) is not None or Path("/usr/sbin", command).exists()


# -- sipp ----------------------------------------------------------------------------------


@dataclass
class SippStats:
    """The cumulative counters of sipp's last -trace_stat line."""

    created: int = 0
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    elapsed: float = 0.0

    @classmethod
    def read(cls, path: Path) -> SippStats:
        try:
            lines = [line for line in path.read_text(errors="replace").splitlines() if line]
        except FileNotFoundError:
            return cls()
        if len(lines) < 2:
            return cls()
        names = lines[0].split(";")
        values = dict(zip(names, lines[-1].split(";"), strict=False))

        def number(name: str) -> int:
            try:
                return int(values.get(name, "0") or 0)
            except ValueError:
                return 0

        created = number("OutgoingCall(C)") + number("IncomingCall(C)")
        return cls(
            created,
            number("SuccessfulCall(C)"),
            number("FailedCall(C)"),
            number("Retransmissions(C)"),
        )


@dataclass
class Sipp:
    """One sipp run; ``argv`` without the trace options, which ``start`` adds."""

    name: str
    argv: list[str]
    workdir: Path
    trace_messages: bool = False
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ended: float = 0.0
    exit_code: int | None = None
    stats: SippStats = field(default_factory=SippStats)
    cpu: float = 0.0

    @property
    def stat_file(self) -> Path:
        return self.workdir / f"{self.name}_stat.csv"

    @property
    def message_file(self) -> Path:
        return self.workdir / f"{self.name}_messages.log"

    def start(self) -> Sipp:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for stale in (self.stat_file, self.message_file):
            stale.unlink(missing_ok=True)
        argv = [
            *self.argv,
            "-nostdin",
            "-trace_stat", "-stf", str(self.stat_file), "-fd", "1",
            "-trace_err", "-error_file", str(self.workdir / f"{self.name}_errors.log"),
        ]  # fmt: skip
        if self.trace_messages:
            argv += ["-trace_msg", "-message_file", str(self.message_file)]
        self.started = time.monotonic()
        self.process = spawn(argv, self.workdir / f"{self.name}.out", self.workdir)
        return self

    def wait(self, timeout: float) -> int | None:
        """The exit code; None when sipp had to be stopped after ``timeout`` s."""
        assert self.process is not None
        try:
            self.cpu = 0.0
            self.exit_code = self.process.wait(max(0.0, timeout))
        except subprocess.TimeoutExpired:
            stop_group(self.process, wait=3)
            self.exit_code = None
        self.ended = time.monotonic()
        with contextlib.suppress(ValueError):
            _started.remove(self.process)
        self.stats = SippStats.read(self.stat_file)
        return self.exit_code


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        sys.exit("sipp is missing (Debian package sip-tester)")
    return path


_STAMP = re.compile(rb"^-{20,} (\d{4}-\d\d-\d\d) (\d\d):(\d\d):(\d\d\.\d+)\s*$")


def response_times(message_file: Path, method: str) -> list[float]:
    """Seconds from the first send of each ``method`` request to its first final
    2xx, per transaction (Call-ID + CSeq), from a sipp -trace_msg file."""
    sent: dict[bytes, float] = {}
    answered: dict[bytes, float] = {}
    stamp = 0.0
    direction = b""
    first_line = b""
    call_id = cseq = b""
    wanted = method.encode()

    def finish() -> None:
        if not first_line or not cseq.endswith(b" " + wanted):
            return
        key = call_id + b"|" + cseq
        if direction == b"sent" and first_line.startswith(wanted + b" "):
            sent.setdefault(key, stamp)
        elif direction == b"received" and first_line.startswith(b"SIP/2.0 2"):
            answered.setdefault(key, stamp)

    try:
        file = message_file.open("rb")
    except FileNotFoundError:
        return []
    with file:
        state = 0  # 0: wait for a stamp, 1: direction line, 2: blank, 3: start line, 4: headers
        for raw in file:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"-" * 20):
                finish()
                state, first_line, call_id, cseq = 0, b"", b"", b""
                match = _STAMP.match(line)
                if match:  # a message sent or received (not, e.g., "Ignoring provisional")
                    hours, minutes, seconds = int(match[2]), int(match[3]), float(match[4])
                    stamp = hours * 3600 + minutes * 60 + seconds
                    state = 1
                continue
            if state == 1:
                direction = b"sent" if b"sent" in line else b"received"
                state = 2
            elif state == 2 and line.strip():
                first_line = line.strip()
                state = 4
            elif state == 4:
                name, _, value = line.partition(b":")
                lowered = name.strip().lower()
                if lowered in (b"call-id", b"i"):
                    call_id = value.strip()
                elif lowered == b"cseq":
                    cseq = b" ".join(value.split())
        finish()
    times = []
    for key, at in sent.items():
        done = answered.get(key)
        if done is not None:
            delta = done - at
            times.append(delta + 86400 if delta < 0 else delta)  # past midnight
    return times


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- rate search ---------------------------------------------------------------------------


@dataclass
class RateSearch:
    """The highest rate that passes: from ``start``, double while passing (up to
    ``ceiling``), halve while failing (down to ``floor``), then bisect between the
    highest pass and the lowest failure ``bisections`` times. Every rate is
    tried once; the number of steps is bounded by the three limits."""

    start: int
    ceiling: int
    floor: int = 10
    bisections: int = 3
    passed: int | None = None
    failed: int | None = None
    steps: int = 0
    _bisected: int = 0

    def next_rate(self) -> int | None:
        if self.passed is None and self.failed is None:
            return self.start
        if self.failed is None:
            assert self.passed is not None
            rate = self.passed * 2
            if self.passed >= self.ceiling:
                return None
            return min(rate, self.ceiling)
        if self.passed is None:
            rate = self.failed // 2
            return rate if rate >= self.floor else None
        if self._bisected >= self.bisections or self.failed - self.passed <= max(
            1, self.passed // 20
        ):
            return None
        return (self.passed + self.failed) // 2

    def record(self, rate: int, ok: bool) -> None:
        self.steps += 1
        if self.passed is not None and self.failed is not None:
            self._bisected += 1
        if ok:
            self.passed = max(rate, self.passed or 0)
        else:
            self.failed = rate if self.failed is None else min(rate, self.failed)

    def worst_case_steps(self) -> int:
        up = 0
        rate = self.start
        while rate < self.ceiling:
            rate *= 2
            up += 1
        down = 0
        rate = self.start
        while rate // 2 >= self.floor:
            rate //= 2
            down += 1
        return 1 + max(up, down) + self.bisections
