"""The recovery file's writer thread (``centrex.registrar.writer``)."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from centrex.registrar import writer
from centrex.registrar.writer import AtomicFile, FileWriter, Journal


def _threads(name: str) -> int:
    return sum(thread.name == name for thread in threading.enumerate())


def test_jobs_run_in_order_and_an_error_reaches_the_caller() -> None:
    files = FileWriter("test-writer-order")
    done: list[int] = []

    def fail() -> None:
        raise OSError("disk full")

    async def run() -> list[int]:
        first = files.run(done.append, 1)
        second = files.run(done.append, 2)
        with pytest.raises(OSError, match="disk full"):
            await files.run(fail)
        await first
        await second
        return done

    assert asyncio.run(run()) == [1, 2]


def test_the_thread_ends_when_idle_and_the_next_job_starts_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer, "IDLE_S", 0.05)
    files = FileWriter("test-writer-idle")

    async def one() -> int:
        return await files.run(lambda: 7)

    assert asyncio.run(one()) == 7
    for _ in range(100):  # at most 2 s
        if _threads("test-writer-idle") == 0:
            break
        time.sleep(0.02)
    assert _threads("test-writer-idle") == 0
    assert asyncio.run(one()) == 7  # a new loop, a new thread


def test_a_journal_appends_and_a_new_one_starts_empty(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.json.journal")
    assert journal.append(b"head\n", new=True) == 5
    journal.append(b"one", new=False)
    journal.append(b"two", new=False)
    assert journal.path.read_bytes() == b"head\nonetwo"
    journal.append(b"next\n", new=True)
    journal.append(b"three", new=False)
    journal.close()
    assert journal.path.read_bytes() == b"next\nthree"
    journal.append(b"four", new=False)  # opened again, at its end
    journal.close()
    assert journal.path.read_bytes() == b"next\nthreefour"


def test_a_journal_sync_job_fsyncs_what_was_written_even_after_the_journal_moved_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "r.json.journal")
    synced: list[tuple[str, int]] = []  # (what, size) per fsync
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        info = os.fstat(fd)
        synced.append(("folder" if stat.S_ISDIR(info.st_mode) else "file", info.st_size))

    monkeypatch.setattr(os, "fsync", fsync)
    assert journal.sync_job() is None  # nothing open, nothing to make durable
    journal.append(b"head\n", new=True)
    journal.append(b"one", new=False)
    first = journal.sync_job()
    journal.append(b"two", new=False)
    second = journal.sync_job()
    journal.close()  # the jobs hold descriptors of their own
    assert first is not None and second is not None
    first()
    second()
    # a new journal's folder entry goes with its first fsync, and only then
    assert synced == [("file", 11), ("folder", synced[1][1]), ("file", 11)]
    assert os.listdir(tmp_path) == ["r.json.journal"]


def test_a_failed_journal_write_leaves_it_open_to_fsync_what_came_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "r.json.journal")
    journal.append(b"head\n", new=True)

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        journal.append(b"lost", new=False)
    monkeypatch.undo()
    job = journal.sync_job()
    assert job is not None
    job()
    journal.append(b"next", new=False)
    journal.close()
    assert journal.path.read_bytes() == b"head\nnext"


def test_an_atomic_file_replaces_the_old_one_only_when_committed(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(b"old")
    dropped = AtomicFile(path)
    dropped.open()
    dropped.write(b"half")
    dropped.discard()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    kept = AtomicFile(path)
    kept.open()
    kept.write(b"new ")
    kept.write(b"file")
    assert kept.commit() == 8
    assert path.read_bytes() == b"new file"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
