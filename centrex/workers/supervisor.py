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
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

from centrex.auth.nonce import EPOCH_BYTES
from centrex.workers.frames import WorkerInfo

logger = logging.getLogger("centrex.workers")

#: How long the workers get to stop (flush the recovery file, close
#: connections) after SIGTERM before they are killed.
STOP_GRACE_S = 15.0

#: How often the supervisor looks for ended workers.
_POLL_S = 0.2

#: prctl(2): the signal a worker gets when the supervisor dies.
_PR_SET_PDEATHSIG = 1

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
    nonce_epoch: bytes,
) -> None:
    """Run in a forked worker: keep this worker's ends of the sockets, serve, exit."""
    code = 1
    try:
        for signum in _FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        # Still blocked: the worker's event loop takes them before it starts
        # to serve and unblocks them then (cli._serve); one that comes
        # meanwhile waits for it instead of ending the worker mid-start.
        _stop_with_supervisor()
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
        code = serve(WorkerInfo(index, count, sockets, nonce_epoch))
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
    nonce_epoch = os.urandom(EPOCH_BYTES)  # (one per start, for every worker)
    sys.stdout.flush()
    sys.stderr.flush()
    # No signal is taken while the workers are forked: one that came then
    # would end the supervisor alone, or a worker before it serves.
    signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:
                _child(index, count, pairs, serve, nonce_epoch)  # never returns
            children[pid] = index
    except BaseException:
        _signal_all(children, signal.SIGKILL)
        for pid in children:
            os.waitpid(pid, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
        raise
    finally:
        for a, b in pairs.values():
            a.close()
            b.close()
    return _watch(children)


def _stop_with_supervisor() -> None:
    """Have the kernel send this worker SIGTERM if the supervisor dies (a
    worker left serving alone would keep the ports)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        logger.debug("prctl(PR_SET_PDEATHSIG) not available")


def check_ports_free(addresses: Sequence[tuple[str, str, int]]) -> None:
    """Bind each (transport, host, port) once without SO_REUSEPORT and let it
    go: OSError naming the address when something holds it (another
    instance's workers would otherwise share it with these, SO_REUSEPORT
    allowing it)."""
    for transport, host, port in addresses:
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        for family, _, _, _, sockaddr in socket.getaddrinfo(
            host, port, type=kind, flags=socket.AI_PASSIVE
        ):
            with socket.socket(family, kind) as probe:
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if kind == socket.SOCK_STREAM:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(sockaddr)
                except OSError as exc:
                    raise OSError(
                        exc.errno, f"cannot listen on {transport}:{host}:{port}: {exc.strerror}"
                    ) from exc


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
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
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
            # Every worker that has ended by now, the one that failed first:
            # a worker killed takes the others' links down, and one of them
            # may be reaped before it (exit code 0), but it is not the cause.
            ended_now = [(pid, status)]
            while len(ended_now) < len(children):
                try:
                    more = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if more[0] == 0:
                    break
                ended_now.append(more)
            reaped = [
                (children.pop(pid), os.waitstatus_to_exitcode(status))
                for pid, status in ended_now
                if pid in children
            ]
            reaped.sort(key=lambda item: item[1] == 0)  # (failures first, in order)
            for index, ended in reaped:
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
