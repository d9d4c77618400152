"""One round trip per REGISTER on PostgreSQL: a version-checked write from the cache.

The instance's cache holds each AOR's bindings with the ``centrex_aor.version``
they were read (or written) at. The registrar's decision is computed on the
cached bindings, and ``FAST_UPDATE`` applies it in a single statement (its
own transaction): it bumps the AOR's version *only if* it still is the cached
one, and deletes / upserts the binding rows only when it did. In READ
COMMITTED, the version test of ``ON CONFLICT DO UPDATE ... WHERE`` is made on
the newest committed row after waiting for its lock, so when it passes nobody
changed the AOR since the cache read it and the decision is the one the
locking path would have made. When it fails (another instance changed the
AOR), nothing is written and the store falls back to the locking path.

It runs on an asyncpg pool of its own, with asyncpg's prepared-statement
cache, and no ping or session reset per checkout: a connection the database dropped fails its
statement (the REGISTER gets 503) and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from sqlalchemy.engine import URL

from centrex.registrar.sql.engine import POOL_TIMEOUT_S, asyncpg_arguments
from centrex.registrar.sql.tables import binding_row
from centrex.registrar.store import Changes

#: The longest the statement may take before the REGISTER gets its 503.
STATEMENT_TIMEOUT_S = 5.0

_COLUMNS = (
    ("aor", "text"),
    ("id", "text"),
    ("contact", "text"),
    ("expires_at", "float8"),
    ("q", "float8"),
    ("call_id", "text"),
    ("cseq", "bigint"),
    ("transport", "text"),
    ("source_host", "text"),
    ("source_port", "int"),
    ("local", "text"),
    ("connection_id", "bigint"),
    ("instance", "text"),
    ("reg_id", "int"),
    ("path", "text"),
    ("user_agent", "text"),
    ("server_id", "text"),
    ("created_at", "float8"),
    ("updated_at", "float8"),
)
_NAMES = ", ".join(f'"{name}"' for name, _ in _COLUMNS)
_TYPED = ", ".join(f'"{name}" {kind}' for name, kind in _COLUMNS)
_UPDATES = ", ".join(f'"{name}" = EXCLUDED."{name}"' for name, _ in _COLUMNS[2:])

FAST_UPDATE = f"""
WITH locked AS (
    INSERT INTO centrex_aor AS a (aor, version, changed_at, changed_by)
    SELECT $1::text, $2::bigint + 1, $3::double precision, $4::text
    -- (an AOR cached at a version but absent here -- a database restored
    -- from a dump -- is not created from the cache: the locking path reads it)
    WHERE $2::bigint = 0 OR EXISTS (SELECT 1 FROM centrex_aor WHERE aor = $1::text)
    ON CONFLICT (aor) DO UPDATE
        SET version = a.version + 1,
            changed_at = EXCLUDED.changed_at,
            changed_by = EXCLUDED.changed_by
        WHERE a.version = $2
    RETURNING a.version
), gone AS (
    DELETE FROM centrex_binding
    WHERE aor = $1 AND id = ANY($5::text[]) AND EXISTS (SELECT 1 FROM locked)
), put AS (
    INSERT INTO centrex_binding ({_NAMES})
    SELECT {_NAMES} FROM jsonb_to_recordset($6::jsonb) AS t({_TYPED})
    WHERE EXISTS (SELECT 1 FROM locked)
    ON CONFLICT (aor, id) DO UPDATE SET {_UPDATES}
)
SELECT version FROM locked
"""


async def _keep_session(connection: Any) -> None:
    """The pool's reset: nothing. The one statement run here changes no session
    state, and asyncpg's default reset (RESET ALL, UNLISTEN *...) would cost a
    round trip per REGISTER."""


class FastPath:
    """The version-checked single-statement write, on an asyncpg pool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: URL, size: int) -> FastPath:
        import asyncpg  # type: ignore[import-untyped]

        pool = await asyncpg.create_pool(
            **asyncpg_arguments(url),
            min_size=1,
            max_size=size,
            command_timeout=STATEMENT_TIMEOUT_S,
            reset=_keep_session,
        )
        return cls(pool)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), 5)
        except (TimeoutError, OSError):
            with contextlib.suppress(Exception):
                self._pool.terminate()

    async def update(
        self,
        aor: str,
        version: int,
        changes: Changes,
        changed_at: float,
        server_id: str,
    ) -> int | None:
        """Apply ``changes`` to ``aor`` if it is still at ``version`` (0: absent);
        the new version, or None when the AOR moved on (nothing written)."""
        rows = json.dumps([binding_row(b) for b in changes.put])
        async with self._pool.acquire(timeout=POOL_TIMEOUT_S) as connection:
            result = await connection.fetchval(
                FAST_UPDATE, aor, version, changed_at, server_id, list(changes.remove), rows
            )
        return None if result is None else int(result)

    @staticmethod
    def usable(changes: Changes) -> bool:
        """The statement's sub-statements do not see each other: an id both
        removed and put is left to the locking path."""
        return not set(changes.remove) & {b.id for b in changes.put}
