"""The event loop choice: uvloop when installed, never required."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util

import pytest

from centrex.transport import best_loop_factory, install_best_event_loop, loop_factory


def test_install_best_event_loop_names_the_loop_it_chose() -> None:
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    try:
        assert install_best_event_loop() == expected
    finally:
        asyncio.set_event_loop_policy(None)


def test_best_loop_factory_makes_a_working_loop() -> None:
    with asyncio.Runner(loop_factory=best_loop_factory()) as runner:
        assert runner.run(asyncio.sleep(0, result=42)) == 42


def test_event_loop_setting_asyncio_gives_the_standard_loop() -> None:
    factory, name = loop_factory("asyncio")
    assert name == "asyncio"
    with asyncio.Runner(loop_factory=factory) as runner:
        loop = runner.get_loop()
        assert type(loop).__module__.startswith("asyncio")


def test_event_loop_setting_auto_takes_uvloop_when_installed() -> None:
    factory, name = loop_factory("auto")
    assert name == ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    with asyncio.Runner(loop_factory=factory) as runner:
        assert type(runner.get_loop()).__module__.split(".")[0] == name
        assert runner.run(asyncio.sleep(0, result=7)) == 7


def test_event_loop_uvloop_without_uvloop_falls_back_to_asyncio(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_import = importlib.import_module

    def no_uvloop(name: str, package: str | None = None) -> object:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_uvloop)
    factory, name = loop_factory("uvloop")
    assert (factory, name) == (asyncio.new_event_loop, "asyncio")
    assert "uvloop is not installed" in caplog.text
