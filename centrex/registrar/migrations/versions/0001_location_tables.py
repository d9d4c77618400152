"""The location tables: centrex_aor (per-AOR lock and version) and centrex_binding.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def upgrade() -> None:
    op.create_table(
        "centrex_aor",
        sa.Column("aor", sa.String(255), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        **_MYSQL,
    )
    op.create_table(
        "centrex_binding",
        sa.Column("aor", sa.String(255), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("q", sa.Double, nullable=True),
        sa.Column("call_id", sa.String(255), nullable=False),
        sa.Column("cseq", sa.BigInteger, nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("source_host", sa.String(255), nullable=False),
        sa.Column("source_port", sa.Integer, nullable=False),
        sa.Column("local", sa.String(255), nullable=False),
        sa.Column("connection_id", sa.BigInteger, nullable=True),
        sa.Column("instance", sa.String(255), nullable=True),
        sa.Column("reg_id", sa.Integer, nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("user_agent", sa.Text, nullable=True),
        sa.Column("server_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        **_MYSQL,
    )
    op.create_index("ix_centrex_binding_expires_at", "centrex_binding", ["expires_at"])
    op.create_index(
        "ix_centrex_binding_connection", "centrex_binding", ["server_id", "connection_id"]
    )


def downgrade() -> None:
    op.drop_table("centrex_binding")
    op.drop_table("centrex_aor")
