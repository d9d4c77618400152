"""End-to-end fixtures: a real ``centrex serve`` process and real sipp phones.

``server`` starts Centrex on a free port with a config written in the test's
tmp_path; ``make_server`` does the same with registrar settings of the test's
choice. ``phones`` starts sipp scenarios from ``scenarios/`` against it, each
bounded in calls (-m), in time (-timeout ... -timeout_error, plus a subprocess
deadline) and on its own local port. On failure the server's log and SIP trace
and each sipp's stderr, error trace and message trace are shown.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import wire

SCENARIOS = Path(__file__).parent / "scenarios"
HOST = wire.HOST

#: How long one sipp run may take (sipp's own -timeout) and the hard stop after it.
SIPP_TIMEOUT_S = 20
SIPP_KILL_AFTER_S = SIPP_TIMEOUT_S + 10
#: Longest wait for the server to answer its first OPTIONS.
SERVER_READY_S = 15.0

_handed_out: set[int] = set()


# -- outcome of the test, for fixtures' teardown ------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return any(
        getattr(node, f"rep_{when}", None) is not None and getattr(node, f"rep_{when}").failed
        for when in ("setup", "call")
    )


# -- ports ---------------------------------------------------------------------------


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_free_port(*, also_free: tuple[int, ...] = ()) -> int:
    """A port free for both UDP and TCP on 127.0.0.1, not handed out before in
    this session; each offset in ``also_free`` (e.g. 2 for sipp's video RTP
    socket) must be free for UDP too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port: int = tcp.getsockname()[1]
            if port in _handed_out or port + max(also_free, default=0) > 65535:
                continue
            if not _udp_free(port) or not all(_udp_free(port + o) for o in also_free):
                continue
        _handed_out.add(port)
        _handed_out.update(port + o for o in also_free)
        return port
    raise RuntimeError("no free port found on 127.0.0.1")


@pytest.fixture
def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    return pick_free_port()


# -- the server ------------------------------------------------------------------------


def _centrex_command() -> list[str]:
    script = Path(sys.executable).parent / "centrex"
    return [str(script)] if script.exists() else [sys.executable, "-m", "centrex.cli"]


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


DEFAULT_USERS = (("1001", "Alice"), ("1002", "Bob"))


@dataclass
class CentrexServer:
    """One ``centrex serve`` process on 127.0.0.1:``port`` (UDP and TCP)."""

    root: Path
    port: int
    registrar: dict[str, object] = field(default_factory=dict)
    users: tuple[tuple[str, str], ...] = DEFAULT_USERS
    # Issue 3's call tests are about proxying: authentication is off unless a
    # test turns it on (with ``passwords`` for the users).
    auth: dict[str, object] = field(default_factory=lambda: {"enabled": False})
    passwords: dict[str, str] = field(default_factory=dict)
    #: ``[registrar.database]`` keys (with registrar store = "database").
    database: dict[str, object] = field(default_factory=dict)
    #: More ``[server]`` keys (instance_id...).
    server: dict[str, object] = field(default_factory=dict)
    domains: tuple[str, ...] = ("example.com",)
    #: A ``tls:`` listener on this port too, with a self-signed certificate
    #: for 127.0.0.1 (``certificate`` in the server's folder).
    tls_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.root / "data"
        self.config_path = self.root / "centrex.toml"
        self.log_path = self.root / "server.log"
        self.trace_path = self.data_dir / "sip-trace.log"
        registrar = {"recovery_every_seconds": 1, **self.registrar}
        listen = [f"udp:{HOST}:{self.port}", f"tcp:{HOST}:{self.port}"]
        tls: list[str] = []
        if self.tls_port is not None:
            from centrex.transport.selfsigned import make_self_signed

            make_self_signed(self.certificate, self.root / "key.pem", HOST, days=1)
            listen.append(f"tls:{HOST}:{self.tls_port}")
            tls = ['tls_certificate = "cert.pem"', 'tls_private_key = "key.pem"']
        lines = [
            "[server]",
            f"domains = {_toml_value(self.domains)}",
            f"data_dir = {_toml_value(str(self.data_dir))}",
            *(f"{key} = {_toml_value(value)}" for key, value in self.server.items()),
            "",
            "[network]",
            f"listen = {_toml_value(listen)}",
            *tls,
            "",
            "[registrar]",
            *(f"{key} = {_toml_value(value)}" for key, value in registrar.items()),
            "",
            *(["[registrar.database]"] if self.database else []),
            *(f"{key} = {_toml_value(value)}" for key, value in self.database.items()),
            "",
            "[logging]",
            'level = "debug"',
            "sip_trace = true",
            "",
            "[admin]",
            "enabled = false",
            "",
            "[auth]",
            *(f"{key} = {_toml_value(value)}" for key, value in self.auth.items()),
        ]
        for user, description in self.users:
            lines += ["", "[[users]]", f'user = "{user}"', f'description = "{description}"']
            if user in self.passwords:
                lines.append(f"password = {_toml_value(self.passwords[user])}")
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def certificate(self) -> Path:
        return self.root / "cert.pem"

    # -- life cycle --

    def start(self) -> None:
        """Start (or restart) the server with the same config; wait until it answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"===== centrex serve, start #{self.starts} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*_centrex_command(), "serve", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_READY_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(
                    f"centrex serve exited with {self.process.returncode} before answering "
                    f"OPTIONS:\n{self.log()}",
                    pytrace=False,
                )
            try:
                status = wire.options_status(self.port, "udp", timeout=0.3)
            except OSError:
                status = None
            if status is not None and status.startswith("SIP/2.0 200"):
                return
            time.sleep(0.1)
        self.kill()
        pytest.fail(
            f"centrex serve did not answer OPTIONS with 200 within {SERVER_READY_S} s:\n"
            f"{self.log()}",
            pytrace=False,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait up to ``timeout`` s: the graceful stop (flushes the
        recovery file). Returns the exit code; fails the test if it hangs."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"centrex serve ignored SIGTERM for {timeout} s", pytrace=False)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the crash, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    # -- what it shows --

    def registrations(self) -> list[str]:
        """The AORs ``centrex registrations`` lists (one per binding), from the
        recovery file."""
        result = subprocess.run(
            [*_centrex_command(), "registrations", "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, (
            f"centrex registrations exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
        out = result.stdout.splitlines()
        if out and out[0].startswith("no registrations"):
            return []
        counted = re.match(r"(\d+) binding\(s\)", out[0]) if out else None
        assert counted is not None, f"unexpected output of centrex registrations:\n{result.stdout}"
        rows = [line.split()[0] for line in out[2:] if line.strip()]
        assert len(rows) == int(counted.group(1)), result.stdout
        return rows

    def wait_registrations(
        self, predicate: Callable[[list[str]], bool], timeout: float, what: str
    ) -> list[str]:
        """Poll ``centrex registrations`` until ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        rows = self.registrations()
        while not predicate(rows):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"after {timeout} s, centrex registrations shows {len(rows)} binding(s), "
                    f"not {what}",
                    pytrace=False,
                )
            time.sleep(0.25)
            rows = self.registrations()
        return rows

    def log(self, tail: int = 200) -> str:
        return _tail(self.log_path, tail)

    def trace(self, tail: int = 400) -> str:
        return _tail(self.trace_path, tail)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path.name} does not exist)"
    kept = text.splitlines()[-lines:]
    return "\n".join(kept)


@pytest.fixture
def make_server(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., CentrexServer]]:
    """``make_server(registrar={...}, users=(...))``: a started CentrexServer;
    ``auth={...}`` and ``passwords={user: password}`` turn authentication on."""
    servers: list[CentrexServer] = []

    def make(
        registrar: dict[str, object] | None = None,
        users: tuple[tuple[str, str], ...] = DEFAULT_USERS,
        *,
        auth: dict[str, object] | None = None,
        passwords: dict[str, str] | None = None,
        **more: Any,
    ) -> CentrexServer:
        security: dict[str, Any] = dict(more)
        if auth is not None:
            security["auth"] = auth
        if passwords is not None:
            security["passwords"] = passwords
        server = CentrexServer(
            tmp_path / f"server{len(servers)}",
            pick_free_port(),
            registrar or {},
            users,
            **security,
        )
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        if server.running:
            server.stop()
        if _failed(request):
            print(f"\n===== centrex serve log ({server.log_path}) =====\n{server.log()}")
            print(f"\n===== SIP trace ({server.trace_path}) =====\n{server.trace()}")


@pytest.fixture
def server(make_server: Callable[..., CentrexServer]) -> CentrexServer:
    """Centrex serving example.com (users 1001 Alice, 1002 Bob) on a free port."""
    return make_server()


# -- sipp ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sipp() -> str:
    """The sipp binary (Debian package sip-tester)."""
    path = shutil.which("sipp")
    if path is None:
        message = "sipp (Debian sip-tester) is not installed"
        if os.environ.get("CENTREX_TEST_STRICT") == "1":
            pytest.fail(message + " and CENTREX_TEST_STRICT=1", pytrace=False)
        pytest.skip(message)
    return path


@dataclass
class SippRun:
    """One sipp process: a phone (or a crowd of them) running one scenario."""

    name: str
    argv: list[str]
    workdir: Path
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    #: Its diagnostics are in a failure message already.
    reported: bool = False

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"{self.name}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"{self.name}.stderr"

    @property
    def errors_path(self) -> Path:
        return self.workdir / f"{self.name}_errors.log"

    @property
    def logs_path(self) -> Path:
        return self.workdir / f"{self.name}_logs.log"

    @property
    def messages_path(self) -> Path:
        return self.workdir / f"{self.name}_messages.log"

    def logged(self) -> str:
        try:
            return self.logs_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_logged(self, text: str, timeout: float = 10.0) -> None:
        """Wait until the scenario's <log> actions wrote ``text`` (e.g. REGISTERED)."""
        deadline = time.monotonic() + timeout
        while text not in self.logged():
            if self.process.poll() is not None:
                pytest.fail(
                    f"sipp {self.name} ended (exit {self.process.returncode}) before "
                    f"logging {text!r}\n{self.report()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"sipp {self.name} did not log {text!r} within {timeout} s\n{self.report()}",
                    pytrace=False,
                )
            time.sleep(0.05)

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None when sipp had to be killed: after ``timeout`` s
        from now, or by default once SIPP_KILL_AFTER_S have passed since its start."""
        if timeout is None:
            timeout = max(0.0, SIPP_KILL_AFTER_S - (time.monotonic() - self.started))
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def report(self) -> str:
        parts = [f"----- sipp {self.name}: {' '.join(self.argv)}"]
        parts.append(f"exit code: {self.process.poll()}")
        for label, path, lines in (
            ("stderr", self.stderr_path, 60),
            ("-trace_err (unexpected messages)", self.errors_path, 80),
            ("-trace_msg (messages)", self.messages_path, 150),
            ("screen (stdout tail)", self.stdout_path, 25),
        ):
            parts.append(f"----- {self.name} {label}:\n{_tail(path, lines)}")
        return "\n".join(parts)


class Phones:
    """Runs sipp scenarios against one server; every run bounded and on its own port."""

    def __init__(self, sipp: str, workdir: Path, server: CentrexServer) -> None:
        self.sipp = sipp
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server = server
        # Callee and caller sipp share this Call-ID pattern, so the callee can map
        # the caller's INVITE ("inv///<id>") onto its own call (see uas_register.xml).
        self.cid_str = f"%u-{secrets.token_hex(4)}@{HOST}"
        self.runs: list[SippRun] = []

    def start(
        self,
        scenario: str,
        *,
        service: str | None = None,
        transport: str = "udp",
        calls: int = 1,
        name: str | None = None,
        extra: tuple[str, ...] = (),
        local_ip: str = HOST,
        send_to: str | None = None,
    ) -> SippRun:
        """Start sipp with scenarios/``scenario``, as user ``service`` (-s) if given.

        ``local_ip`` is the address sipp binds (another loopback address, e.g.
        127.0.0.3, is another source for the server); ``send_to`` ("ip:port")
        sends everything there instead of to the server (-rsa; a relay).
        """
        name = name or f"{len(self.runs)}-{Path(scenario).stem}"
        local_port = pick_free_port()
        media_port = pick_free_port(also_free=(2,))
        remote = f"{HOST}:{self.server.port}"
        argv = [
            self.sipp,
            remote,
            "-sf", str(SCENARIOS / scenario),
            *(("-s", service) if service is not None else ()),
            "-i", local_ip,
            "-p", str(local_port),
            "-mi", local_ip,
            "-mp", str(media_port),
            "-rsa", send_to or remote,
            "-t", "u1" if transport == "udp" else "t1",
            "-m", str(calls),
            "-timeout", f"{SIPP_TIMEOUT_S}s",
            "-timeout_error",
            "-nostdin",
            "-cid_str", self.cid_str,
            "-trace_err", "-error_file", str(self.workdir / f"{name}_errors.log"),
            "-trace_logs", "-log_file", str(self.workdir / f"{name}_logs.log"),
            "-trace_msg", "-message_file", str(self.workdir / f"{name}_messages.log"),
            *extra,
        ]  # fmt: skip
        with (
            (self.workdir / f"{name}.stdout").open("wb") as stdout,
            (self.workdir / f"{name}.stderr").open("wb") as stderr,
        ):
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=self.workdir
            )
        run = SippRun(name, argv, self.workdir, process)
        self.runs.append(run)
        return run

    def finish(self, *runs: SippRun) -> None:
        """Wait for each run; fail with every run's diagnostics unless all exit 0.

        When one fails the others are not waited for to their timeout: a callee
        still waiting for a call that will not come is killed.
        """
        problems: list[str] = []
        for run in runs:
            code = run.wait(2.0 if problems else None)
            if code is None:
                problems.append(f"sipp {run.name} did not end (killed)")
            elif code != 0:
                problems.append(f"sipp {run.name} exited {code}")
        if problems:
            for run in runs:
                run.kill()
                run.reported = True
            details = "\n".join(run.report() for run in runs)
            pytest.fail("; ".join(problems) + "\n" + details, pytrace=False)

    def run(self, scenario: str, **kwargs: Any) -> SippRun:
        """Start sipp and wait for it to pass (exit 0)."""
        run = self.start(scenario, **kwargs)
        self.finish(run)
        return run

    def close(self) -> None:
        for run in self.runs:
            run.kill()


@pytest.fixture
def make_phones(
    sipp: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[CentrexServer], Phones]]:
    """``make_phones(server)``: sipp phones talking to that server."""
    made: list[Phones] = []

    def make(server: CentrexServer) -> Phones:
        phones = Phones(sipp, tmp_path / f"sipp{len(made)}", server)
        made.append(phones)
        return phones

    yield make
    for phones in made:
        phones.close()
        unreported = [run for run in phones.runs if not run.reported]
        if _failed(request) and unreported:
            print("\n" + "\n".join(run.report() for run in unreported))


@pytest.fixture
def phones(
    sipp: str, server: CentrexServer, make_phones: Callable[[CentrexServer], Phones]
) -> Phones:
    """sipp phones talking to ``server``."""
    return make_phones(server)


# -- sipvicious -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sipvicious:
    """The sipvicious tools (Debian package ``sipvicious``): ``svwar`` enumerates
    extensions, ``svcrack`` guesses passwords. ``python`` and ``module_dir`` run
    their code in-process from a wrapper script (``python -c``)."""

    svwar: str
    svcrack: str
    python: str
    module_dir: Path


@pytest.fixture(scope="session")
def sipvicious() -> Sipvicious:
    """sipvicious' svwar and svcrack (Debian package sipvicious)."""
    svwar, svcrack = shutil.which("svwar"), shutil.which("svcrack")
    message = ""
    if svwar is None or svcrack is None:
        message = "sipvicious (Debian sipvicious: svwar, svcrack) is not installed"
    else:
        # Debian: /usr/bin/svcrack -> /usr/share/sipvicious/sipvicious_svcrack,
        # next to the package "sipvicious"; its shebang names the interpreter.
        script = Path(svcrack).resolve()
        first = script.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
        python = first[0][2:].strip().split()[0] if first and first[0].startswith("#!") else ""
        if not (script.parent / "sipvicious").is_dir() or not python:
            message = f"sipvicious found at {script}, but not its Python package next to it"
    if message:
        if os.environ.get("CENTREX_TEST_STRICT") == "1":
            pytest.fail(message + " and CENTREX_TEST_STRICT=1", pytrace=False)
        pytest.skip(message)
    assert svwar is not None and svcrack is not None
    return Sipvicious(svwar, svcrack, python, script.parent)
