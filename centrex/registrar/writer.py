"""The thread that writes the recovery file and fsyncs its journal.

A flush of the in-memory store must not hold up the event loop (an fsync
takes from a fraction of a millisecond to tens of them), so its fsyncs and
the rewrite's writes run in a thread of their own. That thread costs the loop
far more than its calls whenever it wants the GIL back (to start a job, and
after each system call) while the loop is busy: the loop gives the GIL up at
every turn (its ``epoll_wait``) and takes it back before the waiting thread
has woken, each release wakes that thread again for nothing, and the thread
only gets the GIL when it happens to win. A job that does nothing, handed
over every 100 tasks of 0.1 ms, cost the process 1.4-4.5 ms of CPU
(docs/benchmarks.md); with an fsync of the journal handed over every 100
REGISTERs, that was a quarter of the server's CPU per REGISTER. So the
thread is given as few jobs as possible: the journal's appends are written
from the loop's thread (a ``write`` to the page cache: microseconds, and a
crash of the process after it loses nothing), and only their fsync goes to
the thread, at most once a second (``memory.SYNC_INTERVAL_S``); a rewrite
goes a megabyte at a time. The thread takes a job from a ``SimpleQueue``
(C), makes its calls, and answers through ``call_soon_threadsafe``.

The thread ends when it has been idle ``IDLE_S`` and is started again by
the next job, so a store that is dropped without ``close`` leaves no thread
behind for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]

#: How long the thread waits for a job before it ends.
IDLE_S = 30.0
#: A file written in pieces is handed to ``os.write`` this many bytes at a time.
WRITE_BYTES = 1 << 20


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class FileWriter:
    """One thread that runs blocking file jobs in order, for one store."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``function(*args)`` in the thread, after the jobs before it; a future
        of the running loop for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            # (the thread cannot end before the job is in: it ends under the lock)
            if not self._running:
                # A thread that cannot start raises here, and the job is not
                # taken; the next job tries again.
                threading.Thread(target=self._work, name=self.name, daemon=True).start()
                self._running = True
            self._jobs.put((loop, future, function, args))
        return future

    def _work(self) -> None:
        get = self._jobs.get
        while True:
            try:
                loop, future, function, args = get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._running = False
                        return
                continue
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the awaiting coroutine
                outcome: tuple[Any, BaseException | None] = (None, exc)
            else:
                outcome = (result, None)
            # (a loop closed since: no one waits for this any more)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, *outcome)
            # Nothing of this job kept alive while the thread waits.
            del loop, future, function, args, outcome


class Journal:
    """The recovery file's journal, held open between appends. Appends are
    written from the loop's thread (a ``write`` to the page cache: a crash of
    the process after it loses nothing of them) and made durable (fsync)
    later, in the writer thread, through ``sync_job``. A journal removed or
    replaced by hand while it is open is not seen: appends go to the open
    file until the next rewrite of the recovery file starts a new journal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        # A new journal was started since the last ``sync_job``: its folder
        # entry is fsynced with it.
        self._new = False

    def __del__(self) -> None:
        self.close()  # a store dropped without ``close``

    def append(self, data: bytes, new: bool) -> int:
        """Write ``data`` at the end of the journal, a new one when ``new``;
        the bytes written. Not durable until a ``sync_job`` has run. A
        failed write leaves the journal open, so what was written before it
        can still be fsynced (``O_APPEND``: the next write goes at the end)."""
        if not data:
            return 0
        fd = self._fd
        if new or fd is None:
            self.close()
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if new else 0)
            fd = self._fd = os.open(self.path, flags, 0o666)
            self._new = self._new or new
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return len(data)

    def sync_job(self) -> SyncJob | None:
        """What makes every append so far durable, to run in any thread: an
        fsync of a duplicate of the journal's descriptor (so the journal may
        be closed or started anew meanwhile), and of its folder when a new
        journal was started since the last one; None when it is not open.
        OSError when the descriptor cannot be duplicated."""
        if self._fd is None:
            return None
        job = SyncJob(os.dup(self._fd), self.path.parent if self._new else None)
        self._new = False
        return job

    def sync(self) -> None:
        """Make every append so far durable, here and now."""
        job = self.sync_job()
        if job is not None:
            job()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class SyncJob:
    """An fsync of a journal (``Journal.sync_job``), owning its descriptor:
    called once, or discarded when it cannot be handed to a thread."""

    def __init__(self, fd: int, folder: Path | None) -> None:
        self.fd = fd
        self.folder = folder

    def __call__(self) -> None:
        try:
            os.fsync(self.fd)
        finally:
            self.discard()
        if self.folder is not None:
            fsync_folder(self.folder)

    def discard(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def fsync_folder(folder: Path) -> None:
    """fsync ``folder``, so that a file created or renamed in it survives a
    power cut; nothing where a folder cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the rename itself is atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """A file replaced atomically, written in pieces (from the writer
    thread): the pieces go to a temporary file beside it, which is fsynced
    and renamed over it, and the folder is fsynced, so a crash at any moment
    leaves the old file or the new one (``recovery.write_atomically`` for a
    file written in one go)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Unique per write: a write still running at stop must not share it.
        self.temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        self.size = 0
        self._fd: int | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)

    def write(self, data: bytes) -> None:
        if self._fd is None:
            raise OSError(f"{self.temp} is not open")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self.size += len(data)

    def commit(self) -> int:
        """fsync, close and rename over the file; the bytes written."""
        if self._fd is None:
            raise OSError(f"{self.temp} is not open")
        os.fsync(self._fd)
        self._close()
        os.replace(self.temp, self.path)
        fsync_folder(self.path.parent)
        return self.size

    def discard(self) -> None:
        """Close and remove the temporary file (the file is untouched)."""
        try:
            self._close()
            self.temp.unlink(missing_ok=True)
        except OSError:
            pass

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
