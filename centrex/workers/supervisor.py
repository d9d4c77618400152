"""The process that forks the workers and stands by them (``[server] workers``).

It makes one Unix socket pair for each pair of workers, forks the workers
(each serves until told to stop; ``serve`` returns its exit code), passes
SIGTERM, SIGINT and SIGHUP on to them, and waits. When a worker ends that was
not told to, the supervisor stops the others and ends with an error: the
workers share one location table and one set of ports, and a service manager
(systemd's ``Restart=``) starts the instance again whole, which reloads the
recovery file. A worker that does not stop within ``STOP_GRACE_S`` of SIGTERM
is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

from centrex.workers.frames import WorkerInfo

logger = logging.getLogger("centrex.workers")

#: How long the workers get to stop (flush the recovery file, close
#: connections) after SIGTERM before they are killed.
STOP_GRACE_S = 15.0

#: How often the supervisor looks for ended workers while they stop.
_POLL_S = 0.05

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _child(
    index: int,
    count: int,
    pairs: dict[tuple[int, int], tuple[socket.socket, socket.socket]],
    serve: Callable[[WorkerInfo], int],
) -> None:
    """Run in a forked worker: keep this worker's ends of the sockets, serve, exit."""
    code = 1
    try:
        sockets: dict[int, socket.socket] = {}
        for (low, high), (a, b) in pairs.items():
            if low == index:
                sockets[high] = a
                b.close()
            elif high == index:
                sockets[low] = b
                a.close()
            else:
                a.close()
                b.close()
        code = serve(WorkerInfo(index, count, sockets))
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        logger.exception("worker %d failed", index)
        code = 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_workers(count: int, serve: Callable[[WorkerInfo], int]) -> int:
    """Fork ``count`` workers running ``serve``; wait for them; the exit code.

    0 when every worker stopped cleanly after a signal; otherwise the first
    failing worker's code (1 when it was killed by a signal).
    """
    pairs = {
        (low, high): socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for low in range(count)
        for high in range(low + 1, count)
    }
    children: dict[int, int] = {}
    sys.stdout.flush()
    sys.stderr.flush()
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            _child(index, count, pairs, serve)  # never returns
        children[pid] = index
    for a, b in pairs.values():
        a.close()
        b.close()
    return _watch(children)


def _watch(children: dict[int, int]) -> int:
    stopping = False
    deadline: float | None = None
    code = 0

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping, deadline
        if not stopping:
            stopping = True
            deadline = time.monotonic() + STOP_GRACE_S
        _signal_all(children, signum)

    def forward(signum: int, frame: FrameType | None) -> None:
        _signal_all(children, signum)

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, stop),
        signal.SIGINT: signal.signal(signal.SIGINT, stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, forward),
    }
    try:
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    logger.error("workers did not stop within %.0f s: killing them", STOP_GRACE_S)
                    _signal_all(children, signal.SIGKILL)
                    deadline = None
                time.sleep(_POLL_S)
                continue
            index = children.pop(pid, None)
            if index is None:
                continue
            ended = os.waitstatus_to_exitcode(status)
            if not stopping:
                logger.error(
                    "worker %d ended (%s); stopping the other workers",
                    index,
                    f"exit code {ended}" if ended >= 0 else f"signal {-ended}",
                )
                stopping = True
                deadline = time.monotonic() + STOP_GRACE_S
                _signal_all(children, signal.SIGTERM)
                code = code or (ended if ended > 0 else 1)
            elif ended != 0 and code == 0:
                code = ended if ended > 0 else 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def _signal_all(children: dict[int, int], signum: int) -> None:
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
