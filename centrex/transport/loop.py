"""The event loop: uvloop when it is installed, asyncio's own otherwise.

uvloop is an optional speed-up (DESIGN.md: "asyncio, with uvloop when
installed"); nothing depends on it, so it is looked up at run time.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable


def _uvloop_new_event_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def best_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory of the fastest available loop, for ``asyncio.Runner(loop_factory=...)``."""
    return _uvloop_new_event_loop() or asyncio.new_event_loop


def install_best_event_loop() -> str:
    """Make ``asyncio.run`` use uvloop when installed; return "uvloop" or "asyncio"."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
