"""What handing a job to a thread costs an event loop that is busy.

A uvloop loop runs ``--items`` tasks of about ``--work-us`` microseconds of
Python each, one per turn of the loop (``asyncio.sleep(0)`` between them,
as a server answering datagrams does), and every ``--every`` tasks hands a
job to the recovery file's writer thread (``centrex.registrar.writer``),
without waiting for it (a job is handed only when the last one is done).
Printed: the process's CPU time and the wall time per task, for each mode,
the modes taking turns ``--rounds`` times:

- ``none``: no job;
- ``noop``: a job that does nothing;
- ``append``: the journal append as it was before 2026-12-02 (write and
  fsync of ``--bytes``, in the thread);
- ``inline``: the same write and fsync in the loop's own thread.

The thread waits for the GIL once to start a job and once after each system
call; the loop gives the GIL up at every turn (its ``epoll_wait``) and takes
it back before that thread has woken, so each of those waits lasts many
turns of the loop, each waking the thread for nothing (docs/benchmarks.md).

    .venv/bin/python bench/handoff.py
    .venv/bin/python bench/handoff.py --every 10 --rounds 3

Writes only to a temporary folder (removed at the end); every loop is
bounded by ``--items`` and ``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from centrex.registrar.writer import FileWriter, Journal

MODES = ("none", "noop", "append", "inline")


def _nothing() -> None:
    pass


def _append_and_sync(journal: Journal, data: bytes) -> int:
    written = journal.append(data, False)
    journal.sync()
    return written


async def one(mode: str, args: argparse.Namespace, folder: Path) -> tuple[float, float]:
    """CPU and wall microseconds per task, in ``mode``."""
    journal = Journal(folder / f"{mode}.journal")
    writer = FileWriter(f"handoff-{mode}")
    data = b"x" * args.bytes
    loops = max(1, int(args.work_us * 25))  # about 40 ns a turn of this loop
    pending: asyncio.Future[object] | None = None
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(args.items):
        total = 0
        for k in range(loops):
            total += k
        if i % args.every == args.every - 1 and mode != "none":
            if mode == "inline":
                _append_and_sync(journal, data)
            elif pending is None or pending.done():
                job = (
                    writer.run(_nothing)
                    if mode == "noop"
                    else writer.run(_append_and_sync, journal, data)
                )
                pending = job
        await asyncio.sleep(0)
    if pending is not None:
        await pending
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    journal.close()
    return cpu / args.items * 1e6, wall / args.items * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=16000, help="tasks per mode (16000)")
    parser.add_argument("--work-us", type=float, default=100.0, help="work per task (100)")
    parser.add_argument("--every", type=int, default=100, help="tasks per job (100)")
    parser.add_argument("--bytes", type=int, default=30000, help="bytes an append writes")
    parser.add_argument("--rounds", type=int, default=2, help="times each mode runs (2)")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        raise SystemExit("needs uvloop (pip install uvloop), as centrex serve uses") from None
    sys.setswitchinterval(0.0005)  # as centrex serve sets it (cli.tune_serving_process)
    folder = Path(tempfile.mkdtemp(prefix="centrex-handoff-"))
    try:
        print(f"{args.items} tasks of ~{args.work_us:.0f} us, a job every {args.every}")
        for _ in range(args.rounds):
            for mode in MODES:
                cpu, wall = uvloop.run(one(mode, args, folder))
                print(f"{mode:7s} CPU {cpu:7.1f} us a task, wall {wall:7.1f} us")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
