"""The SQL location store (shared by many proxies) and its schema tools.

``SqlLocationStore`` implements ``centrex.registrar.store.LocationStore`` on
SQLAlchemy 2 Core (async); ``init_schema`` creates or upgrades the tables
(``centrex db init``); ``check_database`` is ``centrex db check``.
"""

from centrex.registrar.sql.engine import DatabaseUrlError
from centrex.registrar.sql.instances import DuplicateInstanceError
from centrex.registrar.sql.schema import (
    DbCheck,
    SchemaError,
    check_database,
    expected_revision,
    init_schema,
    read_bindings,
)
from centrex.registrar.sql.store import SqlLocationStore

__all__ = [
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
