"""The event loop choice: uvloop when installed, never required."""

from __future__ import annotations

import asyncio
import importlib.util

from centrex.transport import best_loop_factory, install_best_event_loop


def test_install_best_event_loop_names_the_loop_it_chose() -> None:
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    try:
        assert install_best_event_loop() == expected
    finally:
        asyncio.set_event_loop_policy(None)


def test_best_loop_factory_makes_a_working_loop() -> None:
    with asyncio.Runner(loop_factory=best_loop_factory()) as runner:
        assert runner.run(asyncio.sleep(0, result=42)) == 42
