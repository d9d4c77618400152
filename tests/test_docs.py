"""The documentation says what the code does."""

from __future__ import annotations

from pathlib import Path

from centrex.config import render_default_config

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_configuration_page_shows_the_current_defaults() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert render_default_config() in page, "run `centrex config init` and paste it into the page"
