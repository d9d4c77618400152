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
from dataclasses import dataclass
from typing import Protocol, TypeVar

from centrex.records import quick_init
from centrex.registrar.binding import Binding


@quick_init
@dataclass(frozen=True, slots=True)
class Changes:
    """What one update does to one AOR: bindings to write, binding ids to delete.

    A binding in ``put`` replaces the stored binding with the same ``id``, or
    is added when there is none.
    """

    put: tuple[Binding, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the update writes nothing."""
        return not self.put and not self.remove

    @property
    def size(self) -> int:
        """How many bindings the update writes or deletes."""
        return len(self.put) + len(self.remove)


NO_CHANGES = Changes()


class HasChanges(Protocol):
    """The result of a decision function: whatever it is, it carries ``changes``."""

    @property
    def changes(self) -> Changes: ...


DecisionT = TypeVar("DecisionT", bound=HasChanges)


@quick_init
@dataclass(frozen=True, slots=True)
class AorRemoval:
    """Bindings a store removed from one AOR on its own initiative (purge,
    closed connection), with what the AOR still holds afterwards."""

    aor: str
    removed: tuple[Binding, ...]
    remaining: tuple[Binding, ...]


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

    @abstractmethod
    async def close(self, now: float) -> None:
        """Persist what is not yet persisted and release resources."""

    @abstractmethod
    async def lookup(self, aor: str) -> list[Binding]:
        """The stored bindings of ``aor`` (any order, possibly expired)."""

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


def apply_changes(current: tuple[Binding, ...], changes: Changes) -> tuple[Binding, ...]:
    """``current`` with ``changes`` applied: removals first, then puts by id."""
    if changes.empty:
        return current
    gone = set(changes.remove)
    replaced = {b.id: b for b in changes.put}
    out = [replaced.pop(b.id, b) for b in current if b.id not in gone]
    out.extend(replaced.values())
    return tuple(out)
