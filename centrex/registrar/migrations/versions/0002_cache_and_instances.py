"""Change tracking for the instances' caches, the instance table, the cluster key.

``centrex_aor`` gains ``changed_at`` (wall-clock seconds of the last change)
and ``changed_by`` (the server id that made it), indexed so an instance can
poll for what the others changed; on PostgreSQL a trigger also NOTIFYs channel
``centrex_location`` with ``<changed_by> <version> <aor>`` in the changing
transaction. ``centrex_instance`` lists the instances (id, SIP address,
start, heartbeat); ``centrex_cluster`` holds the key the instances sign
their routing tokens with.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION centrex_aor_notify() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('centrex_location', NEW.changed_by || ' ' || NEW.version || ' ' || NEW.aor);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""

_NOTIFY_TRIGGER = """
CREATE TRIGGER centrex_aor_changed AFTER INSERT OR UPDATE ON centrex_aor
FOR EACH ROW EXECUTE FUNCTION centrex_aor_notify()
"""


def upgrade() -> None:
    with op.batch_alter_table("centrex_aor") as batch:
        batch.add_column(sa.Column("changed_at", sa.Double, nullable=False, server_default="0"))
        batch.add_column(sa.Column("changed_by", sa.String(128), nullable=False, server_default=""))
    op.create_index("ix_centrex_aor_changed_at", "centrex_aor", ["changed_at"])
    op.create_table(
        "centrex_instance",
        sa.Column("server_id", sa.String(128), primary_key=True),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("heartbeat_at", sa.Double, nullable=False),
        **_MYSQL,
    )
    op.create_table(
        "centrex_cluster",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
        **_MYSQL,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_NOTIFY_FUNCTION)
        op.execute(_NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS centrex_aor_changed ON centrex_aor")
        op.execute("DROP FUNCTION IF EXISTS centrex_aor_notify()")
    op.drop_table("centrex_cluster")
    op.drop_table("centrex_instance")
    op.drop_index("ix_centrex_aor_changed_at", "centrex_aor")
    with op.batch_alter_table("centrex_aor") as batch:
        batch.drop_column("changed_by")
        batch.drop_column("changed_at")
