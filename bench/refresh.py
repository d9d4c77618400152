"""Server CPU per REGISTER refresh at a fixed rate, against a full table.

The REGISTER load of ``bench/run.py`` in a loop of its own, for A/B runs of
two builds (or of Centrex and Kamailio) taking turns: starts one server on
``--ip``:5060 UDP (Centrex with the settings of ``bench/run.py``, or
Kamailio with ``bench/kamailio/kamailio.cfg`` and 2 children), registers
``--users`` distinct users through it at 3,000/s (not measured), then sends
``--count`` REGISTERs of the same users at ``--rate`` (sipp's
``bench/scenarios/register.xml``: each one a new Call-ID, so each replaces
its user's binding), ``--repeat`` times, and prints the server's CPU time
(utime + stime of its processes, from /proc) per REGISTER for each.

``--perf FILE`` records the server with ``perf record`` (cpu-clock, DWARF
call graphs) for 8 s of the first repeat, 3 s after its start; ``perf``
comes from Debian's ``linux-perf``.

    .venv/bin/python bench/refresh.py --repeat 3
    .venv/bin/python bench/refresh.py --server kamailio --ip 127.0.0.94
    PYTHONPATH=/tmp/head .venv/bin/python bench/refresh.py   # another checkout's build

For the last: ``git worktree add /tmp/head <commit>`` and
``PYTHONPATH=/tmp/head .venv/bin/python -m centrex.native_build build`` in
it first. Exit status 1 when a REGISTER was not answered 200 (sipp's exit
status). Every sipp run has ``-m`` and ``-timeout``; traffic stays on
127.0.0.0/8; the server is stopped at the end, also on an error.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness  # beside this script

HERE = Path(__file__).resolve().parent
PHONES_IP = "127.0.0.93"
FIRST_USER = 300000


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--server", choices=("centrex", "kamailio"), default="centrex")
    parser.add_argument("--ip", default="127.0.0.92", help="the server's address (127.0.0.92)")
    parser.add_argument("--rate", type=int, default=2000, help="REGISTERs per second (2000)")
    parser.add_argument("--users", type=int, default=10000, help="distinct users (10000)")
    parser.add_argument("--count", type=int, default=30000, help="REGISTERs per repeat (30000)")
    parser.add_argument("--repeat", type=int, default=1, help="measured runs (1)")
    parser.add_argument("--perf", metavar="FILE", help="perf record the server into FILE")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="centrex-refresh-"))
    server: harness.ServerUnderTest
    if args.server == "kamailio":
        harness.ensure_debian_packages({"kamailio": "kamailio", "sipp": "sip-tester"})
        server = harness.Kamailio(args.ip, 5060, work, children=2)
    else:
        harness.ensure_debian_packages({"sipp": "sip-tester"})
        server = harness.Centrex(args.ip, 5060, work)
    users = work / "users.csv"
    lines = [f"{FIRST_USER + i};5070" for i in range(args.users)]
    users.write_text("SEQUENTIAL\n" + "\n".join(lines) + "\n", encoding="ascii")
    sipp = harness.sipp_binary()

    def register(rate: int, count: int, port: int) -> subprocess.Popen[bytes]:
        argv = [
            sipp, server.address, "-sf", str(harness.SCENARIOS / "register.xml"),
            "-inf", str(users), "-i", PHONES_IP, "-p", str(port), "-mi", PHONES_IP,
            "-t", "u1", "-r", str(rate), "-m", str(count),
            "-timeout", f"{count // rate + 60}s", "-timeout_error", "-nostdin",
        ]  # fmt: skip
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    server.start()
    try:
        if register(3000, args.users, 21000).wait(args.users // 3000 + 90) != 0:
            print("registering the users failed", file=sys.stderr)
            return 1
        time.sleep(1)
        failed = 0
        for n in range(args.repeat):
            cpu, started = server.cpu(), time.monotonic()
            run = register(args.rate, args.count, 21001 + n)
            if args.perf and n == 0:
                time.sleep(3)
                perf = [
                    "perf", "record", "-F", "999", "-e", "cpu-clock", "--call-graph",
                    "dwarf,16384", "-p", str(server.pids()[0]), "-o", args.perf, "--", "sleep", "8",
                ]  # fmt: skip
                subprocess.run(perf, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            code = run.wait(args.count // args.rate + 90)
            failed += code != 0
            used, took = server.cpu() - cpu, time.monotonic() - started
            print(
                f"{args.server}: {args.count} REGISTERs at {args.rate}/s in {took:.1f} s, "
                f"sipp exit {code}: server CPU {used / args.count * 1e6:.1f} us per REGISTER",
                flush=True,
            )
            time.sleep(1)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
