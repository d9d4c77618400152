"""The shared location store: bindings in PostgreSQL, MariaDB / MySQL or SQLite.

Every write holds the AOR's row in ``centrex_aor`` first (PostgreSQL,
MariaDB: a row lock taken by an upsert or ``SELECT ... FOR UPDATE``; SQLite:
``BEGIN IMMEDIATE``, the database's write lock), then reads and changes that
AOR's bindings and commits before returning. So:

- ``update`` is atomic and serialized per AOR across every server sharing
  the database (RFC 3261 10.3 step 7), also for an AOR without bindings yet;
  the registrar's 200 goes out only after the commit;
- the purge locks the AORs it cleans with ``SKIP LOCKED``, so purges running
  on several servers at once never delete a row twice and never wait on each
  other, and re-reads the bindings under the lock, so a binding refreshed
  meanwhile is not deleted; an AOR skipped now is purged on the next round;
- writers that lock several AORs lock them in AOR order, and single-AOR
  writers lock one, so writers cannot deadlock.

A server only ever removes, on its own initiative, the connection bindings
it holds itself (``remove_connections`` with its own server id) and expired
bindings: starting a server never deletes another server's live bindings.
There is no in-memory cache yet: every lookup reads the database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from centrex.registrar.binding import Binding
from centrex.registrar.sql.engine import WRITE, make_engine, parse_url
from centrex.registrar.sql.schema import SchemaError, init_schema, schema_problem, schema_revision
from centrex.registrar.sql.tables import aor_table, binding_row, binding_table, row_binding
from centrex.registrar.store import AorRemoval, Changes, DecisionT, LocationStore

logger = logging.getLogger(__name__)

#: How many AORs one statement of a purge or connection cleanup locks at most.
LOCK_BATCH = 500

_b = binding_table.c
_a = aor_table.c


class SqlLocationStore(LocationStore):
    """Bindings in the database at ``url`` (``postgresql+asyncpg://``,
    ``mysql+aiomysql://`` / ``mysql+asyncmy://``, ``sqlite+aiosqlite:///file``).

    ``server_id`` names this server among those sharing the database.
    ``migrate`` lets ``open`` create or upgrade the schema (``centrex db
    init``); otherwise ``open`` raises ``SchemaError`` unless the schema is
    current. ``engine_options`` go to ``create_async_engine`` (pool size...).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        server_id: str,
        migrate: bool = False,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = parse_url(url)
        self.server_id = server_id
        self.migrate = migrate
        self.engine_options = dict(engine_options or {})
        self._engine: AsyncEngine | None = None

    # -- plumbing -------------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The open engine; RuntimeError before ``open`` or after ``close``."""
        if self._engine is None:
            raise RuntimeError("SqlLocationStore is not open")
        return self._engine

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed when the block ends
        normally and rolled back when it raises."""
        async with self.engine.connect() as connection:
            await connection.execution_options(**{WRITE: True})
            async with connection.begin():
                yield connection

    def _lock_aor(self, dialect: str, aor: str) -> Insert:
        """An upsert of ``aor``'s lock row: creates it, or locks it and bumps its version."""
        bump = {"version": _a.version + 1}
        if dialect == "postgresql":
            pg = postgresql_insert(aor_table).values(aor=aor, version=1)
            return pg.on_conflict_do_update(index_elements=[_a.aor], set_=bump)
        if dialect == "sqlite":
            lite = sqlite_insert(aor_table).values(aor=aor, version=1)
            return lite.on_conflict_do_update(index_elements=[_a.aor], set_=bump)
        # MySQL / MariaDB: ON DUPLICATE KEY UPDATE takes the exclusive lock at
        # once (INSERT IGNORE would take a shared one and deadlock on upgrade).
        return mysql_insert(aor_table).values(aor=aor, version=1).on_duplicate_key_update(**bump)

    # -- LocationStore ------------------------------------------------------------------

    async def open(self, now: float) -> None:
        if self._engine is not None:
            return
        if self.migrate:
            await init_schema(self.url)
        engine = make_engine(self.url, **self.engine_options)
        try:
            async with engine.connect() as connection:
                problem = schema_problem(await schema_revision(connection))
            if problem is not None:
                raise SchemaError(problem)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        # Only expired rows: another server's live bindings are never touched here.
        removals = await self.purge(now)
        logger.info(
            "location database %s open as server %s (%d expired bindings purged)",
            self.url.render_as_string(hide_password=True),
            self.server_id,
            sum(len(r.removed) for r in removals),
        )

    async def close(self, now: float) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def lookup(self, aor: str) -> list[Binding]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(binding_table).where(_b.aor == aor))
            return [row_binding(row) for row in rows.mappings()]

    async def update(
        self, aor: str, decide: Callable[[list[Binding]], DecisionT], now: float
    ) -> DecisionT:
        async with self.engine.connect() as connection:
            await connection.execution_options(**{WRITE: True})
            async with connection.begin() as transaction:
                await connection.execute(self._lock_aor(connection.dialect.name, aor))
                query = select(binding_table).where(_b.aor == aor).with_for_update()
                rows = await connection.execute(query)
                current = [row_binding(row) for row in rows.mappings()]
                result = decide(current)
                changes = result.changes
                if changes.empty:
                    # Nothing to write: do not count a version for it either.
                    await transaction.rollback()
                    return result
                await _apply(connection, aor, {b.id for b in current}, changes)
        return result

    async def remove_connections(
        self, server_id: str, connection_id: int | None, now: float
    ) -> list[AorRemoval]:
        condition = and_(
            _b.server_id == server_id, _b.connection_id.is_not(None), _b.transport != "udp"
        )
        if connection_id is not None:
            condition = and_(condition, _b.connection_id == connection_id)

        def held(b: Binding) -> bool:
            cid = b.source.connection_id
            return (
                b.server_id == server_id
                and cid is not None
                and b.source.connection_oriented
                and (connection_id is None or cid == connection_id)
            )

        return await self._remove(condition, held, skip_locked=False)

    async def purge(self, now: float) -> list[AorRemoval]:
        return await self._remove(
            _b.expires_at <= now, lambda b: b.expires_at <= now, skip_locked=True
        )

    async def bindings(self) -> list[Binding]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(binding_table).order_by(_b.aor, _b.id))
            return [row_binding(row) for row in rows.mappings()]

    async def maybe_flush(self, now: float) -> bool:
        return False  # every update is committed before it returns

    # -- removal across AORs ----------------------------------------------------------------

    async def _remove(
        self,
        condition: ColumnElement[bool],
        doomed: Callable[[Binding], bool],
        *,
        skip_locked: bool,
    ) -> list[AorRemoval]:
        """Delete the bindings matching ``condition`` (``doomed`` is the same
        test in Python), AOR by AOR under the AORs' locks, in one transaction."""
        async with self._writing() as connection:
            found = await connection.execute(
                select(_b.aor).where(condition).distinct().order_by(_b.aor)
            )
            candidates = list(found.scalars())
            removals: list[AorRemoval] = []
            for start in range(0, len(candidates), LOCK_BATCH):
                batch = candidates[start : start + LOCK_BATCH]
                removals += await _remove_batch(connection, batch, doomed, skip_locked)
            return removals


async def _remove_batch(
    connection: AsyncConnection,
    aors: Sequence[str],
    doomed: Callable[[Binding], bool],
    skip_locked: bool,
) -> list[AorRemoval]:
    lock = (
        select(_a.aor)
        .where(_a.aor.in_(aors))
        .order_by(_a.aor)
        .with_for_update(skip_locked=skip_locked)
    )
    locked = list((await connection.execute(lock)).scalars())
    if not locked:
        return []
    # Re-read under the lock: what was refreshed meanwhile is no longer doomed.
    rows = await connection.execute(
        select(binding_table).where(_b.aor.in_(locked)).order_by(_b.aor, _b.id)
    )
    by_aor: dict[str, list[Binding]] = {}
    for row in rows.mappings():
        binding = row_binding(row)
        by_aor.setdefault(binding.aor, []).append(binding)
    removals: list[AorRemoval] = []
    for aor, bindings in by_aor.items():
        removed = tuple(b for b in bindings if doomed(b))
        if not removed:
            continue
        remaining = tuple(b for b in bindings if not doomed(b))
        await connection.execute(
            delete(binding_table).where(_b.aor == aor, _b.id.in_([b.id for b in removed]))
        )
        await connection.execute(
            update(aor_table).where(_a.aor == aor).values(version=_a.version + 1)
        )
        removals.append(AorRemoval(aor, removed, remaining))
    return removals


async def _apply(
    connection: AsyncConnection, aor: str, existing: set[str], changes: Changes
) -> None:
    """Write ``changes`` to ``aor``'s rows (``existing``: the ids stored before)."""
    gone = set(changes.remove)
    if gone:
        await connection.execute(
            delete(binding_table).where(_b.aor == aor, _b.id.in_(sorted(gone)))
        )
    present = existing - gone
    new_rows = []
    for binding in changes.put:
        if binding.aor != aor:
            raise ValueError(f"binding {binding.id} of {binding.aor} put under {aor}")
        row = binding_row(binding)
        if binding.id in present:
            await connection.execute(
                update(binding_table).where(_b.aor == aor, _b.id == binding.id).values(row)
            )
        else:
            new_rows.append(row)
    if new_rows:
        await connection.execute(insert(binding_table), new_rows)
