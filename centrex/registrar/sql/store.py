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

Lookups never touch the database: they read a ``BindingCache`` holding every
binding, loaded at ``open``. This instance's own changes enter it when they
commit; the other instances' are found by a watcher that, every
``staleness_s`` seconds, reads the AORs others changed recently
(``centrex_aor.changed_at``, with a margin for clock differences and slow
commits) and reloads those whose version moved. On PostgreSQL a trigger also
NOTIFYs every change in the changing transaction, so the watcher reloads the
AOR at once. The same watcher writes this instance's heartbeat in
``centrex_instance``, reads the other instances' addresses, and notices when
the database is lost (logged once) and back (logged once, then everything is
read again, as the database now holds it: restored from a dump, or created
again, it replaces what the cache held); while it is lost, lookups keep answering from the cache and
updates fail (the registrar answers 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from centrex.registrar.binding import Binding, live_bindings
from centrex.registrar.sql.cache import BindingCache
from centrex.registrar.sql.engine import WRITE, asyncpg_arguments, make_engine, parse_url
from centrex.registrar.sql.errors import (
    DatabaseUnavailableError,
    DuplicateInstanceError,
    SchemaError,
)
from centrex.registrar.sql.fast_pg import FastPath
from centrex.registrar.sql.instances import (
    Instance,
    clear_heartbeat,
    read_instance,
    read_instances,
    routing_key,
    upsert,
    write_heartbeat,
)
from centrex.registrar.sql.schema import (
    describe_connect_failure,
    init_schema,
    schema_problem,
    schema_revision,
)
from centrex.registrar.sql.tables import aor_table, binding_row, binding_table, row_binding
from centrex.registrar.store import (
    AorRemoval,
    Changes,
    DecisionT,
    LocationStore,
    StoreDataError,
    apply_changes,
    error_line,
)

logger = logging.getLogger(__name__)

#: How many AORs one statement of a purge, cleanup or reload names at most.
LOCK_BATCH = 500
#: How far back a poll looks before the previous one started: covers commits
#: that took long and instance clocks that differ (keep them in sync with NTP).
CLOCK_MARGIN = 10.0
#: How long after another instance's binding expired (by this instance's
#: clock) the purge here removes it: instance clocks may differ by this much.
PURGE_GRACE_S = 30.0
#: How long ``close`` waits for the watcher's round under way, twice at most.
ROUND_END_WAIT_S = 2.0
#: How often everything is read again anyway.
FULL_RELOAD_S = 300.0
#: How often this instance writes its heartbeat, at most.
HEARTBEAT_S = 1.0
#: A heartbeat of this instance's id written less than this long ago (by this
#: clock) may be another running instance's: it is watched before starting...
DUPLICATE_RECENT_S = 300.0
#: ...for this long (the heartbeat moves about every HEARTBEAT_S).
DUPLICATE_WATCH_S = 2.5 * HEARTBEAT_S
#: The longest a round of the watcher may take before the database counts as
#: lost (a database that hangs, rather than refusing, answers nothing at all)...
TICK_TIMEOUT_S = 3.0
#: ...and a round that reads every binding again (300 s, after an outage).
FULL_TICK_TIMEOUT_S = 60.0
#: The PostgreSQL channel the trigger of migration 0002 notifies.
CHANNEL = "centrex_location"
#: Connections of the PostgreSQL single-statement write path.
FAST_POOL_SIZE = 10

_b = binding_table.c
_a = aor_table.c


class SqlLocationStore(LocationStore):
    """Bindings in the database at ``url`` (``postgresql+asyncpg://``,
    ``mysql+aiomysql://``, ``sqlite+aiosqlite:///file``).

    ``server_id`` names this server among those sharing the database, and
    ``address`` is the SIP URI they reach it at. ``migrate`` lets ``open``
    create or upgrade the schema (``centrex db init``); otherwise ``open``
    raises ``SchemaError`` unless the schema is current. ``staleness_s``
    bounds how long the cache may miss another instance's change.
    ``engine_options`` go to ``create_async_engine`` (pool size...).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        server_id: str,
        migrate: bool = False,
        engine_options: dict[str, Any] | None = None,
        staleness_s: float = 1.0,
        address: str = "",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = parse_url(url)
        self.server_id = server_id
        self.migrate = migrate
        self.engine_options = dict(engine_options or {})
        self.staleness_s = staleness_s
        self.address = address
        self.cache = BindingCache()
        #: The instances sharing the database, by server id (this one included).
        self.instances: dict[str, Instance] = {}
        #: The shared key instances sign routing tokens with (read at ``open``).
        self.routing_key = b""
        self._clock = clock
        self._monotonic = monotonic
        self._engine: AsyncEngine | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._dirty: set[str] = set()
        self._listener: Any = None
        self._since = 0.0
        self._last_poll = 0.0
        self._last_full = 0.0
        self._last_heartbeat = 0.0
        self._instances_read_at = 0.0
        # A watcher round that did not end in time and is left to end alone.
        self._stuck: asyncio.Future[None] | None = None
        #: The watcher's round under way (``_tick``), which ``close`` lets end.
        self._round_task: asyncio.Future[None] | None = None
        self._lost_at: float | None = None
        self._fast: FastPath | None = None
        #: Writes done by the single-statement path / fallen back to the locking one.
        self.fast_writes = 0
        self.fast_misses = 0

    # -- plumbing -------------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The open engine; RuntimeError before ``open`` or after ``close``."""
        if self._engine is None:
            raise RuntimeError("SqlLocationStore is not open")
        return self._engine

    @property
    def available(self) -> bool:
        """False from the moment the database is found lost until it is back."""
        return self._lost_at is None

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
        stamp = {"changed_at": self._clock(), "changed_by": self.server_id}
        row = {"aor": aor, "version": 1, **stamp}
        return upsert(dialect, aor_table, "aor", row, version=_a.version + 1, **stamp)

    # -- LocationStore ------------------------------------------------------------------

    async def open(self, now: float) -> None:
        if self._engine is not None:
            return
        engine = make_engine(self.url, **self.engine_options)
        try:
            try:
                if self.migrate:
                    await init_schema(self.url)
                async with engine.connect() as connection:
                    problem = schema_problem(await schema_revision(connection))
            except (OSError, DBAPIError) as exc:
                # Said as `centrex db check` says it, not as a traceback.
                raise DatabaseUnavailableError(
                    f"registrar.database.url: {describe_connect_failure(exc, self.url)} "
                    "(`centrex db check` tests the connection)"
                ) from exc
            if problem is not None:
                raise SchemaError(problem)
        except BaseException:
            await engine.dispose()
            raise
        try:
            await self._refuse_duplicate(engine)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        # Only expired rows: another server's live bindings are never touched here.
        removals = await self.purge(now)
        started = self._clock()
        await self._reload(None)
        self._last_full = self._last_poll = started
        self._since = started - CLOCK_MARGIN
        async with self._writing() as connection:
            self.routing_key = await routing_key(connection)
        await self._heartbeat(started, starting=True)
        await self._read_instances()
        self._wake = asyncio.Event()
        if self.url.get_backend_name() == "postgresql":
            self._fast = await FastPath.connect(self.url, FAST_POOL_SIZE)
        await self._listen()
        self._watcher = asyncio.create_task(self._watch())
        logger.info(
            "location database %s open as server %s (%d bindings, %d expired purged)",
            self.url.render_as_string(hide_password=True),
            self.server_id,
            len(self.cache.all()),
            sum(len(r.removed) for r in removals),
        )

    async def _refuse_duplicate(self, engine: AsyncEngine) -> None:
        """Raise ``DuplicateInstanceError`` if an instance with this id is running.

        Two instances with one id would each remove the other's connection
        bindings. A heartbeat that is not cleared (no clean stop) and recent
        is watched for ``DUPLICATE_WATCH_S``: if it moves, its instance runs.
        Watching, not comparing the heartbeat with this clock, tells a
        running duplicate from this instance's own earlier run that died."""
        async with engine.connect() as connection:
            before = await read_instance(connection, self.server_id)
        if before is None or before.heartbeat_at == 0:
            return
        if self._clock() - before.heartbeat_at > DUPLICATE_RECENT_S:
            return
        await asyncio.sleep(DUPLICATE_WATCH_S)
        async with engine.connect() as connection:
            after = await read_instance(connection, self.server_id)
        if after is None or after.heartbeat_at in (0, before.heartbeat_at):
            return
        raise DuplicateInstanceError(
            f"another instance is running with the id {self.server_id!r} "
            f"(reached at {after.address or 'an unknown address'}): its heartbeat in the "
            "database is still moving. Give each instance its own [server] instance_id "
            "(the default is the host name, so two instances on one machine need one each)"
        )

    async def close(self, now: float) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self._end_round()
        await self._unlisten()
        fast, self._fast = self._fast, None
        if fast is not None:
            await fast.close()
        engine = self._engine
        if engine is not None:
            # Tell the others at once that this instance's flows are gone.
            with contextlib.suppress(Exception):
                async with self._writing() as connection:
                    await clear_heartbeat(connection, self.server_id)
            self._engine = None
            await engine.dispose()

    async def _end_round(self) -> None:
        """Let the watcher's round under way end before the engine goes (it
        runs on when the watcher is cancelled): disposed under it, its
        connection stayed open in a transaction, holding its table locks
        (MariaDB: a DROP TABLE waited for them). It gets
        ``ROUND_END_WAIT_S`` to end by itself, then is cancelled (cancelling
        a query to a database that hangs may hang too: not waited for long)."""
        work, self._round_task = self._round_task, None
        if work is None or work.done():
            return
        done, _ = await asyncio.wait({work}, timeout=ROUND_END_WAIT_S)
        if not done:
            work.cancel()
            await asyncio.wait({work}, timeout=ROUND_END_WAIT_S)
        if work.done() and not work.cancelled():
            work.exception()  # (retrieved: a failed round is the watcher's to report)

    async def lookup(self, aor: str) -> list[Binding]:
        return list(self.cache.get(aor))

    def live(self, aor: str, now: float) -> tuple[Binding, ...]:
        return tuple(live_bindings(self.cache.get(aor), now))

    async def update(
        self, aor: str, decide: Callable[[list[Binding]], DecisionT], now: float
    ) -> DecisionT:
        if self._lost_at is not None:
            # Known lost: answer now (503) rather than wait for a connection;
            # the watcher finds out when it is back.
            raise DatabaseUnavailable("location database unavailable")
        if self._fast is not None:
            # PostgreSQL: decide on the cache, write in one version-checked statement.
            cached = self.cache.get(aor)
            version = self.cache.version(aor)
            result = decide(list(cached))
            changes = result.changes
            if changes.empty:
                return result
            if FastPath.usable(changes):
                try:
                    written = await self._fast.update(
                        aor, max(version, 0), changes, self._clock(), self.server_id
                    )
                except Exception as exc:
                    raise self._failed(exc) from exc
                if written is not None:
                    self.fast_writes += 1
                    self.cache.put(aor, written, apply_changes(cached, changes))
                    return result
                self.fast_misses += 1
        try:
            async with self.engine.connect() as connection:
                await connection.execution_options(**{WRITE: True})
                async with connection.begin() as transaction:
                    await connection.execute(self._lock_aor(connection.dialect.name, aor))
                    version, current = await _read_locked(connection, aor)
                    result = decide(current)
                    changes = result.changes
                    if changes.empty:
                        # Nothing to write: do not count a version for it either.
                        await transaction.rollback()
                        return result
                    await _apply(connection, aor, {b.id for b in current}, changes)
        except Exception as exc:
            raise self._failed(exc) from exc
        if not self.cache.put(aor, version, apply_changes(tuple(current), changes)):
            # Older than the version cached, though read under the AOR's lock:
            # the database went back in time while reachable (restored from a
            # dump), or another instance's later change was read meanwhile.
            # Either way reading it all again now puts the cache right.
            self._last_full = -math.inf
            self._suspect()
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
        """Remove this instance's bindings expired at ``now``, and the other
        instances' expired ``PURGE_GRACE_S`` before: their expiry was set by
        their clock, and one running ahead here must not delete them early."""
        own, grace = self.server_id, now - PURGE_GRACE_S
        return await self._remove(
            and_(_b.expires_at <= now, or_(_b.server_id == own, _b.expires_at <= grace)),
            lambda b: b.expires_at <= (now if b.server_id == own else grace),
            skip_locked=True,
        )

    async def bindings(self) -> list[Binding]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(binding_table).order_by(_b.aor, _b.id))
            return [row_binding(row) for row in rows.mappings()]

    async def maybe_flush(self, now: float) -> bool:
        return False  # every update is committed before it returns

    async def sync(self) -> None:
        """Read now what the other instances changed (instead of within ``staleness_s``)."""
        self._last_poll = self._last_heartbeat = 0.0
        await self._tick()

    # -- the other instances ----------------------------------------------------------

    def instance(self, server_id: str) -> Instance | None:
        """What ``server_id`` last wrote in ``centrex_instance`` (None: unknown)."""
        return self.instances.get(server_id)

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
        done: list[tuple[AorRemoval, int]] = []
        try:
            async with self._writing() as connection:
                found = await connection.execute(
                    select(_b.aor).where(condition).distinct().order_by(_b.aor)
                )
                candidates = list(found.scalars())
                for start in range(0, len(candidates), LOCK_BATCH):
                    batch = candidates[start : start + LOCK_BATCH]
                    done += await self._remove_batch(connection, batch, doomed, skip_locked)
        except Exception:
            self._suspect()
            raise
        for removal, version in done:
            self.cache.put(removal.aor, version, removal.remaining)
        return [removal for removal, _ in done]

    async def _remove_batch(
        self,
        connection: AsyncConnection,
        aors: Sequence[str],
        doomed: Callable[[Binding], bool],
        skip_locked: bool,
    ) -> list[tuple[AorRemoval, int]]:
        lock = (
            select(_a.aor, _a.version)
            .where(_a.aor.in_(aors))
            .order_by(_a.aor)
            .with_for_update(skip_locked=skip_locked)
        )
        locked = {aor: int(version) for aor, version in (await connection.execute(lock)).all()}
        if not locked:
            return []
        # Re-read under the lock: what was refreshed meanwhile is no longer doomed.
        rows = await connection.execute(
            select(binding_table).where(_b.aor.in_(sorted(locked))).order_by(_b.aor, _b.id)
        )
        by_aor: dict[str, list[Binding]] = {}
        for row in rows.mappings():
            binding = row_binding(row)
            by_aor.setdefault(binding.aor, []).append(binding)
        removals: list[tuple[AorRemoval, int]] = []
        for aor, bindings in by_aor.items():
            removed = tuple(b for b in bindings if doomed(b))
            if not removed:
                continue
            remaining = tuple(b for b in bindings if not doomed(b))
            await connection.execute(
                delete(binding_table).where(_b.aor == aor, _b.id.in_([b.id for b in removed]))
            )
            await connection.execute(
                update(aor_table)
                .where(_a.aor == aor)
                .values(
                    version=_a.version + 1,
                    changed_at=self._clock(),
                    changed_by=self.server_id,
                )
            )
            removals.append((AorRemoval(aor, removed, remaining), locked[aor] + 1))
        return removals

    # -- the watcher: other instances' changes, heartbeat, outage -------------------------

    def _failed(self, exc: Exception) -> Exception:
        """What an update that raised ``exc`` raises: ``StoreDataError`` when
        the database refused the change's data (it is up: nothing to suspect),
        else ``exc``, after waking the watcher to find out whether the
        database is lost."""
        if _refused_data(exc):
            return StoreDataError(f"location database refused the change: {error_line(exc)}")
        self._suspect()
        return exc

    def _suspect(self) -> None:
        """A statement failed: let the watcher find out now whether the database is lost."""
        if self._wake is not None:
            self._wake.set()

    async def _watch(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                # At least every HEARTBEAT_S, whatever staleness_s is: the others
                # judge this instance by its heartbeat.
                async with asyncio.timeout(min(self.staleness_s, HEARTBEAT_S)):
                    await self._wake.wait()
            self._wake.clear()
            await self._tick()

    async def _tick(self) -> None:
        """One round of the watcher; never raises (a failure, or no answer
        within ``TICK_TIMEOUT_S``, means the database is lost)."""
        started = self._clock()
        if self._stuck is not None:
            if not self._stuck.done():
                return  # (the round that hung still has not let go: still lost)
            self._stuck = None
        full = self._lost_at is not None or started - self._last_full >= FULL_RELOAD_S
        limit = FULL_TICK_TIMEOUT_S if full else TICK_TIMEOUT_S
        # In a task of its own, waited for at most ``limit`` and then left to
        # end by itself: a cancelled query to a database that hangs may hang
        # in its own clean-up (asyncpg asks the server to cancel it), and an
        # asyncio.timeout around it would wait for that too.
        work = self._round_task = asyncio.ensure_future(self._round(started, full))
        try:
            done, _ = await asyncio.wait({work}, timeout=limit)
            if not done:
                work.cancel()
                work.add_done_callback(_retrieved)
                self._stuck = work
                raise TimeoutError
            work.result()
        except Exception as exc:
            if self._lost_at is None:
                self._lost_at = started
                reason = (
                    f"no answer within {limit:.0f} s"
                    if isinstance(exc, TimeoutError)
                    else error_line(exc)
                )
                logger.error(
                    "location database lost: %s; calls route from the cache, "
                    "REGISTERs are answered 503 until it is back",
                    reason,
                )
            await self._unlisten()
            return
        if self._lost_at is not None:
            logger.warning(
                "location database back after %.1f s; bindings read again (%d)",
                started - self._lost_at,
                len(self.cache.all()),
            )
            self._lost_at = None

    async def _round(self, started: float, full: bool) -> None:
        """The work of one ``_tick``: a full or partial reload, the heartbeat."""
        if full:
            await self._reload(None)
            self._last_full = self._last_poll = started
            self._since = started - CLOCK_MARGIN
        elif started - self._last_poll >= self.staleness_s * 0.9:
            await self._poll()
            self._last_poll = started
            self._since = started - CLOCK_MARGIN
        elif self._dirty:
            dirty, self._dirty = self._dirty, set()
            await self._reload(dirty)
        if started - self._last_heartbeat >= HEARTBEAT_S:
            await self._heartbeat(started)
            await self._read_instances()
        if self._listener is None or self._listener.is_closed():
            await self._listen()

    async def _poll(self) -> None:
        """Reload the AORs the other instances changed since the last poll (with margin)."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(_a.aor, _a.version).where(
                    _a.changed_at >= self._since, _a.changed_by != self.server_id
                )
            )
            stale = {aor for aor, version in rows.all() if version > self.cache.version(aor)}
        stale |= self._dirty
        self._dirty = set()
        if stale:
            await self._reload(stale)

    async def _reload(self, aors: Iterable[str] | None) -> None:
        """Read ``aors`` (every AOR when None) into the cache: versions first."""
        async with self.engine.connect() as connection:
            if aors is None:
                self.cache.begin_full()
                versions = await connection.execute(select(_a.aor, _a.version))
                loaded = {aor: int(version) for aor, version in versions.all()}
                rows = await connection.execute(select(binding_table))
                await self._into_cache(connection, loaded, rows.mappings(), full=True)
                return
            wanted = sorted(aors)
            for start in range(0, len(wanted), LOCK_BATCH):
                batch = wanted[start : start + LOCK_BATCH]
                versions = await connection.execute(
                    select(_a.aor, _a.version).where(_a.aor.in_(batch))
                )
                loaded = {aor: int(version) for aor, version in versions.all()}
                rows = await connection.execute(select(binding_table).where(_b.aor.in_(batch)))
                await self._into_cache(connection, loaded, rows.mappings())

    async def _into_cache(
        self,
        connection: AsyncConnection,
        versions: dict[str, int],
        rows: Iterable[Any],
        *,
        full: bool = False,
    ) -> None:
        by_aor: dict[str, list[Binding]] = {}
        owners: set[str] = set()
        for row in rows:
            binding = row_binding(row)
            by_aor.setdefault(binding.aor, []).append(binding)
            owners.add(binding.server_id)
        if owners - self.instances.keys():
            # A binding held by an instance not known yet (it just started):
            # learn its address before a lookup can find the binding.
            await self._read_instances(connection)
        changed = (self.cache.replace if full else self.cache.load)(versions, by_aor)
        report = self.on_remote_change
        if report is not None:
            now = self._clock()
            for aor, before, after in changed:
                report(aor, before, after, now)

    async def _heartbeat(self, now: float, *, starting: bool = False) -> None:
        """Say this instance is alive (and, at start, where it is reached)."""
        async with self._writing() as connection:
            await write_heartbeat(connection, self.server_id, self.address, now, starting=starting)
        self._last_heartbeat = now

    async def _read_instances(self, connection: AsyncConnection | None = None) -> None:
        if connection is None:
            async with self.engine.connect() as own:
                found = await read_instances(own)
        else:
            found = await read_instances(connection)
        self.instances = self._heard(found)
        self._instances_read_at = self._monotonic()

    @property
    def instances_read_at(self) -> float:
        """When (``monotonic``) the instances' heartbeats were last read."""
        return self._instances_read_at

    def _heard(self, found: dict[str, Instance]) -> dict[str, Instance]:
        """``found`` with ``heard_at``: when this instance saw each heartbeat
        move (monotonic). At first sight, the only estimate there is: as old
        as the wall clocks say."""
        mono, wall = self._monotonic(), self._clock()
        heard = {}
        for server_id, instance in found.items():
            known = self.instances.get(server_id)
            if known is None:
                at = mono - max(0.0, wall - instance.heartbeat_at)
            elif known.heartbeat_at == instance.heartbeat_at:
                at = known.heard_at
            else:
                at = mono
            heard[server_id] = replace(instance, heard_at=at)
        return heard

    async def _listen(self) -> None:
        """PostgreSQL: LISTEN on a connection of its own (other databases: nothing)."""
        if self.url.get_backend_name() != "postgresql":
            return
        import asyncpg  # type: ignore[import-untyped]

        listener = await asyncpg.connect(**asyncpg_arguments(self.url))
        await listener.add_listener(CHANNEL, self._notified)
        self._listener = listener

    async def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                # At once: a close that says goodbye to a server that hangs
                # would wait for it.
                listener.terminate()

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        """A NOTIFY of the trigger: ``<changed_by> <version> <aor>``."""
        by, _, rest = payload.partition(" ")
        version, _, aor = rest.partition(" ")
        if by == self.server_id or not version.isdigit():
            return
        if int(version) > self.cache.version(aor):
            self._dirty.add(aor)
            if self._wake is not None:
                self._wake.set()


async def _read_locked(connection: AsyncConnection, aor: str) -> tuple[int, list[Binding]]:
    """Under ``aor``'s lock: its version and its bindings, in one statement."""
    query = (
        select(_a.version.label("aor_version"), binding_table)
        .select_from(aor_table.outerjoin(binding_table, _b.aor == _a.aor))
        .where(_a.aor == aor)
    )
    version = 0
    current: list[Binding] = []
    for row in (await connection.execute(query)).mappings():
        version = int(row["aor_version"])
        if row["id"] is not None:
            current.append(row_binding(row))
    return version, current


class DatabaseUnavailable(ConnectionError):
    """An update refused at once: the database is known to be lost."""


def _refused_data(exc: BaseException) -> bool:
    """True when ``exc`` says the database refused a statement's data (a
    value it cannot hold, a constraint, an impossible change), not that it
    failed or is gone."""
    orig = getattr(exc, "orig", None)
    for error in (exc, orig, getattr(orig, "__cause__", None)):
        if isinstance(error, DataError | IntegrityError | UnicodeError):
            return True
        # PostgreSQL (asyncpg): SQLSTATE classes 21 (cardinality violation),
        # 22 (data exception), 23 (integrity constraint violation).
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in ("21", "22", "23"):
            return True
    return False


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


def _retrieved(future: asyncio.Future[None]) -> None:
    """Take the outcome of a round left to end alone (no "never retrieved")."""
    if not future.cancelled():
        future.exception()
