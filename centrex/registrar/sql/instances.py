"""The instances sharing a database: heartbeats, addresses, the routing key.

``centrex_instance`` has one row per instance (``server.instance_id``): the
SIP address the others reach it at, when it started, and its heartbeat,
written about every second (cleared at a clean stop). ``centrex_cluster``
holds the key the instances sign their flow tokens with
(``centrex/proxy/owner.py``), created by the first instance that needs it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from centrex.registrar.sql.tables import cluster_table, instance_table

#: The centrex_cluster row holding the key routing tokens are signed with.
ROUTING_KEY = "routing_key"

_i = instance_table.c


@dataclass(frozen=True, slots=True)
class Instance:
    """Another (or this) instance sharing the database, as it last said.

    ``heartbeat_at`` is the instance's own wall clock (0: it stopped);
    ``heard_at`` is when *this* instance last saw that value move, on this
    instance's monotonic clock, so judging whether it is alive does not
    compare two machines' clocks (``SqlLocationStore`` fills it in).
    """

    server_id: str
    address: str
    started_at: float
    heartbeat_at: float
    heard_at: float = 0.0


async def read_instance(connection: AsyncConnection, server_id: str) -> Instance | None:
    """What ``server_id`` last wrote (None: never started)."""
    row = (
        (await connection.execute(select(instance_table).where(_i.server_id == server_id)))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return Instance(
        row["server_id"], row["address"], float(row["started_at"]), float(row["heartbeat_at"])
    )


def upsert(dialect: str, table: Table, key: str, row: dict[str, Any], **set_: Any) -> Insert:
    """INSERT ``row`` into ``table``, or on a duplicate ``key`` UPDATE ``set_``."""
    if dialect == "postgresql":
        pg = postgresql_insert(table).values(**row)
        return pg.on_conflict_do_update(index_elements=[key], set_=set_)
    if dialect == "sqlite":
        lite = sqlite_insert(table).values(**row)
        return lite.on_conflict_do_update(index_elements=[key], set_=set_)
    # MySQL / MariaDB: ON DUPLICATE KEY UPDATE takes the exclusive lock at
    # once (INSERT IGNORE would take a shared one and deadlock on upgrade).
    return mysql_insert(table).values(**row).on_duplicate_key_update(**set_)


async def write_heartbeat(
    connection: AsyncConnection, server_id: str, address: str, now: float, *, starting: bool
) -> None:
    """Say ``server_id`` is alive at ``now`` (and, at start, where it is reached)."""
    row = {"server_id": server_id, "address": address, "started_at": now, "heartbeat_at": now}
    set_: dict[str, Any] = {"heartbeat_at": now}
    if starting:
        set_.update(address=address, started_at=now)
    await connection.execute(
        upsert(connection.dialect.name, instance_table, "server_id", row, **set_)
    )


async def clear_heartbeat(connection: AsyncConnection, server_id: str) -> None:
    """Say ``server_id`` stopped: the others take it for down at once."""
    await connection.execute(
        update(instance_table).where(_i.server_id == server_id).values(heartbeat_at=0.0)
    )


async def read_instances(connection: AsyncConnection) -> dict[str, Instance]:
    """Every instance, by server id."""
    rows = await connection.execute(select(instance_table))
    return {
        row["server_id"]: Instance(
            row["server_id"],
            row["address"],
            float(row["started_at"]),
            float(row["heartbeat_at"]),
        )
        for row in rows.mappings()
    }


async def routing_key(connection: AsyncConnection) -> bytes:
    """The cluster's routing key, created if no instance has yet (in a write transaction)."""
    select_key = select(cluster_table.c.value).where(cluster_table.c.name == ROUTING_KEY)
    found = (await connection.execute(select_key)).scalar_one_or_none()
    if found is None:
        row = {"name": ROUTING_KEY, "value": secrets.token_hex(32)}
        dialect = connection.dialect.name
        if dialect == "postgresql":
            statement: Any = postgresql_insert(cluster_table).values(**row)
            statement = statement.on_conflict_do_nothing()
        elif dialect == "sqlite":
            statement = sqlite_insert(cluster_table).values(**row)
            statement = statement.on_conflict_do_nothing()
        else:
            statement = mysql_insert(cluster_table).values(**row).prefix_with("IGNORE")
        await connection.execute(statement)
        found = (await connection.execute(select_key)).scalar_one()
    return bytes.fromhex(found)
