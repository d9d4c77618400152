"""The CPU cost of one REGISTER through the whole server, in process, and what
waking from idle adds to it.

Starts a ``Server`` in this process (the settings of ``bench/hotpath.py``:
UDP on 127.0.0.80, authentication off, unknown users allowed, logging at
warning) and hands its UDP endpoint ``--registers`` REGISTERs of distinct
users, one at a time, as the socket would (``datagram_received``); the 200s go
out over the real socket to a sink on 127.0.0.71 that drains them. No sipp,
no other process: what is measured is the server's own work.

- ``--idle-ms 0`` (the default) gives the loop one turn between REGISTERs and
  prints the CPU time per REGISTER (``time.process_time``: threads included,
  so the recovery file's writes count), the least and the median of
  ``--rounds`` rounds. ``--idle-ms 1`` sleeps 1 ms between them instead, as a
  server at 1,000/s does, and ``--spin`` waits the same time busy instead of
  asleep (its own CPU time taken out): on a virtual machine, waking from idle
  costs the work after it far more than its instructions.
- ``--refresh`` registers every user (``--users``, default ``--registers``)
  first, unmeasured, and then measures ``--registers`` refreshes of them
  (the next CSeq in the same Call-ID), as the side-by-side REGISTER load
  sends them to a full table; without it every REGISTER is a new user's.
- ``--count-instructions`` runs itself under ``valgrind --tool=callgrind``
  twice (``--registers`` and three times as many) and prints the difference
  per REGISTER: instructions, not seconds, so the same for the same code and
  input whatever else the machine does. Start-up and shutdown cancel out,
  except the recovery file written at the stop (it grows with the
  registrations): ``--set registrar.recovery_every_registrations=...`` as
  needed.

    .venv/bin/python bench/inprocess.py
    .venv/bin/python bench/inprocess.py --idle-ms 1
    .venv/bin/python bench/inprocess.py --idle-ms 1 --spin
    .venv/bin/python bench/inprocess.py --count-instructions --registers 400
    .venv/bin/python bench/inprocess.py --count-instructions --registers 400 --refresh

Every loop is bounded by ``--registers``; all traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hotpath import config_text  # beside this script

SERVER_IP = "127.0.0.80"
PHONE = ("127.0.0.71", 5060)


def register(i: int, cseq: int = 1) -> bytes:
    """REGISTER number ``i``: user 100000+i, as sipp's bench scenario sends it
    (``cseq`` 2 and up: its refreshes, in the same registration's Call-ID)."""
    user = 100000 + i
    return (
        f"REGISTER sip:example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {PHONE[0]}:{PHONE[1]};branch=z9hG4bK-{i}-{cseq}-0;rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@example.com>;tag={i}R1\r\n"
        f"To: <sip:{user}@example.com>\r\n"
        f"Call-ID: {i}-1@{PHONE[0]}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{user}@{PHONE[0]}:{PHONE[1]};transport=UDP>\r\n"
        "Expires: 3600\r\n"
        "User-Agent: sipp-hotpath\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def drive(args: argparse.Namespace) -> list[float]:
    """CPU microseconds per REGISTER, one figure per round."""
    from centrex.cli import tune_serving_process
    from centrex.config import load_settings
    from centrex.server import Server

    work = Path(tempfile.mkdtemp(prefix="centrex-inprocess-"))
    try:
        config = work / "centrex.toml"
        config.write_text(
            config_text(work / "data", args.set).replace("127.0.0.70", SERVER_IP),
            encoding="utf-8",
        )
        server = Server(load_settings(config), config)
        await server.start()
        tune_serving_process()
        endpoint = server.transport._udp[0]
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(PHONE)
        sink.setblocking(False)
        answered = 0

        def drain() -> None:
            nonlocal answered
            while True:
                try:
                    data = sink.recv(65535)
                except BlockingIOError:
                    return
                answered += data.startswith(b"SIP/2.0 200 ")

        idle = args.idle_ms / 1000
        per_round = max(1, args.registers // args.rounds)
        expected = per_round * args.rounds
        messages = [register(i) for i in range(args.registers)]
        if args.refresh:
            # Every user registered first, not measured; then their refreshes,
            # round the users as often as --registers asks.
            users = args.users or args.registers
            for i in range(users):
                endpoint.datagram_received(register(i), PHONE)
                await asyncio.sleep(0)
                drain()
            messages = [register(k % users, 2 + k // users) for k in range(args.registers)]
            expected += users
        results: list[float] = []
        for start in range(0, per_round * args.rounds, per_round):
            spun = 0.0
            began = time.process_time()
            for data in messages[start : start + per_round]:
                endpoint.datagram_received(data, PHONE)
                if idle and args.spin:
                    spin_began, until = time.process_time(), time.perf_counter() + idle
                    while time.perf_counter() < until:
                        pass
                    spun += time.process_time() - spin_began
                    await asyncio.sleep(0)
                else:
                    await asyncio.sleep(idle)
                drain()
            results.append((time.process_time() - began - spun) / per_round * 1e6)
        for _ in range(50):  # the last answers
            if answered >= expected:
                break
            await asyncio.sleep(0.01)
            drain()
        if answered < expected:
            raise SystemExit(f"only {answered} of {expected} REGISTERs answered 200")
        sink.close()
        await server.stop()
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def count_instructions(args: argparse.Namespace) -> None:
    """Instructions per REGISTER: two callgrind runs, the difference."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--count-instructions needs valgrind (Debian package valgrind)")
    totals: list[int] = []
    counts = (args.registers, 3 * args.registers)
    with tempfile.TemporaryDirectory() as folder:
        for count in counts:
            out = Path(folder, f"callgrind.{count}")
            command = [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                sys.executable, __file__, "--registers", str(count), "--rounds", "1",
                # (the same users in both runs: the difference is refreshes alone)
                *(["--refresh", f"--users={args.users or args.registers}"] if args.refresh else []),
                *[f"--set={item}" for item in args.set],
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                tail = done.stderr[-2000:]
                raise SystemExit(f"{count} REGISTERs under callgrind failed:\n{tail}")
            summary = next(
                line for line in out.read_text().splitlines() if line.startswith("summary:")
            )
            totals.append(int(summary.split()[1]))
    per = (totals[1] - totals[0]) / (counts[1] - counts[0])
    print(f"instructions per REGISTER: {per:,.0f} ({counts[0]} and {counts[1]} REGISTERs)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registers", type=int, default=24000, help="REGISTERs in all (24000)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds they are split into (8)")
    parser.add_argument("--idle-ms", type=float, default=0.0, help="pause between REGISTERs")
    parser.add_argument("--spin", action="store_true", help="pause busy, not asleep")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="register every user first (not measured), then measure their refreshes",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=0,
        help="with --refresh: how many users (default: --registers)",
    )
    parser.add_argument("--count-instructions", action="store_true", help="under callgrind")
    parser.add_argument(
        "--set", action="append", default=[], metavar="TABLE.KEY=VALUE", help="a setting"
    )
    args = parser.parse_args()
    if args.registers < 1 or args.rounds < 1 or args.idle_ms < 0 or args.users < 0:
        raise SystemExit(
            "--registers and --rounds must be at least 1, --idle-ms and --users not negative"
        )
    if args.count_instructions:
        count_instructions(args)
        return
    import uvloop

    results = sorted(uvloop.run(drive(args)))
    pause = f"{args.idle_ms:g} ms {'busy' if args.spin else 'asleep'} between"
    mode = pause if args.idle_ms else "back to back"
    if args.refresh:
        mode += ", refreshes"
    print(
        f"{args.registers} REGISTERs, {mode}: CPU per REGISTER least {results[0]:.1f} us, "
        f"median {results[len(results) // 2]:.1f} us (of {len(results)} rounds)"
    )


if __name__ == "__main__":
    main()
