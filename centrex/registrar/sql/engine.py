"""Async engines for the three supported databases, each set up the same way.

PostgreSQL (``postgresql+asyncpg://``) and MariaDB / MySQL
(``mysql+aiomysql://``) run at READ COMMITTED, so a
statement after a lock sees what the lock holder committed. SQLite
(``sqlite+aiosqlite:///file``) has no row locks: a writing transaction starts
with ``BEGIN IMMEDIATE``, which takes the database's write lock up front.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from centrex.registrar.sql.errors import DatabaseUrlError

#: The execution option that marks a connection about to write (SQLite: BEGIN IMMEDIATE).
WRITE = "centrex_write"

_DRIVERS = {
    "postgresql": {"asyncpg"},
    "mysql": {"aiomysql"},
    "mariadb": {"aiomysql"},
    "sqlite": {"aiosqlite"},
}


def parse_url(url: str | URL) -> URL:
    """``url`` parsed and checked for a supported async driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseUrlError(f"not a database URL: {url!s}: {exc}") from exc
    backend = parsed.get_backend_name()
    try:
        driver = parsed.get_driver_name()
    except Exception:  # (no "+driver": the default's lookup fails for a backend unknown)
        driver = ""
    if driver not in _DRIVERS.get(backend, set()):
        raise DatabaseUrlError(
            f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
            "expected postgresql+asyncpg://, mysql+aiomysql:// "
            "or sqlite+aiosqlite:///"
        )
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


#: How long opening a connection to the database may take.
CONNECT_TIMEOUT_S = 5.0
#: How long a REGISTER waits for a free pooled connection: with the connect
#: and statement times, its 503 must go out well before the phone's
#: transaction times out (Timer F, 32 s).
POOL_TIMEOUT_S = 2.0

#: Options of SQLAlchemy's asyncpg dialect that are not ``asyncpg.connect`` arguments.
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")


def asyncpg_arguments(url: URL) -> dict[str, Any]:
    """The ``asyncpg.connect`` / ``create_pool`` arguments for ``url`` (for the
    connections Centrex holds outside SQLAlchemy: LISTEN, the fast path),
    made by SQLAlchemy's asyncpg dialect, so they are those of the engine's
    connections: the query options too (``?ssl=require``,
    ``?host=/var/run/postgresql`` for a Unix socket, several ``host=``...)."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    _, arguments = dialect().create_connect_args(url)  # type: ignore[no-untyped-call]
    for name in _DIALECT_ONLY:
        arguments.pop(name, None)
    if "timeout" in arguments:
        arguments["timeout"] = float(arguments["timeout"])
    else:
        arguments["timeout"] = CONNECT_TIMEOUT_S
    return dict(arguments)


def make_engine(url: str | URL, *, pooled: bool = True, **options: Any) -> AsyncEngine:
    """An engine for ``url``; ``pooled=False`` opens a connection per use (checks, init)."""
    parsed = parse_url(url)
    kwargs: dict[str, Any] = dict(options)
    if not pooled:
        kwargs["poolclass"] = NullPool
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_async_engine(parsed, **kwargs)
        _sqlite_transactions(engine)
        return engine
    kwargs.setdefault("isolation_level", "READ COMMITTED")
    if pooled:
        # A connection the database dropped (restart, failover) is replaced, not used.
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_recycle", 1800)
        # A database that is gone must cost a REGISTER seconds, not a minute.
        kwargs.setdefault("pool_timeout", POOL_TIMEOUT_S)
        timeout = {"postgresql": "timeout"}.get(backend, "connect_timeout")
        kwargs.setdefault("connect_args", {}).setdefault(timeout, CONNECT_TIMEOUT_S)
    return create_async_engine(parsed, **kwargs)


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, emit BEGIN (the documented recipe)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
