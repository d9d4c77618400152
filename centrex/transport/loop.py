"""The event loop: uvloop when it is installed, asyncio's own otherwise.

uvloop is a dependency of Centrex (DESIGN.md: "asyncio, with uvloop when
installed") on the platforms it supports, but nothing depends on it: it is
looked up at run time, and ``[server] event_loop = "asyncio"`` chooses the
standard loop. On the server's hot path uvloop takes 5-10% off the CPU time
of a REGISTER and of a call (docs/benchmarks.md, "Server hot path").
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _uvloop_new_event_loop() -> LoopFactory | None:
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def best_loop_factory() -> LoopFactory:
    """A factory of the fastest available loop, for ``asyncio.Runner(loop_factory=...)``."""
    return _uvloop_new_event_loop() or asyncio.new_event_loop


def loop_factory(choice: str) -> tuple[LoopFactory, str]:
    """The factory for ``[server] event_loop`` and the name of the loop it makes.

    "auto" is uvloop when installed, else asyncio; "uvloop" falls back to
    asyncio with a warning when uvloop is not installed.
    """
    if choice != "asyncio":
        factory = _uvloop_new_event_loop()
        if factory is not None:
            return factory, "uvloop"
        if choice == "uvloop":
            logger.warning('server.event_loop = "uvloop": uvloop is not installed; using asyncio')
    return asyncio.new_event_loop, "asyncio"


def install_best_event_loop() -> str:
    """Make ``asyncio.run`` use uvloop when installed; return "uvloop" or "asyncio"."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
