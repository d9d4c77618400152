"""The SIP trace log: every message sent and received, as text (``[logging] sip_trace``).

Each message is written after a line saying which way it went and to or from whom::

    >>>> TxTxTx... (63 Ms, To: 192.168.1.2:7000) >>>>
    INVITE sip:1002@example.com SIP/2.0
    ...

    <<<< RxRxRx... (0 Ms, From: [2001:db8::7]:5060) <<<<
    SIP/2.0 100 Trying
    ...

The number before ``Ms`` is the time in milliseconds since the previous entry of the
trace (sent or received; 0 for the first entry after opening), taken from the ``now``
the caller passes, so it shows the pace of an exchange: how long a peer took to answer,
how far apart retransmissions were. An IPv6 peer is written in brackets. The message
is decoded as UTF-8 (undecodable bytes become U+FFFD), its line breaks are written as
``\\n``, and one blank line follows it.

The file rotates like the event log: when an entry would take it past ``max_bytes``
(0 = never) it becomes ``<file>.1``, the older ones move up to ``<file>.<backup_count>``
and the oldest is deleted; with ``backup_count = 0`` the file starts over.

Writes go to a 64 KiB buffer in the call itself (no thread, no task); the buffer is
flushed to the file when at least :data:`FLUSH_INTERVAL_S` has passed since the last
flush (checked at each entry, with the entry's ``now``), when it is full, on
:meth:`SipTrace.flush` and on :meth:`SipTrace.close`. So the event loop pays for one
``write`` system call per interval, not one per message, and a crash loses at most the
last interval. A server may call ``flush()`` from a timer so a quiet trace is on disk
promptly.

With tracing off the server holds a :class:`NullTrace`, whose methods do nothing. On
the hot path, test ``trace.enabled`` before computing anything only the trace needs.
A trace belongs to one event loop (one thread); with several worker processes give
each its own file.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Literal, Protocol

from centrex.config.settings import LoggingSettings

FLUSH_INTERVAL_S: Final = 0.5
"""Least time between two flushes of the trace buffer, in seconds."""

_BUFFER_BYTES: Final = 64 * 1024

logger: Final = logging.getLogger(__name__)


def format_peer(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::1]:5060``)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _message_text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").rstrip("\r\n")
    return text + "\n" if text else ""


class SipTraceLog(Protocol):
    """What the transport layer writes the trace to: a :class:`SipTrace` or a :class:`NullTrace`."""

    @property
    def enabled(self) -> bool: ...

    def sent(self, data: bytes, host: str, port: int, now: float) -> None: ...

    def received(self, data: bytes, host: str, port: int, now: float) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class NullTrace:
    """The trace when ``sip_trace`` is off: every method does nothing."""

    __slots__ = ()

    @property
    def enabled(self) -> bool:
        return False

    def sent(self, data: bytes, host: str, port: int, now: float) -> None:
        pass

    def received(self, data: bytes, host: str, port: int, now: float) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class SipTrace:
    """An open SIP trace file; make one with :meth:`open`."""

    def __init__(
        self, path: Path, max_bytes: int, backup_count: int, flush_interval_s: float
    ) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._backup_count = backup_count
        self._flush_interval = flush_interval_s
        self._file: BinaryIO | None = None
        self._size = 0
        self._previous: float | None = None  # ``now`` of the previous entry
        self._flushed_at = -math.inf
        self._failing = False

    @classmethod
    def open(
        cls,
        path: Path,
        max_bytes: int,
        backup_count: int,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> SipTrace:
        """Open (append to) the trace file at ``path``, creating its folder if needed."""
        trace = cls(path, max_bytes, backup_count, flush_interval_s)
        path.parent.mkdir(parents=True, exist_ok=True)
        trace._open("ab")
        return trace

    @property
    def enabled(self) -> bool:
        """True until :meth:`close` (or until the file cannot be reopened)."""
        return self._file is not None

    def sent(self, data: bytes, host: str, port: int, now: float) -> None:
        """Trace ``data`` sent to ``host``:``port`` at ``now`` (seconds, monotonic)."""
        self._entry(">>>> TxTxTx...", "To", data, host, port, now)

    def received(self, data: bytes, host: str, port: int, now: float) -> None:
        """Trace ``data`` received from ``host``:``port`` at ``now`` (seconds, monotonic)."""
        self._entry("<<<< RxRxRx...", "From", data, host, port, now)

    def flush(self) -> None:
        """Write what is buffered to the file now."""
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._failed(exc)

    def close(self) -> None:
        """Flush and close the file; later entries are ignored. Safe to call twice."""
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                self._failed(exc)

    def __enter__(self) -> SipTrace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _entry(
        self, arrow: str, direction: str, data: bytes, host: str, port: int, now: float
    ) -> None:
        file = self._file
        if file is None:
            return
        previous, self._previous = self._previous, now
        # A clock that steps back (it should not: callers pass loop.time()) shows 0.
        elapsed_ms = 0 if previous is None else max(0, round((now - previous) * 1000))
        entry = (
            f"{arrow} ({elapsed_ms} Ms, {direction}: {format_peer(host, port)}) {arrow[:4]}\n"
            f"{_message_text(data)}\n"
        ).encode()
        try:
            if 0 < self._max_bytes < self._size + len(entry) and self._size > 0:
                file = self._rotate(file)
            file.write(entry)
            self._size += len(entry)
            if now - self._flushed_at >= self._flush_interval:
                file.flush()
                self._flushed_at = now
        except OSError as exc:
            self._failed(exc)
        else:
            self._failing = False

    def _open(self, mode: Literal["ab", "wb"]) -> BinaryIO:
        file = open(self.path, mode, buffering=_BUFFER_BYTES)  # noqa: SIM115 - kept open
        self._file = file
        self._size = file.seek(0, os.SEEK_END)
        return file

    def _rotate(self, file: BinaryIO) -> BinaryIO:
        self._file = None
        file.close()
        try:
            if self._backup_count > 0:
                for number in range(self._backup_count - 1, 0, -1):
                    older = self._backup(number)
                    if older.exists():
                        os.replace(older, self._backup(number + 1))
                os.replace(self.path, self._backup(1))
        except OSError:
            # Keep tracing into the current file rather than lose the trace.
            self._open("ab")
            raise
        return self._open("wb")

    def _backup(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number}")

    def _failed(self, exc: OSError) -> None:
        # Once per run of failures: a full disk must not also flood the event log.
        if not self._failing:
            self._failing = True
            logger.error("SIP trace %s: %s", self.path, exc)


def open_sip_trace(settings: LoggingSettings, path: Path) -> SipTrace | NullTrace:
    """The trace the settings ask for: a :class:`SipTrace` at ``path`` or a :class:`NullTrace`.

    ``path`` is ``Settings.resolve_paths(...).sip_trace_file``.
    """
    if not settings.sip_trace:
        return NullTrace()
    return SipTrace.open(path, settings.max_bytes, settings.backup_count)


__all__ = [
    "FLUSH_INTERVAL_S",
    "NullTrace",
    "SipTrace",
    "SipTraceLog",
    "format_peer",
    "open_sip_trace",
]
