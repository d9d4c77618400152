"""The location tables, as SQLAlchemy Core objects, and the row <-> Binding mapping.

``centrex_binding`` holds one row per binding, keyed by (aor, id).
``centrex_aor`` holds one row per address-of-record that ever had a binding:
it is the lock every writer takes before touching that AOR's bindings (so
updates of one AOR serialize even when it has no binding yet, and
multi-AOR writers lock in AOR order, which rules out deadlocks); its
``version`` counts committed changes and ``changed_at`` / ``changed_by`` say
when and by which instance the last one was made, which is what the other
instances poll (PostgreSQL also NOTIFYs them, see migration 0002).
``centrex_instance`` lists the instances sharing the database (id, the SIP
address the others reach it at, heartbeat); ``centrex_cluster`` holds the
key their routing tokens are signed with.

The migrations in ``centrex/registrar/migrations`` create exactly these
tables; ``tests/registrar/test_sql_store.py`` checks that they agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from centrex.registrar.binding import Binding, Source

#: Alembic's own bookkeeping table (named so it cannot clash with other apps').
VERSION_TABLE = "centrex_alembic_version"

# MariaDB compares strings case-insensitively by default; AORs and binding ids
# are compared exactly (the registrar has already folded case where it should).
_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

metadata = MetaData()

aor_table = Table(
    "centrex_aor",
    metadata,
    Column("aor", String(255), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("changed_at", Double, nullable=False, server_default="0"),
    Column("changed_by", String(128), nullable=False, server_default=""),
    Index("ix_centrex_aor_changed_at", "changed_at"),
    **_MYSQL,
)

binding_table = Table(
    "centrex_binding",
    metadata,
    Column("aor", String(255), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("contact", Text, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("q", Double, nullable=True),
    Column("call_id", String(255), nullable=False),
    Column("cseq", BigInteger, nullable=False),
    Column("transport", String(8), nullable=False),
    Column("source_host", String(255), nullable=False),
    Column("source_port", Integer, nullable=False),
    Column("local", String(255), nullable=False),
    Column("connection_id", BigInteger, nullable=True),
    Column("instance", String(255), nullable=True),
    Column("reg_id", Integer, nullable=True),
    Column("path", Text, nullable=False),
    Column("user_agent", Text, nullable=True),
    Column("server_id", String(128), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_centrex_binding_expires_at", "expires_at"),
    Index("ix_centrex_binding_connection", "server_id", "connection_id"),
    **_MYSQL,
)


instance_table = Table(
    "centrex_instance",
    metadata,
    Column("server_id", String(128), primary_key=True),
    Column("address", String(255), nullable=False),
    Column("started_at", Double, nullable=False),
    Column("heartbeat_at", Double, nullable=False),
    **_MYSQL,
)

cluster_table = Table(
    "centrex_cluster",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    **_MYSQL,
)


#: Where the bytes a phone sent that are not UTF-8 are kept in a text column.
#: Header values are decoded with ``surrogateescape``: byte 0xNN (0x80-0xFF)
#: of an invalid sequence becomes the lone surrogate U+DCNN, which no
#: database accepts as text. It is stored as U+10DCNN instead (a code point of
#: Supplementary Private Use Area-B, which a phone has no reason to send) and
#: turned back on reading, so ``User-Agent: B\xfcro`` (Latin-1) reads back
#: exactly as it was received.
_RAW_BYTE_SHIFT = 0x100000
_RAW_BYTES = {chr(c): chr(c + _RAW_BYTE_SHIFT) for c in range(0xDC80, 0xDD00)}
_RAW_BYTES_BACK = {c + _RAW_BYTE_SHIFT: chr(c) for c in range(0xDC80, 0xDD00)}


def store_text(value: str) -> str:
    """``value`` as a text column can hold it (see ``_RAW_BYTE_SHIFT``)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join(_RAW_BYTES.get(c, c) for c in value)
        # Any other lone surrogate (none comes from the parser) cannot be kept.
        return text.encode("utf-8", "replace").decode("utf-8")
    return value


def read_text(value: str) -> str:
    """The inverse of ``store_text``."""
    if value.isascii():
        return value
    return value.translate(_RAW_BYTES_BACK)


def _stored(value: str | None) -> str | None:
    return None if value is None else store_text(value)


def _read(value: str | None) -> str | None:
    return None if value is None else read_text(value)


def binding_row(binding: Binding) -> dict[str, Any]:
    """The column values of ``binding``. The AOR and the binding id are
    URIs and tokens (ASCII); every other text may hold what a phone sent."""
    source = binding.source
    return {
        "aor": binding.aor,
        "id": binding.id,
        "contact": store_text(binding.contact),
        "expires_at": binding.expires_at,
        "q": binding.q,
        "call_id": store_text(binding.call_id),
        "cseq": binding.cseq,
        "transport": source.transport,
        "source_host": source.host,
        "source_port": source.port,
        "local": source.local,
        "connection_id": source.connection_id,
        "instance": _stored(binding.instance),
        "reg_id": binding.reg_id,
        # json.dumps writes a lone surrogate as an ASCII escape, which loads back.
        "path": json.dumps(list(binding.path)),
        "user_agent": _stored(binding.user_agent),
        "server_id": binding.server_id,
        "created_at": binding.created_at,
        "updated_at": binding.updated_at,
    }


def row_binding(row: Mapping[Any, Any]) -> Binding:
    """The binding stored in ``row`` (a mapping of ``binding_table``'s columns)."""
    q = row["q"]
    connection_id = row["connection_id"]
    reg_id = row["reg_id"]
    return Binding(
        id=row["id"],
        aor=row["aor"],
        contact=read_text(row["contact"]),
        expires_at=float(row["expires_at"]),
        q=None if q is None else float(q),
        call_id=read_text(row["call_id"]),
        cseq=int(row["cseq"]),
        source=Source(
            row["transport"],
            row["source_host"],
            int(row["source_port"]),
            row["local"],
            None if connection_id is None else int(connection_id),
        ),
        instance=_read(row["instance"]),
        reg_id=None if reg_id is None else int(reg_id),
        path=tuple(json.loads(row["path"])),
        user_agent=_read(row["user_agent"]),
        server_id=row["server_id"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )
