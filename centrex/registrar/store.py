"""The location service interface (RFC 3261 10; Kamailio's "usrloc").

The registrar decides, the store persists. ``update`` hands the store a pure
decision function: the store reads the bindings of one AOR, calls the function
with them, applies the ``Changes`` it returns and commits, all before it
returns. A SQL store does exactly that in one transaction (``SELECT ... FOR
UPDATE`` of the AOR's rows, ``DELETE`` / upsert of the changed rows,
``COMMIT``), so the 200 that lists the bindings never goes out before they are
durable, and two servers sharing the database never interleave updates of one
AOR (RFC 3261 10.3 step 7: all of a REGISTER's changes or none).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol, TypeVar

# Changes, AorRemoval and apply_changes live beside Binding, in a compiled
# module (the hot path makes them per REGISTER); imported from here too.
from centrex.registrar.binding import NO_CHANGES, AorRemoval, Binding, Changes, apply_changes

__all__ = [
    "NO_CHANGES",
    "AorRemoval",
    "Changes",
    "DecisionT",
    "HasChanges",
    "LocationStore",
    "RemoteChange",
    "StoreDataError",
    "apply_changes",
]


class HasChanges(Protocol):
    """The result of a decision function: whatever it is, it carries ``changes``."""

    @property
    def changes(self) -> Changes: ...


DecisionT = TypeVar("DecisionT", bound=HasChanges)


def error_line(exc: BaseException) -> str:
    """The first line of what a store's error says (a database driver's, which
    SQLAlchemy wraps in ``orig``, runs to many lines)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class StoreDataError(Exception):
    """The store refused the data of one change (a constraint, a value it
    cannot hold): a fault of that request or of Centrex, not an outage, so
    the registrar answers 500 and the store stays available."""


#: Called by a shared store when another server's change of an AOR reaches it:
#: (aor, bindings before, bindings after, now).
RemoteChange = Callable[[str, tuple[Binding, ...], tuple[Binding, ...], float], None]


class LocationStore(ABC):
    """Where bindings live: memory with a recovery file, or a shared database.

    Every method may touch storage and is async. ``lookup`` may return expired
    bindings that no purge has removed yet; the ``Registrar`` filters them.
    A shared store calls ``on_remote_change`` (when set) for the changes
    other servers made, as they reach it.
    """

    on_remote_change: RemoteChange | None = None

    @abstractmethod
    async def open(self, now: float) -> None:
        """Make the store ready (load the recovery file, connect), dropping
        bindings already expired at ``now``."""

    def take_departed(self) -> list[AorRemoval]:
        """The AORs ``open`` found with expired bindings only (they expired
        while the server was down; ``open`` dropped them), as a purge would
        have removed them, handed over once; none for a store that keeps
        expired bindings until its purge."""
        return []

    @abstractmethod
    async def close(self, now: float) -> None:
        """Persist what is not yet persisted and release resources."""

    @abstractmethod
    async def lookup(self, aor: str) -> list[Binding]:
        """The stored bindings of ``aor`` (any order, possibly expired)."""

    @abstractmethod
    def live(self, aor: str, now: float) -> tuple[Binding, ...]:
        """``aor``'s bindings live at ``now``, in lookup order, read without
        waiting: every store keeps all bindings in this process (the memory
        store its table, the database store its cache). Presence lists them
        from here rather than keep a copy."""

    @abstractmethod
    async def update(
        self, aor: str, decide: Callable[[list[Binding]], DecisionT], now: float
    ) -> DecisionT:
        """Read ``aor``'s bindings, call ``decide`` with them, apply and commit
        its ``changes`` atomically, and return its result.

        ``decide`` is pure and may be called again if the store retries a
        transaction. If the store fails, the exception propagates and nothing
        is applied (RFC 3261 10.3 step 7): ``StoreDataError`` when the change's
        data was refused, anything else when the storage failed.
        """

    @abstractmethod
    async def remove_connections(
        self, server_id: str, connection_id: int | None, now: float
    ) -> list[AorRemoval]:
        """Remove the bindings that ``server_id`` holds over connection
        ``connection_id`` (every connection when None: that server restarted)."""

    @abstractmethod
    async def purge(self, now: float) -> list[AorRemoval]:
        """Remove every binding expired at ``now``."""

    @abstractmethod
    async def bindings(self) -> list[Binding]:
        """Every stored binding (for the admin and for tests)."""

    @property
    def available(self) -> bool:
        """False while the store knows its storage is unreachable (it has said so in the log)."""
        return True

    async def sync(self) -> None:
        """Catch up now with the changes other servers made (a shared store
        with a cache does so by itself within its staleness bound)."""
        return None

    async def maybe_flush(self, now: float) -> bool:
        """Persist pending changes if a periodic write is due; True if it wrote.

        Stores that commit every update (SQL) have nothing to do.
        """
        return False
