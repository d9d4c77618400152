"""Schema management and the connection test (``centrex db init`` / ``centrex db check``).

Alembic runs programmatically on a connection of the async engine
(``run_sync``); the migration scripts ship in ``centrex/registrar/migrations``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from centrex.registrar.binding import Binding
from centrex.registrar.sql.engine import make_engine, parse_url
from centrex.registrar.sql.instances import Instance, read_instances
from centrex.registrar.sql.tables import VERSION_TABLE

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

#: Seconds ``check_database`` waits for a connection before calling the server unreachable.
CHECK_TIMEOUT = 5.0


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the shipped migrations, bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def expected_revision() -> str:
    """The newest schema revision this version of centrex knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def known_revisions() -> set[str]:
    """Every schema revision this version of centrex knows."""
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _current(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


async def schema_revision(connection: AsyncConnection) -> str | None:
    """The schema revision recorded in the database (None: no schema)."""
    return await connection.run_sync(_current)


def schema_problem(revision: str | None) -> str | None:
    """What is wrong with a database at schema ``revision``, None when nothing."""
    expected = expected_revision()
    if revision == expected:
        return None
    if revision is None:
        return "schema missing: the location tables do not exist (run `centrex db init`)"
    if revision in known_revisions():
        return (
            f"schema older than this centrex: at revision {revision}, "
            f"{expected} needed (run `centrex db init` to upgrade)"
        )
    return (
        f"schema newer than this centrex: revision {revision} is unknown "
        f"(this centrex expects {expected}; upgrade centrex)"
    )


async def init_schema(url: str | URL) -> str:
    """Create the location tables, or upgrade them to the newest revision; the revision."""

    def upgrade(connection: Connection) -> str | None:
        command.upgrade(alembic_config(connection), "head")
        return _current(connection)

    engine = make_engine(url, pooled=False)
    try:
        async with engine.begin() as connection:
            revision = await connection.run_sync(upgrade)
    finally:
        await engine.dispose()
    assert revision is not None
    return revision


async def read_bindings(url: str | URL, now: float) -> list[Binding]:
    """The live bindings stored at ``url`` (``centrex registrations``)."""
    from sqlalchemy import select

    from centrex.registrar.sql.tables import binding_table, row_binding

    parsed = parse_url(url)
    # (connecting would create an empty file where a path was mistyped)
    missing = _missing_sqlite_file(parsed)
    if missing is not None:
        raise FileNotFoundError(missing)
    engine = make_engine(parsed, pooled=False)
    try:
        async with engine.connect() as connection:
            query = select(binding_table).where(binding_table.c.expires_at > now)
            rows = await connection.execute(query)
            return [row_binding(row) for row in rows.mappings()]
    finally:
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class DbCheck:
    """What ``centrex db check`` reports. ``problem`` says plainly what is wrong."""

    ok: bool
    server_version: str | None
    schema_revision: str | None
    expected_revision: str
    round_trip_ms: float | None
    problem: str | None
    #: The instances sharing the database (when the schema is current).
    instances: tuple[Instance, ...] = ()


async def server_version(connection: AsyncConnection) -> str:
    """The database server's name and version, e.g. ``PostgreSQL 15.2``."""
    backend = connection.dialect.name
    if backend == "sqlite":
        version = (await connection.execute(text("SELECT sqlite_version()"))).scalar_one()
        return f"SQLite {version}"
    if backend == "postgresql":
        version = (await connection.execute(text("SHOW server_version"))).scalar_one()
        return f"PostgreSQL {version}"
    version = str((await connection.execute(text("SELECT VERSION()"))).scalar_one())
    return f"MariaDB {version}" if "mariadb" in version.lower() else f"MySQL {version}"


async def check_database(url: str | URL, *, timeout: float = CHECK_TIMEOUT) -> DbCheck:
    """Connect to ``url`` and report the server, the schema and the round-trip time.

    Never raises for a database problem: ``problem`` names it (unreachable,
    bad credentials, database missing, schema missing / older / newer).
    """
    expected = expected_revision()

    def failed(problem: str, version: str | None = None) -> DbCheck:
        return DbCheck(False, version, None, expected, None, problem)

    try:
        parsed = parse_url(url)
    except ValueError as exc:
        return failed(str(exc))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        missing = _missing_sqlite_file(parsed)
        if missing is not None:
            return failed(f"database missing: {missing}")
        connect_args: dict[str, float] = {}
    elif backend == "postgresql":
        connect_args = {"timeout": timeout}
    else:
        connect_args = {"connect_timeout": timeout}
    engine = make_engine(parsed, pooled=False, connect_args=connect_args)
    try:
        try:
            async with asyncio.timeout(timeout * 2):
                connection = await engine.connect()
        except Exception as exc:
            return failed(describe_connect_failure(exc, parsed))
        try:
            version = await server_version(connection)
            trips = []
            for _ in range(3):
                start = time.perf_counter()
                await connection.execute(text("SELECT 1"))
                trips.append((time.perf_counter() - start) * 1000)
            revision = await schema_revision(connection)
            instances: tuple[Instance, ...] = ()
            if schema_problem(revision) is None:
                found = await read_instances(connection)
                instances = tuple(found[name] for name in sorted(found))
        except Exception as exc:
            return failed(f"query failed: {_message(exc)}")
        finally:
            await connection.close()
    finally:
        await engine.dispose()
    problem = schema_problem(revision)
    return DbCheck(
        problem is None, version, revision, expected, round(min(trips), 3), problem, instances
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([getattr(current, "orig", None), current.__cause__, current.__context__])


def _missing_sqlite_file(url: URL) -> str | None:
    """For a SQLite ``url`` whose file does not exist, the sentence saying so."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if Path(database).exists():
        return None
    return f"{database} does not exist (run `centrex db init`)"


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__


# MySQL / MariaDB client and server error codes (aiomysql's).
_MYSQL_CREDENTIALS = {1044, 1045, 1698}
_MYSQL_NO_DATABASE = {1049}
_MYSQL_UNREACHABLE = {2002, 2003, 2006, 2013}
_MYSQL_HOST_UNKNOWN = {2005}


def describe_connect_failure(exc: BaseException, url: URL) -> str:
    """A plain sentence for why connecting to ``url`` failed."""
    where = f"{url.host or 'localhost'}:{url.port or 'default port'}"
    database = url.database or ""
    causes = list(_chain(exc))
    # The socket-level cause, when there is one, says it best.
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return f"unreachable: host {url.host!r} unknown ({cause.strerror or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return f"unreachable: connection refused at {where} (is the server running?)"
        if isinstance(cause, TimeoutError):
            return f"unreachable: no answer from {where}"
    for cause in causes:
        name = type(cause).__name__
        code = cause.args[0] if cause.args and isinstance(cause.args[0], int) else None
        if code in _MYSQL_HOST_UNKNOWN:
            return f"unreachable: host {url.host!r} unknown"
        if code in _MYSQL_UNREACHABLE:
            return f"unreachable: cannot connect to {where} (refused, unknown host or no route)"
        if name in {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"} or (
            code in _MYSQL_CREDENTIALS
        ):
            return f"bad credentials for user {url.username!r}: {_message(cause)}"
        if name == "InvalidCatalogNameError" or code in _MYSQL_NO_DATABASE:
            return f"database missing: {database!r} does not exist on {where}"
        if isinstance(cause, OSError) and cause.errno is not None:
            return f"unreachable: {where}: {_message(cause)}"
    return f"cannot connect to {where}: {_message(exc)}"
