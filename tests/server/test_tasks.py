"""The server's own tasks (``Server._spawn``): a failure is logged and the
task forgotten; a stop leaves none behind, not even one that never ran.

A request's coroutine (``Server._start``) runs at once up to its first wait,
and a task carries it on from there: what it waits on reaches it, a failure
before or after the wait is logged, and a stop cancels it where it waits."""

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


def test_a_request_runs_at_once_and_a_task_carries_it_past_a_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    steps: list[object] = []

    async def handle(future: asyncio.Future[str]) -> None:
        steps.append("before")
        steps.append(await future)
        await asyncio.sleep(0)
        steps.append("after")
        raise ValueError("failed after the wait")

    async def fails_at_once() -> None:
        raise ValueError("failed at once")

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            coroutine = handle(future)
            server._start(coroutine)
            assert steps == ["before"]  # ran here, up to the wait
            assert coroutine in server._tasks
            future.set_result("the answer")
            for _ in range(5):
                await asyncio.sleep(0)
            assert steps == ["before", "the answer", "after"]
            assert coroutine not in server._tasks
            quick = fails_at_once()
            server._start(quick)
            assert quick not in server._tasks
            assert inspect.getcoroutinestate(quick) == inspect.CORO_CLOSED

    with caplog.at_level(logging.ERROR, logger="centrex.server"):
        run(scenario())
    failed = [
        str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.getMessage() == "task failed"
    ]
    assert failed == ["failed after the wait", "failed at once"]


def test_stop_cancels_a_request_where_it_waits(tmp_path: Path) -> None:
    outcome: list[str] = []

    async def handle() -> None:
        try:
            await asyncio.get_running_loop().create_future()  # never done
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    async def scenario() -> None:
        async with running_server(tmp_path) as server:
            coroutine = handle()
            server._start(coroutine)
            await asyncio.sleep(0)
        assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
        assert server._tasks == {}

    run(scenario())
    assert outcome == ["cancelled"]
