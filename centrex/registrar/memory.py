"""The default location store: bindings in memory, a recovery file on disk.

Updates are applied in memory at once (an update of one AOR runs without an
``await`` between read and write, so it is atomic for the event loop). The
whole table is written to the recovery file after ``flush_every_changes``
changed bindings (a binding written or removed counts one), at most
``flush_every_seconds`` after the first change not yet written (``maybe_flush``,
which the server calls from its timer), and on ``close``. A crash of the
process loses at most what those two settings allow (DESIGN.md: "nothing is
lost beyond what the configuration allows"); a crash of the machine at most
about two seconds more (below). A write works on an immutable snapshot; a
whole-table rewrite is encoded a slice at a time between the loop's other
work and its system calls run in the store's writer thread
(``centrex.registrar.writer``), so the event loop keeps serving meanwhile; a
journal append is one small ``write`` from the loop's thread (which a disk
throttling its writers can hold up briefly); the update that reaches
``flush_every_changes`` starts the write without waiting for it: its 200
does not carry the disk's fsync time (the changes that come during a write
go in the next one).

A flush appends the AORs changed since the last one to the file's journal
(see ``recovery``), so it costs in proportion to the changes, not the table;
the append is written from the loop's thread (into the page cache: a crash of
Centrex after it loses nothing of it) and made durable against a crash of
the machine (fsync, in the writer thread) at most once a second, at a flush
or at the server's periodic ``maybe_flush`` (``SYNC_INTERVAL_S``; so within
about two seconds: handing the thread a job costs the loop a few
milliseconds of CPU while it is busy, ``centrex.registrar.writer``);
the whole table is written again (compacted) on the first flush after
``open``, when the journal reaches the file's size, and at ``close`` (so a
clean restart reads one file, with no journal to replay).

The bindings are held packed, each AOR's as its recovery-file rows in marshal
form (``centrex.registrar.packed.PackedTable``: about 400 bytes per binding
with the indexes, where ``Binding`` objects took 1.3 KB); ``lookup`` and
``update`` unpack the one AOR they are about; a compaction encodes the AORs
as JSON, a journal append as marshal records (``recovery``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from centrex.config.settings import RegistrarSettings
from centrex.registrar import recovery
from centrex.registrar.binding import Binding, live_bindings
from centrex.registrar.packed import PackedTable, connection_key, from_row, pack_with_record
from centrex.registrar.store import AorRemoval, Changes, DecisionT, LocationStore, apply_changes
from centrex.registrar.writer import WRITE_BYTES, AtomicFile, FileWriter, Journal, SyncJob

logger: Final = logging.getLogger(__name__)

#: The journal is compacted into the file when it reaches the file's size, or
#: this size when the file is smaller. Every compaction writes each AOR once,
#: so a change costs an append and 1 / (this ratio) of an AOR in the file:
#: at half the file's size the compactions cost twice what the appends did
#: (docs/benchmarks.md); a start after a crash reads at most the file and
#: about as many bytes of journal again, one flush more at worst (a clean stop
#: compacts).
MIN_COMPACT_BYTES = 256 * 1024

#: The journal's appends are fsynced at most this often (seconds), at a flush
#: or at the next ``maybe_flush`` (about every second): a power cut loses at
#: most about two seconds more than a crash of the process does
#: (``recovery_every_registrations`` / ``_seconds``). The recovery file
#: itself is fsynced whenever it is rewritten.
SYNC_INTERVAL_S: Final = 1.0

#: A compaction encodes this many AORs per turn of the event loop (about a
#: quarter of a millisecond).
COMPACT_SLICE: Final = 32


def _nothing() -> None:
    pass


def _retrieved(future: asyncio.Future[None]) -> None:
    """Mark the outcome of a write no one waits for any more as seen."""
    if not future.cancelled():
        future.exception()


class MemoryLocationStore(LocationStore):
    """Bindings in a dict keyed by AOR, saved to ``recovery_file`` (None: never saved)."""

    def __init__(
        self,
        recovery_file: Path | None,
        *,
        flush_every_changes: int = 100,
        flush_every_seconds: float = 10.0,
        writes_file: bool = True,
    ) -> None:
        self.recovery_file = recovery_file
        #: False in every worker but the first (``centrex.workers``): the
        #: file is read at ``open`` and never written.
        self.writes_file: Final = writes_file
        self._records = recovery_file is not None and writes_file
        #: While True, nothing is written (worker 0 holds its first write
        #: until every worker has read the file).
        self.hold_writes = False
        #: Called with every change ``update`` makes, for the other workers
        #: (their ``apply_remote``); None with one process.
        self.on_change: Callable[[str, Changes, float], None] | None = None
        self.flush_every_changes = flush_every_changes
        self.flush_every_seconds = flush_every_seconds
        self._table = PackedTable()
        self._pending = 0
        self._dirty_since: float | None = None
        # AORs changed since the last flush -> their journal record, made
        # with the change (from the rows packed for the table).
        self._dirty: dict[str, bytes] = {}
        self._generation = 0
        self._compact_next = True
        self._file_bytes = 0
        self._journal_bytes = 0
        self._write_lock = asyncio.Lock()
        self._flusher: asyncio.Task[bool] | None = None
        # The write due ``flush_every_seconds`` after the first change not
        # written (the server's once-a-second ``maybe_flush`` alone made it up
        # to a second late).
        self._flush_timer: asyncio.TimerHandle | None = None
        self._writer = FileWriter("centrex-recovery-writer")
        self._journal = (
            Journal(recovery.journal_path(recovery_file))
            if recovery_file is not None and writes_file
            else None
        )
        #: How many times the recovery file was written (for tests and metrics).
        self.flush_count = 0
        self._departed: list[AorRemoval] = []
        # Journal appends not yet fsynced; an fsync running in the writer
        # thread (cleared there, with the failure it met, if any: read by
        # ``maybe_flush``); when the last one started (store time).
        self._unsynced = False
        self._syncing = False
        self._sync_failure: OSError | None = None
        self._synced_at = float("-inf")

    @classmethod
    def from_settings(
        cls, settings: RegistrarSettings, data_dir: Path, *, writes_file: bool = True
    ) -> MemoryLocationStore:
        """The store ``[registrar]`` describes, with its file in ``data_dir``."""
        return cls(
            data_dir / recovery.FILE_NAME,
            flush_every_changes=settings.recovery_every_registrations,
            flush_every_seconds=settings.recovery_every_seconds,
            writes_file=writes_file,
        )

    # -- state ----------------------------------------------------------------

    @property
    def pending_changes(self) -> int:
        """Bindings written or removed since the recovery file was last written."""
        return self._pending

    @property
    def binding_count(self) -> int:
        """How many bindings are stored (expired ones not yet purged included)."""
        return self._table.count

    def _set(self, aor: str, old: tuple[Binding, ...], new: tuple[Binding, ...]) -> None:
        """Store ``new`` as all of ``aor``'s bindings in place of ``old``."""
        if not self._records:
            self._table.set(aor, old, new)
            return
        packed, record = pack_with_record(aor, new)
        self._table.set(aor, old, new, packed)
        self._dirty[aor] = record

    # -- LocationStore ----------------------------------------------------------

    async def open(self, now: float) -> None:
        self._table = PackedTable()
        self._pending = 0
        self._dirty_since = None
        self._dirty = {}
        self._unsynced = False
        # The first flush writes the whole table: a journal left by the last
        # run may end in a record cut short, and nothing may follow that.
        self._compact_next = True
        path = self.recovery_file
        if path is None:
            return
        departed: recovery.Departed = {}
        try:
            table, self._generation, replayed = await asyncio.to_thread(
                functools.partial(
                    recovery.read_table, path, now, keep=self.writes_file, departed=departed
                )
            )
        except recovery.RecoveryFileError as exc:
            if not self.writes_file:
                logger.error(
                    "recovery file unreadable, starting without registrations: %s "
                    "(worker 0 sets it aside)",
                    exc.problem,
                )
                return
            moved = recovery.set_aside(path, now)
            logger.error(
                "recovery file unreadable, starting without registrations: %s (kept as %s)",
                exc.problem,
                moved,
            )
            return
        self._table = table
        if replayed:
            # A journal to fold into the file, at the latest at close.
            self._journal_bytes = 1
        self._departed = [
            AorRemoval(aor, tuple(from_row(r) for r in rows), ()) for aor, rows in departed.items()
        ]
        logger.info("loaded %d registrations from %s", self.binding_count, path)
        if departed:
            logger.info("%d registered user(s) expired while the server was down", len(departed))

    def take_departed(self) -> list[AorRemoval]:
        departed, self._departed = self._departed, []
        return departed

    async def close(self, now: float) -> None:
        self.hold_writes = False  # (the workers are stopping: the last write is due)
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        try:
            await self.written()
            if self._pending:
                await self.flush(now)  # an append, which needs the least room on disk
            if self._journal_bytes:  # (only ever set with a file)
                # Folded into the file, so the next start reads one file; where
                # that cannot be written (a full disk), file and journal hold it all.
                self._compact_next = True
                try:
                    await self.flush(now)
                except OSError as exc:
                    logger.warning(
                        "cannot compact recovery file %s at stop"
                        " (its journal holds the changes): %s",
                        self.recovery_file,
                        exc,
                    )
        finally:
            if self._journal is not None:
                # The stop ends with every append durable (after any fsync
                # already queued), unless a rewrite above made them moot.
                job = self._journal.sync_job() if self._unsynced else None
                if job is not None:
                    await self._writer.run(self._sync, job)
                    self._unsynced = False
                else:
                    await self.synced()
                self._take_sync_failure(now)
                self._journal.close()

    async def written(self) -> None:
        """Wait for the write an update started, if one is running."""
        if self._flusher is not None:
            await self._flusher

    async def lookup(self, aor: str) -> list[Binding]:
        return list(self._table.get(aor))

    def live(self, aor: str, now: float) -> tuple[Binding, ...]:
        return tuple(live_bindings(self._table.get(aor), now))

    async def update(
        self, aor: str, decide: Callable[[list[Binding]], DecisionT], now: float
    ) -> DecisionT:
        current = self._table.get(aor)
        result = decide(list(current))
        changes = result.changes
        if not changes.empty:
            self._set(aor, current, apply_changes(current, changes))
            self._changed(changes.size, now)
            if self.on_change is not None:
                self.on_change(aor, changes, now)
            self._flush_if_due(now)
        return result

    async def remove_connections(
        self, server_id: str, connection_id: int | None, now: float
    ) -> list[AorRemoval]:
        table = self._table
        if connection_id is None:
            keys = table.connections(server_id)
        else:
            keys = [(server_id, connection_id)]
        removals: list[AorRemoval] = []
        for key in keys:
            for aor in table.on_connection(key):
                current = table.get(aor)
                removed = tuple(b for b in current if connection_key(b) == key)
                remaining = tuple(b for b in current if connection_key(b) != key)
                self._set(aor, current, remaining)
                removals.append(AorRemoval(aor, removed, remaining))
                self._changed(len(removed), now)
        return removals

    def apply_remote(self, aor: str, changes: Changes, now: float) -> None:
        """Apply a change another worker made (``on_change`` there), and tell
        ``on_remote_change`` (the registrar's events) as a shared store does."""
        current = self._table.get(aor)
        if changes.put and current:
            # A put that crossed a newer one of the same binding (the phone
            # moved to another worker) is not applied over it.
            stored = {b.id: b.updated_at for b in current}
            put = tuple(b for b in changes.put if stored.get(b.id, b.updated_at) <= b.updated_at)
            if len(put) != len(changes.put):
                changes = Changes(put, changes.remove)
        new = apply_changes(current, changes)
        self._set(aor, current, new)
        self._changed(changes.size, now)
        self._flush_if_due(now)
        report = self.on_remote_change
        if report is not None:
            report(aor, current, new, now)

    async def purge(self, now: float) -> list[AorRemoval]:
        removals: list[AorRemoval] = []
        for aor, current in self._table.expired(now):
            remaining = tuple(b for b in current if b.expires_at > now)
            removed = tuple(b for b in current if b.expires_at <= now)
            self._set(aor, current, remaining)
            removals.append(AorRemoval(aor, removed, remaining))
            self._changed(len(removed), now)
        return removals

    async def bindings(self) -> list[Binding]:
        return list(self._table.bindings())

    async def synced(self) -> None:
        """Wait for the journal's fsync that is running, if one is."""
        if self._syncing:
            await self._writer.run(_nothing)  # (the thread takes jobs in order)

    async def maybe_flush(self, now: float) -> bool:
        self._take_sync_failure(now)
        since = self._dirty_since
        flushed = False
        if since is not None and (
            self._pending >= self.flush_every_changes or now - since >= self.flush_every_seconds
        ):
            flushed = await self._flush_logged(now)
        self._sync_if_due(now)
        return flushed

    # -- the recovery file ------------------------------------------------------

    def _flush_if_due(self, now: float) -> None:
        """Start a write, not waited for, once ``flush_every_changes`` are
        pending (its 200 does not carry the disk's time)."""
        if (
            self._pending >= self.flush_every_changes
            and not self.hold_writes
            and (self._flusher is None or self._flusher.done())
        ):
            self._flusher = asyncio.ensure_future(self._flush_logged(now))

    def _changed(self, count: int, now: float) -> None:
        if count and self.writes_file:
            self._pending += count
            if self._dirty_since is None:
                self._dirty_since = now
                self._arm_flush_timer(now)

    def _arm_flush_timer(self, since: float) -> None:
        if self._flush_timer is not None or self.recovery_file is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (no loop: the next maybe_flush writes it)
            return
        self._flush_timer = loop.call_later(
            self.flush_every_seconds, self._flush_when_due, since + self.flush_every_seconds
        )

    def _flush_when_due(self, now: float) -> None:
        """The timer of ``_arm_flush_timer``: write what has waited since then
        (``now`` on the store's clock: the change's time plus the interval)."""
        self._flush_timer = None
        if (
            self._dirty_since is not None
            and not self.hold_writes
            and (self._flusher is None or self._flusher.done())
        ):
            self._flusher = asyncio.ensure_future(self._flush_logged(now))

    async def flush(self, now: float) -> None:
        """Write the recovery file now; OSError when it cannot be written.

        The snapshot is taken under the write lock, so a slower earlier write
        never replaces a newer file.
        """
        if self.hold_writes:
            return
        async with self._write_lock:
            pending, dirty = self._pending, self._dirty
            self._pending, self._dirty_since, self._dirty = 0, None, {}
            path = self.recovery_file
            if path is None or not self.writes_file:
                return
            compact = self._compact_next or self._journal_bytes >= max(
                self._file_bytes, MIN_COMPACT_BYTES
            )
            try:
                if compact:
                    # Random, not a counter: a journal left beside a file that
                    # was lost or set aside must never match the next one.
                    generation = self._generation
                    while generation in (0, self._generation):
                        generation = int.from_bytes(os.urandom(6), "big")
                    size = await self._compact(path, now, generation)
                    self._generation, self._file_bytes = generation, size
                    self._journal_bytes, self._compact_next = 0, False
                    self._unsynced = False  # (the rewritten file holds it all)
                else:
                    start = self._generation if self._journal_bytes == 0 else None
                    # Encoded with each change, framed and written here (one
                    # write), fsynced later in the writer thread.
                    data = recovery.frame_journal_records(list(dirty.values()), start)
                    assert self._journal is not None  # (set with the file)
                    self._journal_bytes += self._journal.append(data, start is not None)
                    self._unsynced = True
            except BaseException:
                # Still pending; the timed retry comes one interval later, and
                # writes the whole table (a failed append may have left half a
                # record), so the changed AORs' records are not kept.
                self._pending += pending
                self._dirty_since = now
                self._compact_next = True
                raise
            self.flush_count += 1
            self._sync_if_due(now)

    def _sync_if_due(self, now: float) -> None:
        """Start an fsync of the journal's appends not yet durable, in the
        writer thread and not waited for, when none has started for
        ``SYNC_INTERVAL_S``; one that cannot start is logged and tried again
        at the next flush or ``maybe_flush``."""
        if not self._unsynced or self._syncing or 0 <= now - self._synced_at < SYNC_INTERVAL_S:
            return
        assert self._journal is not None  # (appends were made)
        job = None
        try:
            job = self._journal.sync_job()
            if job is not None:
                self._writer.run(self._sync, job).add_done_callback(_retrieved)
        except (OSError, RuntimeError) as exc:  # no descriptor, no thread
            if job is not None:
                job.discard()
            logger.error("cannot fsync recovery journal of %s: %s", self.recovery_file, exc)
            return
        self._unsynced = False
        if job is not None:
            self._syncing = True
            self._synced_at = now

    def _sync(self, job: SyncJob) -> None:
        """Run fsync ``job`` (in the writer thread); a failure is left for
        ``maybe_flush`` to report and make good (the loop's thread)."""
        try:
            job()
        except OSError as exc:
            self._sync_failure = exc
        finally:
            self._syncing = False

    def _take_sync_failure(self, now: float) -> None:
        """Report an fsync that failed, and have the next flush rewrite the
        whole file (fsynced) at once: the appends it was for may be lost to
        a crash of the machine (after a failed fsync Linux may mark their
        pages clean, so fsyncing again would not tell)."""
        failure, self._sync_failure = self._sync_failure, None
        if failure is None:
            return
        logger.error(
            "cannot fsync recovery journal of %s: %s (the whole file is written again)",
            self.recovery_file,
            failure,
        )
        self._compact_next = True
        if self._dirty_since is None:
            self._dirty_since = now - self.flush_every_seconds  # due now

    async def _compact(self, path: Path, now: float, generation: int) -> int:
        """Write the whole table to ``path`` (``recovery.save_packed``'s file);
        its size.

        Encoded here, in the loop's thread, ``COMPACT_SLICE`` AORs per turn
        of the loop, and handed to the writer thread ``WRITE_BYTES``
        at a time: a thread encoding it would trade the GIL with the loop
        after every slice (docs/benchmarks.md).
        """
        aors, values = self._table.snapshot()
        file = AtomicFile(path)
        run = self._writer.run
        writing: asyncio.Future[None] | None = None
        try:
            await run(file.open)
            parts: list[bytes] = []
            held = 0
            pieces = recovery.file_pieces(zip(aors, values, strict=True), now, generation)
            for count, piece in enumerate(pieces):  # the first line, then one per AOR
                parts.append(piece)
                held += len(piece)
                if held >= WRITE_BYTES:
                    if writing is not None:
                        await writing
                    writing = run(file.write, b"".join(parts))
                    parts, held = [], 0
                if count and count % COMPACT_SLICE == 0:
                    await asyncio.sleep(0)
            if writing is not None:
                await writing
            writing = None
            await run(file.write, b"".join(parts))
            return await run(file.commit)
        except BaseException:
            if writing is not None:
                writing.add_done_callback(_retrieved)
            try:
                run(file.discard)  # after the writes queued before it
            except RuntimeError:  # no running loop (a coroutine closed after its loop)
                file.discard()
            raise

    async def _flush_logged(self, now: float) -> bool:
        try:
            await self.flush(now)
        except OSError as exc:
            # The bindings are safe in memory; the next timer tick tries again.
            logger.error("cannot write recovery file %s: %s", self.recovery_file, exc)
            return False
        return True
