"""The default location store: bindings in memory, a recovery file on disk.

Updates are applied in memory at once (an update of one AOR runs without an
``await`` between read and write, so it is atomic for the event loop). The
whole table is written to the recovery file after ``flush_every_changes``
changed bindings (a binding written or removed counts one), at most
``flush_every_seconds`` after the first change not yet written (``maybe_flush``,
which the server calls from its timer), and on ``close``. A crash loses at most
what those two settings allow (DESIGN.md: "nothing is lost beyond what the
configuration allows"). Writing runs in a worker thread on an immutable
snapshot, so the event loop keeps serving meanwhile, and the update that
reaches ``flush_every_changes`` starts the write without waiting for it:
its 200 does not carry the disk's fsync time (the changes that come during
a write go in the next one).

A flush appends the AORs changed since the last one to the file's journal
(see ``recovery``), so it costs in proportion to the changes, not the table;
the whole table is written again (compacted) on the first flush after
``open`` and when the journal reaches half the file's size.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from centrex.config.settings import RegistrarSettings
from centrex.registrar import recovery
from centrex.registrar.binding import Binding
from centrex.registrar.store import AorRemoval, DecisionT, LocationStore, apply_changes

logger = logging.getLogger(__name__)

_ConnectionKey = tuple[str, int]

#: The journal is compacted into the file when it reaches half the file's size,
#: or this size when the file is smaller.
MIN_COMPACT_BYTES = 256 * 1024


def _connection_key(binding: Binding) -> _ConnectionKey | None:
    cid = binding.source.connection_id
    if cid is None or not binding.source.connection_oriented:
        return None
    return (binding.server_id, cid)


class MemoryLocationStore(LocationStore):
    """Bindings in a dict keyed by AOR, saved to ``recovery_file`` (None: never saved)."""

    def __init__(
        self,
        recovery_file: Path | None,
        *,
        flush_every_changes: int = 100,
        flush_every_seconds: float = 10.0,
    ) -> None:
        self.recovery_file = recovery_file
        self.flush_every_changes = flush_every_changes
        self.flush_every_seconds = flush_every_seconds
        self._aors: dict[str, tuple[Binding, ...]] = {}
        # The earliest expiry of each AOR, so the purge scans floats, not bindings.
        self._expiry: dict[str, float] = {}
        self._by_connection: dict[_ConnectionKey, set[str]] = {}
        self._pending = 0
        self._dirty_since: float | None = None
        # AORs changed since the last flush, for the journal.
        self._dirty: set[str] = set()
        self._generation = 0
        self._compact_next = True
        self._file_bytes = 0
        self._journal_bytes = 0
        self._write_lock = asyncio.Lock()
        self._flusher: asyncio.Task[bool] | None = None
        #: How many times the recovery file was written (for tests and metrics).
        self.flush_count = 0

    @classmethod
    def from_settings(cls, settings: RegistrarSettings, data_dir: Path) -> MemoryLocationStore:
        """The store ``[registrar]`` describes, with its file in ``data_dir``."""
        return cls(
            data_dir / recovery.FILE_NAME,
            flush_every_changes=settings.recovery_every_registrations,
            flush_every_seconds=settings.recovery_every_seconds,
        )

    # -- state ----------------------------------------------------------------

    @property
    def pending_changes(self) -> int:
        """Bindings written or removed since the recovery file was last written."""
        return self._pending

    @property
    def binding_count(self) -> int:
        """How many bindings are stored (expired ones not yet purged included)."""
        return sum(len(b) for b in self._aors.values())

    def _set(self, aor: str, bindings: tuple[Binding, ...]) -> None:
        """Store ``bindings`` as all of ``aor``'s, keeping the connection index true."""
        old = self._aors.get(aor, ())
        old_keys = {k for b in old if (k := _connection_key(b)) is not None}
        new_keys = {k for b in bindings if (k := _connection_key(b)) is not None}
        for key in old_keys - new_keys:
            aors = self._by_connection.get(key)
            if aors is not None:
                aors.discard(aor)
                if not aors:
                    del self._by_connection[key]
        for key in new_keys - old_keys:
            self._by_connection.setdefault(key, set()).add(aor)
        self._dirty.add(aor)
        if bindings:
            self._aors[aor] = bindings
            self._expiry[aor] = min(b.expires_at for b in bindings)
        else:
            self._aors.pop(aor, None)
            self._expiry.pop(aor, None)

    # -- LocationStore ----------------------------------------------------------

    async def open(self, now: float) -> None:
        self._aors.clear()
        self._expiry.clear()
        self._by_connection.clear()
        self._pending = 0
        self._dirty_since = None
        self._dirty = set()
        # The first flush writes the whole table: a journal left by the last
        # run may end in a line cut short, and nothing may follow that.
        self._compact_next = True
        path = self.recovery_file
        if path is None:
            return
        try:
            table, self._generation = await asyncio.to_thread(_read, path, now)
        except recovery.RecoveryFileError as exc:
            moved = recovery.set_aside(path, now)
            logger.error(
                "recovery file unreadable, starting without registrations: %s (kept as %s)",
                exc.problem,
                moved,
            )
            return
        self._aors, self._expiry, self._by_connection = table
        logger.info("loaded %d registrations from %s", self.binding_count, path)

    async def close(self, now: float) -> None:
        await self.written()
        if self._pending:
            await self.flush(now)

    async def written(self) -> None:
        """Wait for the write an update started, if one is running."""
        if self._flusher is not None:
            await self._flusher

    async def lookup(self, aor: str) -> list[Binding]:
        return list(self._aors.get(aor, ()))

    async def update(
        self, aor: str, decide: Callable[[list[Binding]], DecisionT], now: float
    ) -> DecisionT:
        current = self._aors.get(aor, ())
        result = decide(list(current))
        changes = result.changes
        if not changes.empty:
            self._set(aor, apply_changes(current, changes))
            self._changed(changes.size, now)
            if self._pending >= self.flush_every_changes and (
                self._flusher is None or self._flusher.done()
            ):
                self._flusher = asyncio.ensure_future(self._flush_logged(now))
        return result

    async def remove_connections(
        self, server_id: str, connection_id: int | None, now: float
    ) -> list[AorRemoval]:
        if connection_id is None:
            keys = [k for k in self._by_connection if k[0] == server_id]
        else:
            keys = [(server_id, connection_id)]
        removals: list[AorRemoval] = []
        for key in keys:
            for aor in sorted(self._by_connection.get(key, ())):
                current = self._aors.get(aor, ())
                removed = tuple(b for b in current if _connection_key(b) == key)
                remaining = tuple(b for b in current if _connection_key(b) != key)
                self._set(aor, remaining)
                removals.append(AorRemoval(aor, removed, remaining))
                self._changed(len(removed), now)
        return removals

    async def purge(self, now: float) -> list[AorRemoval]:
        removals: list[AorRemoval] = []
        for aor in [aor for aor, first in self._expiry.items() if first <= now]:
            current = self._aors[aor]
            remaining = tuple(b for b in current if b.expires_at > now)
            removed = tuple(b for b in current if b.expires_at <= now)
            self._set(aor, remaining)
            removals.append(AorRemoval(aor, removed, remaining))
            self._changed(len(removed), now)
        return removals

    async def bindings(self) -> list[Binding]:
        return [b for bindings in self._aors.values() for b in bindings]

    async def maybe_flush(self, now: float) -> bool:
        since = self._dirty_since
        if since is None:
            return False
        if self._pending < self.flush_every_changes and now - since < self.flush_every_seconds:
            return False
        return await self._flush_logged(now)

    # -- the recovery file ------------------------------------------------------

    def _changed(self, count: int, now: float) -> None:
        if count:
            self._pending += count
            if self._dirty_since is None:
                self._dirty_since = now

    async def flush(self, now: float) -> None:
        """Write the recovery file now; OSError when it cannot be written.

        The snapshot is taken under the write lock, so a slower earlier write
        never replaces a newer file.
        """
        async with self._write_lock:
            pending, dirty = self._pending, self._dirty
            self._pending, self._dirty_since, self._dirty = 0, None, set()
            path = self.recovery_file
            if path is None:
                return
            compact = self._compact_next or self._journal_bytes >= max(
                self._file_bytes // 2, MIN_COMPACT_BYTES
            )
            try:
                if compact:
                    # Random, not a counter: a journal left beside a file that
                    # was lost or set aside must never match the next one.
                    generation = self._generation
                    while generation in (0, self._generation):
                        generation = int.from_bytes(os.urandom(6), "big")
                    snapshot = list(self._aors.values())
                    size = await asyncio.to_thread(_save, path, snapshot, now, generation)
                    self._generation, self._file_bytes = generation, size
                    self._journal_bytes, self._compact_next = 0, False
                else:
                    aors = self._aors
                    changes = [(aor, aors.get(aor, ())) for aor in dirty]
                    start = self._generation if self._journal_bytes == 0 else None
                    self._journal_bytes += await asyncio.to_thread(
                        recovery.append_journal, path, changes, start
                    )
            except BaseException:
                # Still pending; the timed retry comes one interval later, and
                # writes the whole table (a failed append may have left half a line).
                self._pending += pending
                self._dirty_since = now
                self._dirty |= dirty
                self._compact_next = True
                raise
            self.flush_count += 1

    async def _flush_logged(self, now: float) -> bool:
        try:
            await self.flush(now)
        except OSError as exc:
            # The bindings are safe in memory; the next timer tick tries again.
            logger.error("cannot write recovery file %s: %s", self.recovery_file, exc)
            return False
        return True


_Table = tuple[dict[str, tuple[Binding, ...]], dict[str, float], dict[_ConnectionKey, set[str]]]


def _read(path: Path, now: float) -> tuple[_Table, int]:
    """The store's tables built from recovery file ``path`` and its journal (in a
    worker thread), and the journal generation."""
    loaded, generation, _ = recovery.read(path, now)
    aors: dict[str, tuple[Binding, ...]] = {}
    expiry: dict[str, float] = {}
    by_connection: dict[_ConnectionKey, set[str]] = {}
    with recovery.gc_paused():
        for binding in loaded:
            aor = binding.aor
            have = aors.get(aor)
            if have is None:
                aors[aor] = (binding,)
                expiry[aor] = binding.expires_at
            else:
                aors[aor] = (*have, binding)
                expiry[aor] = min(expiry[aor], binding.expires_at)
            source = binding.source
            if source.connection_id is not None and source.transport != "udp":
                by_connection.setdefault((binding.server_id, source.connection_id), set()).add(aor)
    return (aors, expiry, by_connection), generation


def _save(path: Path, snapshot: list[tuple[Binding, ...]], now: float, generation: int) -> int:
    return recovery.save(path, (b for bindings in snapshot for b in bindings), now, generation)
