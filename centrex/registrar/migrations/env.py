"""Alembic environment: runs on the connection ``centrex.registrar.sql.schema`` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from centrex.registrar.sql.tables import VERSION_TABLE, metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "centrex migrations run through `centrex db init`, which passes a connection"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
