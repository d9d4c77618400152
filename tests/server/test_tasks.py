"""The server's own tasks (``Server._spawn``): a failure is logged and the
task forgotten; a stop leaves none behind, not even one that never ran."""

from __future__ import annotations

import asyncio
import inspect
import logging
from pathlib import Path

import pytest

from .harness import running_server


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_a_failing_task_is_logged_and_forgotten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise ValueError("broken on purpose")

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            coroutine = boom()
            server._spawn(coroutine)
            assert coroutine in server._tasks
            for _ in range(3):
                await asyncio.sleep(0)
            assert coroutine not in server._tasks

    with caplog.at_level(logging.ERROR, logger="centrex.server"):
        run(scenario())
    failed = [r for r in caplog.records if r.getMessage() == "task failed"]
    assert len(failed) == 1
    assert failed[0].exc_info is not None and "broken on purpose" in str(failed[0].exc_info[1])


def test_stop_closes_a_task_that_never_ran(tmp_path: Path) -> None:
    ran = []

    async def later() -> None:
        ran.append(True)

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            coroutine = later()
            server._spawn(coroutine)  # the stop comes before its first turn
        assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
        assert server._tasks == {}

    run(scenario())
    assert ran == []
