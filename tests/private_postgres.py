"""A PostgreSQL server of the test's own, to stop and start at will.

The machine's shared PostgreSQL must never be restarted by a test; this one
lives in a temporary folder on a free port and goes away with the test. It
needs the server binaries (``/usr/lib/postgresql/<version>/bin``, Debian
package ``postgresql``); as root it runs as the ``postgres`` user, since
PostgreSQL refuses to run as root. Without them the test is skipped with the
reason, or fails under ``CENTREX_TEST_STRICT=1``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

STRICT = os.environ.get("CENTREX_TEST_STRICT") == "1"
#: Longest a start or a stop of the server may take.
PG_CTL_TIMEOUT_S = 60


def _unavailable(reason: str) -> None:
    if STRICT:
        pytest.fail(f"{reason} (CENTREX_TEST_STRICT=1)", pytrace=False)
    pytest.skip(reason)


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivatePostgres:
    """``initdb`` in a temporary folder, ``pg_ctl start`` / ``stop`` on 127.0.0.1:``port``."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            _unavailable("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)")
        self.bin = Path(found[-1]).parent
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                _unavailable("running as root and there is no postgres user to run PostgreSQL as")
            self.user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="centrex-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_tcp_port()
        if self.user is not None:
            shutil.chown(self.root, self.user)
        result = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        if result.returncode != 0:
            self.cleanup()
            _unavailable(f"initdb failed: {result.stderr.strip()[-500:]}")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / tool), *args]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_S, check=False
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        result = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )
        assert result.returncode == 0, f"pg_ctl start failed: {result.stderr}\n{self.tail()}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"PostgreSQL not accepting connections:\n{self.tail()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session; ``immediate`` is a crash."""
        result = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        assert result.returncode == 0, f"pg_ctl stop failed: {result.stderr}\n{self.tail()}"

    def _pids(self) -> list[int]:
        """The postmaster and its children (sessions, background workers)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, timeout=10
        ).stdout.split()
        return [postmaster, *(int(pid) for pid in children)]

    def freeze(self) -> None:
        """Stop every process of the server (SIGSTOP): it hangs, answering
        nothing, as a database behind a network path that drops packets."""
        self.frozen = self._pids()
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in getattr(self, "frozen", []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    @property
    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status").returncode == 0

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cleanup(self) -> None:
        self.thaw()
        if self.data.exists() and self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
