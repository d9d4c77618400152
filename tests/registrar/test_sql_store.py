"""The SQL location store on SQLite, PostgreSQL and MariaDB, and the registrar on it.

The registrar scenarios run on every store, the memory store included, so the
SQL store must behave exactly like it. PostgreSQL and MariaDB are the servers
this machine (and CI) runs; when one is unreachable its tests are skipped with
the reason, unless ``CENTREX_TEST_STRICT=1``, which turns the skip into a
failure. Each test drops the location tables before and after itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text

from centrex.registrar.binding import Binding, Source
from centrex.registrar.events import AorEvent
from centrex.registrar.memory import MemoryLocationStore
from centrex.registrar.registrar import Registrar
from centrex.registrar.sql import (
    DuplicateInstanceError,
    SchemaError,
    SqlLocationStore,
    check_database,
    expected_revision,
    init_schema,
)
from centrex.registrar.sql.engine import asyncpg_arguments, make_engine
from centrex.registrar.sql.store import PURGE_GRACE_S, DatabaseUnavailable
from centrex.registrar.sql.tables import VERSION_TABLE, metadata
from centrex.registrar.store import Changes, LocationStore, StoreDataError
from centrex.sip.message import Response
from centrex.sip.parser import parse_message

from .helpers import T0, UDP, binding, make_registrar, register, reparse

AOR = "sip:alice@example.com"
BOB = "sip:bob@example.com"

SERVERS = {
    "postgresql": os.environ.get(
        "CENTREX_TEST_POSTGRESQL_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "CENTREX_TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test"
    ),
}
STRICT = os.environ.get("CENTREX_TEST_STRICT") == "1"


# -- databases -------------------------------------------------------------------------


async def drop_tables(url: str) -> None:
    engine = make_engine(url, pooled=False)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)
            await connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
    finally:
        await engine.dispose()


_reachable: dict[str, str | None] = {}


def _unreachable(name: str) -> str | None:
    """Why server ``name`` cannot be used (None: it can), checked once per run."""
    if name not in _reachable:
        check = asyncio.run(check_database(SERVERS[name], timeout=3))
        problem = check.problem
        _reachable[name] = None if check.server_version is not None else problem
    return _reachable[name]


def database_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'location.db'}"
    problem = _unreachable(kind)
    if problem is not None:
        reason = f"{kind} at {SERVERS[kind]} not usable: {problem}"
        if STRICT:
            pytest.fail(f"{reason} (CENTREX_TEST_STRICT=1)")
        pytest.skip(reason)
    return SERVERS[kind]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database without the location tables, dropped again afterwards."""
    url = database_url(request.param, tmp_path)
    asyncio.run(drop_tables(url))
    yield url
    asyncio.run(drop_tables(url))


@pytest.fixture
def db(empty_db: str) -> str:
    """The URL of a database with the current schema and no bindings."""
    asyncio.run(init_schema(empty_db))
    return empty_db


StoreFactory = Callable[[str], LocationStore]


@pytest.fixture(params=["memory", "sqlite", "postgresql", "mariadb"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Make stores (one per server id) that share one location table."""
    if request.param == "memory":
        shared = MemoryLocationStore(None)
        yield lambda server_id: shared
        return
    url = database_url(request.param, tmp_path)
    asyncio.run(drop_tables(url))
    asyncio.run(init_schema(url))
    yield lambda server_id: SqlLocationStore(url, server_id=server_id)
    asyncio.run(drop_tables(url))


def tcp(connection_id: int, port: int = 40000) -> Source:
    return Source("tcp", "198.51.100.7", port, "tcp:203.0.113.1:5060", connection_id)


async def started(stores: StoreFactory, server_id: str = "srv1", **settings: Any) -> Registrar:
    registrar = make_registrar(stores(server_id), server_id=server_id, **settings)
    ids = iter(range(1, 1_000_000))
    registrar._new_id = lambda: f"{server_id}-b{next(ids)}"  # unique across servers
    await registrar.start(T0)
    return registrar


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


async def send(
    registrar: Registrar, request: Any, now: float = T0, source: Source = UDP
) -> Response:
    return reparse(await registrar.handle(request, source, now))


# -- the registrar on every store -------------------------------------------------------


def test_register_stores_every_binding_field(stores: StoreFactory) -> None:
    async def scenario() -> None:
        registrar = await started(stores)
        contact = '<sip:alice@10.0.0.1;transport=tcp>;+sip.instance="<urn:uuid:1>";reg-id=1;q=0.5'
        extra = ["Path: <sip:edge.example.net;lr>", "Supported: path"]
        response = await send(registrar, register(contact, expires=600, extra=extra), T0, tcp(3))
        assert response.status == 200
        assert response.get_all("Contact") == [
            "<sip:alice@10.0.0.1;transport=tcp>;expires=600;q=0.5"
            ';+sip.instance="<urn:uuid:1>";reg-id=1'
        ]
        (stored,) = await registrar.store.bindings()
        assert stored.source == tcp(3)
        assert (stored.instance, stored.reg_id, stored.q) == ("<urn:uuid:1>", 1, 0.5)
        assert stored.path == ("<sip:edge.example.net;lr>",)
        assert (stored.user_agent, stored.server_id) == ("TestPhone/1.0", "srv1")
        assert (stored.expires_at, stored.created_at, stored.updated_at) == (T0 + 600, T0, T0)
        assert (stored.call_id, stored.cseq) == ("call-1@192.0.2.10", 1)
        await registrar.stop(T0)

    run(scenario)


def test_refresh_keeps_one_binding_with_its_id_and_new_expiry(stores: StoreFactory) -> None:
    async def scenario() -> None:
        registrar = await started(stores)
        await send(registrar, register(expires=600), T0)
        response = await send(registrar, register(expires=600, cseq=2), T0 + 100)
        assert response.get_all("Contact") == ["<sip:alice@192.0.2.10:5060>;expires=600"]
        (found,) = await registrar.lookup(AOR, T0 + 100)
        assert (found.id, found.cseq, found.expires_at, found.created_at) == (
            "srv1-b1",
            2,
            T0 + 700,
            T0,
        )
        await registrar.stop(T0)

    run(scenario)


def test_unregister_and_wildcard_remove_bindings(stores: StoreFactory) -> None:
    async def scenario() -> None:
        registrar = await started(stores)
        await send(registrar, register("<sip:alice@192.0.2.10>", call_id="a"))
        await send(registrar, register("<sip:alice@192.0.2.20>", call_id="b"))
        await send(registrar, register("<sip:alice@192.0.2.30>", call_id="c"))
        gone = await send(
            registrar, register("<sip:alice@192.0.2.10>;expires=0", call_id="a", cseq=2)
        )
        assert sorted(gone.get_all("Contact")) == [
            "<sip:alice@192.0.2.20>;expires=3600",
            "<sip:alice@192.0.2.30>;expires=3600",
        ]
        wildcard = await send(registrar, register("*", call_id="b", cseq=2, expires=0))
        assert (wildcard.status, wildcard.get_all("Contact")) == (200, [])
        assert await registrar.store.bindings() == []
        await registrar.stop(T0)

    run(scenario)


def test_out_of_order_cseq_is_refused_and_changes_nothing(stores: StoreFactory) -> None:
    async def scenario() -> None:
        registrar = await started(stores)
        await send(registrar, register(cseq=5, expires=600))
        stale = await send(registrar, register(cseq=4, expires=0), T0 + 1)
        assert stale.status == 500
        assert "CSeq" in stale.reason
        assert [b.cseq for b in await registrar.lookup(AOR, T0 + 1)] == [5]
        await registrar.stop(T0)

    run(scenario)


def test_max_contacts_rejects_or_evicts_the_oldest(stores: StoreFactory) -> None:
    async def scenario() -> None:
        strict = await started(stores, max_contacts=2, max_contacts_policy="reject")
        for n, at in ((1, T0), (2, T0 + 1)):
            await send(strict, register(f"<sip:alice@10.0.0.{n}>", call_id=f"c{n}"), at)
        over = await send(strict, register("<sip:alice@10.0.0.3>", call_id="c3"), T0 + 2)
        assert over.status == 403
        evicting = make_registrar(
            strict.store, max_contacts=2, max_contacts_policy="evict_oldest", server_id="srv1"
        )
        evicting._new_id = lambda: "b99"  # unique next to the first registrar's ids
        ok = await send(evicting, register("<sip:alice@10.0.0.3>", call_id="c3"), T0 + 2)
        assert ok.status == 200
        found = await evicting.lookup(AOR, T0 + 2)
        assert sorted(b.contact for b in found) == ["sip:alice@10.0.0.2", "sip:alice@10.0.0.3"]
        await strict.stop(T0)

    run(scenario)


def test_same_instance_and_reg_id_replaces_the_binding(stores: StoreFactory) -> None:
    async def scenario() -> None:
        registrar = await started(stores)
        device = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1'
        await send(registrar, register(f"<sip:alice@198.51.100.7:40001>;{device}", call_id="x"))
        await send(
            registrar, register(f"<sip:alice@198.51.100.7:41000>;{device}", call_id="y"), T0 + 5
        )
        (found,) = await registrar.lookup(AOR, T0 + 5)
        assert found.contact == "sip:alice@198.51.100.7:41000"
        assert len(await registrar.store.bindings()) == 1
        await registrar.stop(T0)

    run(scenario)


def test_expired_bindings_are_filtered_then_purged_with_an_event(stores: StoreFactory) -> None:
    async def scenario() -> None:
        registrar = await started(stores, min_expires=1)
        events: list[AorEvent] = []
        registrar.listeners.add(events.append)
        await send(registrar, register("<sip:alice@10.0.0.1>", call_id="a", expires=10))
        await send(registrar, register("<sip:alice@10.0.0.2>", call_id="b", expires=600))
        assert [b.contact for b in await registrar.lookup(AOR, T0 + 10)] == ["sip:alice@10.0.0.2"]
        assert await registrar.purge(T0 + 9) == 0
        assert await registrar.purge(T0 + 10) == 1
        assert len(await registrar.store.bindings()) == 1
        assert await registrar.purge(T0 + 600) == 1
        await registrar.listeners.drain()
        assert [(e.kind, e.reason) for e in events][-1] == ("unavailable", "purged")
        assert await registrar.store.bindings() == []
        await registrar.stop(T0)

    run(scenario)


def test_connection_close_removes_only_this_servers_tcp_bindings(stores: StoreFactory) -> None:
    async def scenario() -> None:
        mine = await started(stores, "srv1")
        other = await started(stores, "srv2")
        await send(mine, register("<sip:alice@10.0.0.1;transport=tcp>", call_id="a"), T0, tcp(7))
        await send(mine, register("<sip:alice@10.0.0.2;transport=tcp>", call_id="b"), T0, tcp(8))
        await send(mine, register("<sip:alice@10.0.0.3>", call_id="c"), T0, UDP)
        await send(other, register("<sip:alice@10.0.0.4;transport=tcp>", call_id="d"), T0, tcp(7))
        assert await mine.connection_closed(7, T0 + 1) == 1
        await other.store.sync()  # what the watcher does within staleness_s
        found = sorted(b.contact for b in await other.lookup(AOR, T0 + 1))
        assert found == [
            "sip:alice@10.0.0.2;transport=tcp",
            "sip:alice@10.0.0.3",
            "sip:alice@10.0.0.4;transport=tcp",
        ]
        await mine.stop(T0)
        await other.stop(T0)

    run(scenario)


# -- several servers on one database --------------------------------------------------


def test_servers_see_each_others_bindings_and_a_restart_keeps_the_others(db: str) -> None:
    async def scenario() -> None:
        a = make_registrar(SqlLocationStore(db, server_id="A"), server_id="A")
        b = make_registrar(SqlLocationStore(db, server_id="B"), server_id="B")
        await a.start(T0)
        await send(a, register("<sip:alice@10.0.0.1;transport=tcp>", call_id="a"), T0, tcp(1))
        await send(a, register("<sip:alice@10.0.0.2>", call_id="u"), T0)
        await b.start(T0 + 1)  # B's start-up must not touch A's live bindings
        b._new_id = lambda: "bob1"
        await send(b, register(to=BOB), T0 + 1, tcp(1, 40001))
        assert len(await b.lookup(AOR, T0 + 1)) == 2
        await a.store.sync()  # what the watcher does within staleness_s
        assert len(await a.lookup(BOB, T0 + 1)) == 1
        # A restarts: its TCP connections died with it; B's binding stays.
        await a.stop(T0 + 2)
        restarted = make_registrar(SqlLocationStore(db, server_id="A"), server_id="A")
        await restarted.start(T0 + 3)
        await b.store.sync()
        assert [x.contact for x in await b.lookup(AOR, T0 + 3)] == ["sip:alice@10.0.0.2"]
        assert len(await restarted.lookup(BOB, T0 + 3)) == 1
        await restarted.stop(T0)
        await b.stop(T0)

    run(scenario)


@dataclass(frozen=True)
class Added:
    changes: Changes
    saw: int


def test_concurrent_updates_of_one_aor_from_two_servers_serialize(db: str) -> None:
    count = 12

    def adding(n: int) -> Callable[[list[Binding]], Added]:
        def decide(current: list[Binding]) -> Added:
            new = binding(f"sip:alice@10.0.0.{n}", id=f"id{n}", call_id=f"c{n}")
            return Added(Changes(put=(new,)), len(current))

        return decide

    async def scenario() -> list[int]:
        a, b = SqlLocationStore(db, server_id="A"), SqlLocationStore(db, server_id="B")
        await a.open(T0)
        await b.open(T0)
        try:
            results = await asyncio.gather(
                *((a if n % 2 else b).update(AOR, adding(n), T0) for n in range(count))
            )
            await a.sync()
            assert len(await a.lookup(AOR)) == count
            if a.url.get_backend_name() == "postgresql":
                # The single-statement path wrote some and found the AOR moved on for others.
                assert a.fast_writes + b.fast_writes > 0
                assert a.fast_misses + b.fast_misses > 0
            return sorted(r.saw for r in results)
        finally:
            await a.close(T0)
            await b.close(T0)

    # Each decision saw every earlier one's binding: no two ran on the same rows.
    assert asyncio.run(scenario()) == list(range(count))


def test_purges_by_two_servers_at_once_delete_each_expired_row_once(db: str) -> None:
    async def scenario() -> None:
        a, b = SqlLocationStore(db, server_id="A"), SqlLocationStore(db, server_id="B")
        await a.open(T0)
        await b.open(T0)
        try:
            for n in range(30):
                aor = f"sip:u{n}@example.com"
                expired = binding(aor=aor, id=f"old{n}", expires_at=T0 + 10)
                live = binding(aor=aor, id=f"new{n}", call_id="x", expires_at=T0 + 1000)
                puts = (expired, live) if n % 3 else (expired,)
                await a.update(aor, lambda _, p=puts: Added(Changes(put=p), 0), T0)
            # The bindings are held by neither A nor B: purged PURGE_GRACE_S after expiry.
            at = T0 + 10 + PURGE_GRACE_S
            first, second = await asyncio.gather(a.purge(at), b.purge(at))
            removed = [x.id for r in (*first, *second) for x in r.removed]
            assert sorted(removed) == sorted(f"old{n}" for n in range(30))
            left = await a.bindings()
            assert sorted(x.id for x in left) == sorted(f"new{n}" for n in range(30) if n % 3)
            for removal in (*first, *second):
                assert [x.id for x in removal.remaining] == [
                    x.id for x in left if x.aor == removal.aor
                ]
        finally:
            await a.close(T0)
            await b.close(T0)

    run(scenario)


def test_failed_update_raises_and_applies_nothing(db: str) -> None:
    async def scenario() -> None:
        store = SqlLocationStore(db, server_id="A")
        await store.open(T0)
        try:
            await store.update(AOR, lambda _: Added(Changes(put=(binding(),)), 0), T0)
            twice = (binding(id="dup"), binding(id="dup"))  # the second insert violates the key
            broken = Changes(put=twice, remove=("b1",))
            with pytest.raises(StoreDataError):  # the driver's integrity error, classified
                await store.update(AOR, lambda _: Added(broken, 1), T0)
            assert [x.id for x in await store.lookup(AOR)] == ["b1"]
            await store.sync()
            assert store.available  # a refused change is no outage
        finally:
            await store.close(T0)

    run(scenario)


def test_registrar_answers_503_when_the_database_fails(db: str) -> None:
    async def scenario() -> None:
        store = SqlLocationStore(db, server_id="A")
        registrar = await started(lambda _: store)
        await drop_tables(db)
        response = await send(registrar, register())
        assert response.status == 503
        assert response.get("Retry-After") is not None
        await registrar.stop(T0)

    run(scenario)


# -- schema and the connection check ----------------------------------------------------


def test_init_creates_the_schema_in_an_empty_database_and_is_repeatable(empty_db: str) -> None:
    async def scenario() -> None:
        missing = await check_database(empty_db)
        assert not missing.ok
        assert missing.problem is not None and missing.problem.startswith("schema missing")
        with pytest.raises(SchemaError, match="schema missing"):
            await SqlLocationStore(empty_db, server_id="A").open(T0)
        assert await init_schema(empty_db) == expected_revision()
        assert await init_schema(empty_db) == expected_revision()
        check = await check_database(empty_db)
        assert check.ok and check.problem is None
        assert check.schema_revision == check.expected_revision == expected_revision()
        assert check.server_version is not None
        assert check.server_version.split()[0] in {"SQLite", "PostgreSQL", "MariaDB", "MySQL"}
        assert check.round_trip_ms is not None and 0 <= check.round_trip_ms < 1000

    run(scenario)


def test_open_with_migrate_creates_the_schema(empty_db: str) -> None:
    async def scenario() -> None:
        store = SqlLocationStore(empty_db, server_id="A", migrate=True)
        await store.open(T0)
        assert await store.bindings() == []
        await store.close(T0)

    run(scenario)


def test_check_names_an_unknown_newer_schema(db: str) -> None:
    async def scenario() -> None:
        engine = make_engine(db, pooled=False)
        async with engine.begin() as connection:
            await connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'zz99'"))
        await engine.dispose()
        check = await check_database(db)
        assert not check.ok and check.schema_revision == "zz99"
        assert check.problem is not None and "newer" in check.problem

    run(scenario)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1:1/test", "unreachable: connection refused"),
        ("mysql+aiomysql://root@127.0.0.1:1/test", "unreachable: connection refused"),
        ("postgresql+asyncpg://postgres@host.invalid:5432/test", "unreachable: host"),
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/no_such_db", "database missing"),
        ("mysql+aiomysql://root@127.0.0.1:3306/no_such_db", "database missing"),
        ("mysql+aiomysql://nobody:wrong@127.0.0.1:3306/test", "bad credentials"),
        ("postgresql+asyncpg://nobody@127.0.0.1:5432/test", "bad credentials"),
        ("postgresql://postgres@127.0.0.1/test", "unsupported database URL"),
    ],
)
def test_check_says_plainly_what_is_wrong(url: str, expected: str) -> None:
    if "127.0.0.1:1/" not in url and "invalid" not in url and "+" in url.split(":")[0]:
        database_url("mariadb" if url.startswith("mysql") else "postgresql", Path())
    check = asyncio.run(check_database(url, timeout=3))
    assert not check.ok
    assert check.problem is not None and check.problem.startswith(expected), check.problem


def test_check_reports_a_missing_sqlite_file(tmp_path: Path) -> None:
    check = asyncio.run(check_database(f"sqlite+aiosqlite:///{tmp_path / 'none.db'}"))
    assert check.problem is not None and check.problem.startswith("database missing")
    assert not (tmp_path / "none.db").exists()


def test_migration_creates_exactly_the_tables_the_store_uses(db: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"]

    async def scenario() -> list[Any]:
        engine = make_engine(db, pooled=False)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(diff)
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == []


# -- the cache and the other instances' changes -----------------------------------------


async def _seen_within(check: Callable[[], Awaitable[bool]], limit: float) -> float:
    """Seconds until ``check()`` holds; fails after ``limit``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        assert loop.time() - start < limit, f"not seen within {limit} s"
        await asyncio.sleep(0.01)
    return loop.time() - start


def test_another_servers_register_and_unregister_reach_the_cache_within_the_bound(
    db: str,
) -> None:
    bound = 0.5

    async def scenario() -> None:
        a = make_registrar(SqlLocationStore(db, server_id="A", staleness_s=bound), server_id="A")
        b = make_registrar(SqlLocationStore(db, server_id="B", staleness_s=bound), server_id="B")
        await a.start(T0)
        await b.start(T0)
        try:
            for n in range(3):
                b._new_id = lambda n=n: f"b{n}"
                ok = await send(b, register(call_id=f"c{n}", cseq=1, expires=600), T0)
                assert ok.status == 200

                async def present() -> bool:
                    return len(await a.lookup(AOR, T0)) == 1

                assert await _seen_within(present, bound + 1.0) <= bound + 1.0
                gone = await send(b, register(call_id=f"c{n}", cseq=2, expires=0), T0)
                assert gone.status == 200

                async def absent() -> bool:
                    return not await a.lookup(AOR, T0)

                assert await _seen_within(absent, bound + 1.0) <= bound + 1.0
        finally:
            await a.stop(T0)
            await b.stop(T0)

    run(scenario)


def test_lookups_answer_from_the_cache_when_the_database_is_gone(db: str) -> None:
    async def scenario() -> None:
        store = SqlLocationStore(db, server_id="A")
        registrar = await started(lambda _: store)
        assert (await send(registrar, register(expires=600))).status == 200
        await drop_tables(db)
        assert [b.contact for b in await registrar.lookup(AOR, T0)] == ["sip:alice@192.0.2.10:5060"]
        failed = await send(registrar, register("<sip:alice@192.0.2.99>", call_id="z"))
        assert failed.status == 503
        assert [b.contact for b in await registrar.lookup(AOR, T0)] == ["sip:alice@192.0.2.10:5060"]
        await registrar.stop(T0)

    run(scenario)


def test_instances_know_each_others_address_and_share_one_routing_key(db: str) -> None:
    async def scenario() -> None:
        a = SqlLocationStore(db, server_id="A", address="sip:127.0.0.1:5071")
        b = SqlLocationStore(db, server_id="B", address="sip:127.0.0.1:5072")
        await a.open(T0)
        await b.open(T0)
        await a.sync()
        try:
            assert len(a.routing_key) == 32 and a.routing_key == b.routing_key
            found = a.instance("B")
            assert found is not None and found.address == "sip:127.0.0.1:5072"
            assert found.heartbeat_at > 0
            check = await check_database(db)  # `centrex db check` lists them
            assert [(i.server_id, i.address) for i in check.instances] == [
                ("A", "sip:127.0.0.1:5071"),
                ("B", "sip:127.0.0.1:5072"),
            ]
        finally:
            await b.close(T0)
            await a.sync()
            stopped = a.instance("B")
            assert stopped is not None and stopped.heartbeat_at == 0.0  # B said it left
            await a.close(T0)

    run(scenario)


def test_another_servers_registration_and_unregistration_are_events_here(db: str) -> None:
    async def scenario() -> None:
        # The stores judge liveness by their clock: the scenario's.
        a = make_registrar(SqlLocationStore(db, server_id="A", clock=lambda: T0), server_id="A")
        b = make_registrar(SqlLocationStore(db, server_id="B", clock=lambda: T0), server_id="B")
        await a.start(T0)
        await b.start(T0)
        events: list[AorEvent] = []
        b.listeners.add(events.append)
        try:
            await send(a, register(expires=600, call_id="x"), T0)
            await b.store.sync()
            await send(a, register("<sip:alice@10.0.0.9>", expires=600, call_id="y"), T0)
            await b.store.sync()  # a second device: no event, alice stays available
            await send(a, register("*", expires=0, call_id="x", cseq=2), T0)
            await b.store.sync()
            await b.listeners.drain()
            assert [(e.kind, e.aor, e.reason) for e in events] == [
                ("available", AOR, "registered"),
                ("unavailable", AOR, "unregistered"),
            ]
            assert [x.contact for x in events[0].bindings] == ["sip:alice@192.0.2.10:5060"]
        finally:
            await a.stop(T0)
            await b.stop(T0)

    run(scenario)


def test_a_user_purged_by_another_instance_becomes_unavailable_here_too(db: str) -> None:
    async def scenario() -> None:
        clock = [T0]  # both instances' clock: the purge runs after the binding expired
        a = make_registrar(
            SqlLocationStore(db, server_id="A", clock=lambda: clock[0]), server_id="A"
        )
        b = make_registrar(
            SqlLocationStore(db, server_id="B", clock=lambda: clock[0]), server_id="B"
        )
        await a.start(T0)
        await b.start(T0)
        seen_a: list[AorEvent] = []
        seen_b: list[AorEvent] = []
        a.listeners.add(seen_a.append)
        b.listeners.add(seen_b.append)
        try:
            assert (await send(a, register(expires=60), T0)).status == 200
            await b.store.sync()
            clock[0] = later = T0 + 600
            assert await a.purge(later) == 1  # A wins the purge...
            assert await b.purge(later) == 0  # ...and leaves nothing to B
            await b.store.sync()
            await a.listeners.drain()
            await b.listeners.drain()
            expected = [("available", AOR, "registered"), ("unavailable", AOR, "purged")]
            assert [(e.kind, e.aor, e.reason) for e in seen_b] == expected
            assert [(e.kind, e.aor, e.reason) for e in seen_a] == expected
        finally:
            await a.stop(T0)
            await b.stop(T0)

    run(scenario)


def latin1_register(contact: str, call_id: str) -> Any:
    """A REGISTER from a phone whose User-Agent is Latin-1, not UTF-8."""
    data = register(contact, call_id=call_id, expires=600).to_bytes()
    message = parse_message(data.replace(b"TestPhone/1.0", b"B\xfcro-Telefon"))
    assert message.get("User-Agent") == "B\udcfcro-Telefon"  # surrogateescape
    return message


def test_a_phone_with_a_user_agent_that_is_not_utf8_registers_and_reads_back(db: str) -> None:
    async def scenario() -> None:
        a = await started(lambda server_id: SqlLocationStore(db, server_id=server_id), "A")
        b = await started(lambda server_id: SqlLocationStore(db, server_id=server_id), "B")
        try:
            first = await send(a, latin1_register("<sip:alice@10.0.0.1>", "x"))
            assert first.status == 200
            # B has not seen A's change: on PostgreSQL its single-statement
            # write misses and the locking path writes.
            second = await send(b, latin1_register("<sip:alice@10.0.0.2>", "y"))
            assert second.status == 200
            assert len(second.get_all("Contact")) == 2
            fresh = SqlLocationStore(db, server_id="C")
            await fresh.open(T0)
            try:
                for found in (await fresh.lookup(AOR), await fresh.bindings()):
                    assert sorted((x.contact, x.user_agent) for x in found) == [
                        ("sip:alice@10.0.0.1", "B\udcfcro-Telefon"),
                        ("sip:alice@10.0.0.2", "B\udcfcro-Telefon"),
                    ]
            finally:
                await fresh.close(T0)
            assert b.store.available
        finally:
            await a.stop(T0)
            await b.stop(T0)

    run(scenario)


def test_an_instance_whose_clock_runs_ahead_does_not_purge_the_others_live_bindings(
    db: str,
) -> None:
    async def scenario() -> None:
        a = SqlLocationStore(db, server_id="A")
        b = SqlLocationStore(db, server_id="B")  # its clock: 20 s ahead of A's
        await a.open(T0)
        await b.open(T0)
        try:
            held_by_a = binding(id="a1", expires_at=T0 + 60, server_id="A")
            await a.update(AOR, lambda _: Added(Changes(put=(held_by_a,)), 0), T0)
            assert await b.purge(T0 + 60 + 20) == []  # live for A: 20 s to go
            assert [x.id for x in await b.bindings()] == ["a1"]
            # Expired by more than the clocks can differ: B purges it.
            gone = await b.purge(T0 + 60 + PURGE_GRACE_S)
            assert [x.id for r in gone for x in r.removed] == ["a1"]
            # Its own expired bindings, an instance purges at once.
            held_by_b = binding(id="b1", expires_at=T0 + 60, server_id="B")
            await b.update(AOR, lambda _: Added(Changes(put=(held_by_b,)), 0), T0)
            assert [x.id for r in await b.purge(T0 + 60) for x in r.removed] == ["b1"]
        finally:
            await a.close(T0)
            await b.close(T0)

    run(scenario)


def test_an_instance_is_judged_alive_by_its_heartbeat_moving_not_by_its_clock(db: str) -> None:
    async def scenario() -> None:
        mono = [100.0]
        b_wall = [T0 - 3600]  # B's clock is an hour behind A's
        a = SqlLocationStore(db, server_id="A", clock=lambda: T0, monotonic=lambda: mono[0])
        b = SqlLocationStore(db, server_id="B", clock=lambda: b_wall[0])
        await a.open(T0)
        await b.open(T0)
        try:
            await a.sync()
            first = a.instance("B")
            # First sight: as old as the clocks say, the only estimate there is.
            assert first is not None and first.heard_at == 100.0 - 3600
            b_wall[0] += 1
            await b.sync()  # B's heartbeat moves...
            mono[0] = 101.0
            await a.sync()
            beating = a.instance("B")
            assert beating is not None and beating.heard_at == 101.0  # ...and A sees it now
            mono[0] = 110.0
            await a.sync()  # no beat since
            silent = a.instance("B")
            assert silent is not None and silent.heard_at == 101.0
        finally:
            await b.close(T0)
            await a.close(T0)

    run(scenario)


def test_a_second_instance_with_a_running_instances_id_refuses_to_start(db: str) -> None:
    async def scenario() -> None:
        first = SqlLocationStore(db, server_id="pbx", address="sip:127.0.0.1:5071")
        await first.open(T0)
        try:
            await first.sync()  # a heartbeat that is not cleared: "pbx" runs
            twin = SqlLocationStore(db, server_id="pbx", address="sip:127.0.0.1:5072")
            with pytest.raises(DuplicateInstanceError, match=r"\[server\] instance_id"):
                await twin.open(T0)
            other = SqlLocationStore(db, server_id="pbx-2", address="sip:127.0.0.1:5072")
            await other.open(T0)  # its own id: fine
            await other.close(T0)
        finally:
            await first.close(T0)

    run(scenario)


def test_an_instance_restarted_after_a_crash_starts_with_its_id(db: str) -> None:
    async def scenario() -> None:
        crashed = SqlLocationStore(db, server_id="pbx", address="sip:127.0.0.1:5071")
        await crashed.open(T0)
        assert crashed._watcher is not None
        crashed._watcher.cancel()  # dies: its heartbeat stays, but no longer moves
        again = SqlLocationStore(db, server_id="pbx", address="sip:127.0.0.1:5071")
        await again.open(T0)
        await again.close(T0)
        await crashed.close(T0)

    run(scenario)


def test_registers_fail_at_once_while_the_database_is_known_lost_and_work_when_back(
    db: str,
) -> None:
    async def scenario() -> None:
        store = SqlLocationStore(db, server_id="A")
        registrar = await started(lambda _: store)
        try:
            await drop_tables(db)
            await store.sync()
            assert not store.available
            # The purge waits for the database (no traceback every interval).
            await registrar.maintain(T0 + 3600)
            with pytest.raises(DatabaseUnavailable):  # not even a connection is tried
                await store.update(AOR, lambda _: Added(Changes(put=(binding(),)), 0), T0)
            refused = await send(registrar, register(expires=600))
            assert refused.status == 503 and refused.get("Retry-After") is not None
            await init_schema(db)
            await store.sync()
            assert store.available
            assert (await send(registrar, register(expires=600, cseq=2))).status == 200
        finally:
            await registrar.stop(T0)

    run(scenario)


@pytest.mark.parametrize("how", ["created again while lost", "emptied while reachable"])
def test_a_database_that_went_back_in_time_replaces_what_the_cache_held(db: str, how: str) -> None:
    # A database restored from a dump, or created again, holds older versions
    # or no row for an AOR: the cache used to keep the bindings it held
    # (newer versions win), so calls went to phones the database no longer
    # held, and a phone registered again got 200 but was not found (480)
    # until a restart. Once the database is back a full read replaces the
    # cache; with no outage between, the REGISTER that finds its AOR older
    # than the cache has it starts that full read.
    async def scenario() -> None:
        store = SqlLocationStore(db, server_id="A")
        registrar = await started(lambda _: store)
        try:
            for cseq in range(1, 4):  # the AOR's version moves on
                assert (await send(registrar, register(expires=600, cseq=cseq))).status == 200
            if how == "created again while lost":
                await drop_tables(db)
                await store.sync()
                assert not store.available
                await init_schema(db)  # created again, empty
                await store.sync()
                assert store.available
                assert await registrar.lookup(AOR, T0) == []
            else:
                engine = make_engine(db, pooled=False)
                try:
                    async with engine.begin() as connection:
                        await connection.execute(text("DELETE FROM centrex_binding"))
                        await connection.execute(text("DELETE FROM centrex_aor"))
                finally:
                    await engine.dispose()
            again = register("<sip:alice@192.0.2.99>", call_id="again", expires=600)
            assert (await send(registrar, again)).status == 200
            await store.sync()
            found = [b.contact for b in await registrar.lookup(AOR, T0)]
            assert found == ["sip:alice@192.0.2.99"]
        finally:
            await registrar.stop(T0)

    run(scenario)


def test_the_postgresql_connections_outside_sqlalchemy_take_the_urls_options() -> None:
    url = make_url("postgresql+asyncpg://centrex:pw@/centrex?host=/run/pg&ssl=require&timeout=2")
    arguments = asyncpg_arguments(url)
    assert arguments["host"] == "/run/pg"
    assert arguments["ssl"] == "require"
    assert arguments["timeout"] == 2.0
    assert (arguments["user"], arguments["password"], arguments["database"]) == (
        "centrex",
        "pw",
        "centrex",
    )


#: PostgreSQL over its Unix socket (Debian's socket directory).
SOCKET_URL = os.environ.get(
    "CENTREX_TEST_POSTGRESQL_SOCKET_URL",
    "postgresql+asyncpg://postgres@/test?host=/var/run/postgresql",
)


def test_postgresql_over_a_unix_socket_named_in_the_url_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # asyncpg would find Debian's socket by itself: make the URL the only way there.
    monkeypatch.setenv("PGHOST", "/nonexistent")
    if _unreachable("postgresql") is not None or not Path("/var/run/postgresql").is_dir():
        reason = "PostgreSQL with its socket in /var/run/postgresql is not here"
        if STRICT:
            pytest.fail(f"{reason} (CENTREX_TEST_STRICT=1)")
        pytest.skip(reason)

    async def scenario() -> None:
        await drop_tables(SOCKET_URL)
        await init_schema(SOCKET_URL)
        a = make_registrar(SqlLocationStore(SOCKET_URL, server_id="A"), server_id="A")
        b = make_registrar(SqlLocationStore(SOCKET_URL, server_id="B"), server_id="B")
        await a.start(T0)
        await b.start(T0)
        try:
            assert isinstance(a.store, SqlLocationStore)
            assert isinstance(b.store, SqlLocationStore)
            assert (await send(a, register(expires=600), T0)).status == 200
            assert a.store.fast_writes == 1  # the single-statement path's own pool
            # B hears of it (NOTIFY on its LISTEN connection, or the poll).
            async with asyncio.timeout(5):
                while not await b.store.lookup(AOR):
                    await asyncio.sleep(0.02)
        finally:
            await a.stop(T0)
            await b.stop(T0)
            await drop_tables(SOCKET_URL)

    run(scenario)
