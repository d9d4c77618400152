"""The settings of the Centrex server: model, loader and the generated file.

``load_settings(path)`` reads a TOML file into ``Settings`` (``None`` gives the
defaults) and raises ``ConfigError`` naming the file, the key and the fix;
``render_default_config()`` is the text of ``centrex config init``.
"""

from typing import TYPE_CHECKING, Any

from centrex.config.addresses import ListenAddress, Transport
from centrex.config.errors import ConfigError
from centrex.config.load import check_settings, load_settings, parse_settings, settings_warnings
from centrex.config.settings import (
    AdminSettings,
    LoggingSettings,
    NetworkSettings,
    RegistrarSettings,
    ResolvedPaths,
    ServerSettings,
    Settings,
    TimeoutSettings,
    User,
    host_name,
)

if TYPE_CHECKING:
    from centrex.config.template import render_default_config, render_settings


def __getattr__(name: str) -> Any:
    # The templates need tomlkit (3 MB), which a running server never uses.
    if name in ("render_default_config", "render_settings"):
        from centrex.config import template

        return getattr(template, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AdminSettings",
    "ConfigError",
    "ListenAddress",
    "LoggingSettings",
    "NetworkSettings",
    "RegistrarSettings",
    "ResolvedPaths",
    "ServerSettings",
    "Settings",
    "TimeoutSettings",
    "Transport",
    "User",
    "check_settings",
    "host_name",
    "load_settings",
    "parse_settings",
    "render_default_config",
    "render_settings",
    "settings_warnings",
]
