"""The in-memory copy of the location table that an instance answers lookups from.

Every instance holds every binding (a few hundred bytes each: a million fit in
well under a gigabyte). Its own changes are applied when they commit; the other
instances' arrive by PostgreSQL NOTIFY or by the change poll and are loaded
from the database. Each AOR carries the ``version`` of ``centrex_aor`` it was
read at, and an older read never replaces a newer one: a slow reload racing
an update of this instance cannot bring a stale AOR back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from centrex.registrar.binding import Binding


class BindingCache:
    """AOR -> (version, bindings)."""

    def __init__(self) -> None:
        self._aors: dict[str, tuple[int, tuple[Binding, ...]]] = {}

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

    def all(self) -> list[Binding]:
        """Every cached binding."""
        return [b for _, bindings in self._aors.values() for b in bindings]

    def __len__(self) -> int:
        return sum(1 for _, bindings in self._aors.values() if bindings)
