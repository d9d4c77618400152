"""Settings that several workers cannot serve are refused at start, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from centrex.config import Settings, load_settings
from centrex.server import NotSupportedError, refuse_what_is_not_built


def _settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "centrex.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(str(path))


def test_several_workers_need_fixed_ports(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, '[server]\nworkers = 2\n[network]\nlisten = ["udp:127.0.0.1:0"]\n'
    )
    with pytest.raises(NotSupportedError, match=r"network.listen: udp:127.0.0.1:0: .*fixed one"):
        refuse_what_is_not_built(settings)


def test_several_workers_need_the_memory_store(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        '[server]\nworkers = 2\n[registrar]\nstore = "database"\n'
        '[registrar.database]\nurl = "sqlite+aiosqlite:///x.db"\n',
    )
    with pytest.raises(
        NotSupportedError, match=r'server.workers = 2 with registrar.store = "database"'
    ):
        refuse_what_is_not_built(settings)


def test_several_workers_on_fixed_ports_with_the_memory_store_are_served(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, '[server]\nworkers = 2\n[network]\nlisten = ["udp:127.0.0.1:5060"]\n'
    )
    refuse_what_is_not_built(settings)
