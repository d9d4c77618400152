"""The SQL location store (shared by many proxies) and its schema tools.

``SqlLocationStore`` implements ``centrex.registrar.store.LocationStore`` on
SQLAlchemy 2 Core (async); ``init_schema`` creates or upgrades the tables
(``centrex db init``); ``check_database`` is ``centrex db check``.

The names load on first use (PEP 562): a server on the memory store imports
this package for its errors and never pays for SQLAlchemy and Alembic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from centrex.registrar.sql.errors import (
    DatabaseUnavailableError,
    DatabaseUrlError,
    DuplicateInstanceError,
    SchemaError,
)

if TYPE_CHECKING:
    from centrex.registrar.sql.schema import (
        DbCheck,
        check_database,
        expected_revision,
        init_schema,
        read_bindings,
    )
    from centrex.registrar.sql.store import SqlLocationStore

_LAZY = {
    "DbCheck": "schema",
    "check_database": "schema",
    "expected_revision": "schema",
    "init_schema": "schema",
    "read_bindings": "schema",
    "SqlLocationStore": "store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DatabaseUnavailableError",
    "DatabaseUrlError",
    "DbCheck",
    "DuplicateInstanceError",
    "SchemaError",
    "SqlLocationStore",
    "check_database",
    "expected_revision",
    "init_schema",
    "read_bindings",
]
