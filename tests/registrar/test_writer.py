"""The recovery file's writer thread (``centrex.registrar.writer``)."""

from __future__ import annotations

import asyncio
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
