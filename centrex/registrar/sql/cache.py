"""The in-memory copy of the location table that an instance answers lookups from.

Every instance holds every binding (a few hundred bytes each: a million fit in
well under a gigabyte). Its own changes are applied when they commit; the other
instances' arrive by PostgreSQL NOTIFY or by the change poll and are loaded
from the database. Each AOR carries the ``version`` of ``centrex_aor`` it was
read at, and an older read never replaces a newer one: a slow reload racing
an update of this instance cannot bring a stale AOR back. A read of the whole
table (at start, when the database is back, every few minutes) is taken as
what the database holds, older versions and missing AORs included (a database
restored from a dump), except for the AORs this instance wrote meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from centrex.registrar.binding import Binding


class BindingCache:
    """AOR -> (version, bindings)."""

    def __init__(self) -> None:
        self._aors: dict[str, tuple[int, tuple[Binding, ...]]] = {}
        #: The AORs ``put`` since ``begin_full`` (this instance's own writes
        #: during a full read), None when no full read is under way.
        self._touched: set[str] | None = None

    def get(self, aor: str) -> tuple[Binding, ...]:
        """The cached bindings of ``aor`` (empty when it has none)."""
        found = self._aors.get(aor)
        return () if found is None else found[1]

    def version(self, aor: str) -> int:
        """The version ``aor`` was cached at; -1 when it is not cached."""
        found = self._aors.get(aor)
        return -1 if found is None else found[0]

    def put(self, aor: str, version: int, bindings: Iterable[Binding]) -> bool:
        """Cache ``aor`` at ``version`` unless a newer version is cached; True if stored."""
        if self._touched is not None:
            self._touched.add(aor)
        if version < self.version(aor):
            return False
        kept = tuple(bindings)
        if kept:
            self._aors[aor] = (version, kept)
        else:
            # Remember the version of an emptied AOR, so an older read cannot revive it.
            self._aors[aor] = (version, ())
        return True

    def load(
        self, versions: Mapping[str, int], bindings: Mapping[str, list[Binding]]
    ) -> list[tuple[str, tuple[Binding, ...], tuple[Binding, ...]]]:
        """Apply a read of the database: the ``versions`` of the AORs read
        (read before their ``bindings``, so a change committed in between
        leaves an older version and is read again). AOR rows are never
        deleted, so an AOR the read did not see was created after it and stays.
        Returns the AORs whose bindings changed, with their bindings before and after."""
        changed = []
        for aor, version in versions.items():
            before = self.get(aor)
            if self.put(aor, version, bindings.get(aor, ())) and before != self.get(aor):
                changed.append((aor, before, self.get(aor)))
        return changed

    def begin_full(self) -> None:
        """A read of the whole table starts: ``replace`` will apply it."""
        self._touched = set()

    def replace(
        self, versions: Mapping[str, int], bindings: Mapping[str, list[Binding]]
    ) -> list[tuple[str, tuple[Binding, ...], tuple[Binding, ...]]]:
        """Apply a read of the whole table (begun by ``begin_full``) as what
        the database holds, whatever versions were cached: a database restored
        from a dump, or created again, holds older versions or no row at all
        for an AOR, and ``load`` would keep the cached bindings for good. An
        AOR this instance wrote during the read is applied as ``load`` does
        (its write is newer than the read). Another instance's change made
        during the read is read again by the next poll (its version is newer
        than the one applied here). Returns what ``load`` returns."""
        touched, self._touched = self._touched or set(), None
        changed: list[tuple[str, tuple[Binding, ...], tuple[Binding, ...]]] = []
        for aor in [a for a in self._aors if a not in versions and a not in touched]:
            before = self.get(aor)
            del self._aors[aor]
            if before:
                changed.append((aor, before, ()))
        for aor, version in versions.items():
            before = self.get(aor)
            if aor in touched:
                if not self.put(aor, version, bindings.get(aor, ())):
                    continue
            else:
                self._aors[aor] = (version, tuple(bindings.get(aor, ())))
            if before != self.get(aor):
                changed.append((aor, before, self.get(aor)))
        return changed

    def all(self) -> list[Binding]:
        """Every cached binding."""
        return [b for _, bindings in self._aors.values() for b in bindings]

    def __len__(self) -> int:
        return sum(1 for _, bindings in self._aors.values() if bindings)
