"""Server._start: a request's coroutine runs at once; one that waits goes on
in a task exactly as if a task had run it from the start."""

from __future__ import annotations

import asyncio

import pytest

from centrex.server import _Continue


def test_a_coroutine_that_waits_goes_on_where_it_stopped() -> None:
    asyncio.run(_a_coroutine_that_waits_goes_on_where_it_stopped())


async def _a_coroutine_that_waits_goes_on_where_it_stopped() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[str] = loop.create_future()
    second: asyncio.Future[str] = loop.create_future()
    seen: list[str] = []

    async def handler() -> str:
        seen.append("start")
        seen.append(await first)
        await asyncio.sleep(0)  # a bare turn of the loop
        seen.append(await second)
        return "done"

    coroutine = handler()
    waiting = coroutine.send(None)  # what Server._start does
    assert seen == ["start"]
    task = asyncio.ensure_future(_Continue(coroutine, waiting).run())
    loop.call_soon(first.set_result, "one")
    loop.call_later(0.01, second.set_result, "two")
    assert await asyncio.wait_for(task, 2) == "done"
    assert seen == ["start", "one", "two"]


def test_an_exception_after_the_wait_reaches_the_task() -> None:
    asyncio.run(_an_exception_after_the_wait_reaches_the_task())


async def _an_exception_after_the_wait_reaches_the_task() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()

    async def handler() -> None:
        await gate
        raise ValueError("refused")

    coroutine = handler()
    task = asyncio.ensure_future(_Continue(coroutine, coroutine.send(None)).run())
    gate.set_result(None)
    with pytest.raises(ValueError, match="refused"):
        await asyncio.wait_for(task, 2)


def test_cancelling_the_task_cancels_the_wait_inside() -> None:
    asyncio.run(_cancelling_the_task_cancels_the_wait_inside())


async def _cancelling_the_task_cancels_the_wait_inside() -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    cleaned: list[str] = []

    async def handler() -> None:
        try:
            await never
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise

    coroutine = handler()
    task = asyncio.ensure_future(_Continue(coroutine, coroutine.send(None)).run())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cancelled"]
    assert never.cancelled()
