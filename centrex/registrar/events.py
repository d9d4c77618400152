"""Registration events for the rest of the system (presence, the admin, plug-ins).

An AOR becomes *available* when its first binding is stored and *unavailable*
when its last stored binding goes (the registrar events and the presence
package of RFC 3856 build on exactly these transitions). The contacts that
come and go in between (a second phone, one of two unregistering or
expiring) are *changed* events, made only for the AORs in
``EventListeners.watched``: the reg package of RFC 3680 reports every
contact's change, and only its watchers need them, so a REGISTER of an AOR
nobody watches costs one set lookup more (``contact_change``). Listeners
are called from the event loop soon after the change, never inside the
REGISTER handling, so a slow or failing listener cannot delay or break its
response; ``flush`` delivers them sooner, before a SUBSCRIBE is handled (a slow
listener then delays that SUBSCRIBE). A listener may be a plain function or a
coroutine function.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from centrex.registrar.binding import Binding

logger: Final = logging.getLogger(__name__)

EventKind = Literal["available", "unavailable", "changed"]
#: Why the event happened: a REGISTER added the first binding ("registered") or
#: removed the last one ("unregistered"); a REGISTER found only expired bindings
#: and cleared them ("expired"); the purge removed them ("purged"); the
#: connection they were bound to closed ("connection_closed"); ``max_contacts``
#: pushed them out for a new one ("evicted", of a "changed" event only).
EventReason = Literal[
    "registered", "unregistered", "expired", "purged", "connection_closed", "evicted"
]


@dataclass(frozen=True, slots=True)
class AorEvent:
    """``aor`` became available or unavailable, or its contacts changed, at
    ``at`` (wall-clock seconds).

    ``bindings`` are the AOR's live bindings after the change (none for
    "unavailable"), of a "changed" event only the bindings that came;
    ``gone`` the bindings that went (what a reginfo NOTIFY reports
    terminated, RFC 3680 5.1): those of ``reason``, and any that had expired
    (``expires_at`` not after ``at``) whatever the reason.
    """

    kind: EventKind
    aor: str
    reason: EventReason
    at: float
    bindings: tuple[Binding, ...] = ()
    gone: tuple[Binding, ...] = ()

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        kind: EventKind,
        aor: str,
        reason: EventReason,
        at: float,
        bindings: tuple[Binding, ...] = (),
        gone: tuple[Binding, ...] = (),
    ) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "aor", aor)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "bindings", bindings)
        object.__setattr__(self, "gone", gone)


Listener = Callable[[AorEvent], Awaitable[None] | None]


def contact_change(
    aor: str,
    before: tuple[Binding, ...],
    after: tuple[Binding, ...],
    reason: EventReason,
    now: float,
) -> AorEvent | None:
    """The "changed" event of an AOR that had bindings (``before``, stored) and
    still has some (``after``): the live ones that came, the ones that went
    (by binding id: a refresh keeps its id and is no change), with
    ``reason`` when some went, else "registered"; None when none came or
    went."""
    kept = {b.id for b in after}
    known = {b.id for b in before}
    came = tuple(b for b in after if b.id not in known and b.expires_at > now)
    gone = tuple(b for b in before if b.id not in kept)
    if not came and not gone:
        return None
    return AorEvent("changed", aor, reason if gone else "registered", now, came, gone)


class EventListeners:
    """The listener list: ``add`` / ``remove`` listeners, ``emit`` events.

    ``watched`` holds the AORs whose every contact change a listener wants
    ("changed" events; presence keeps there the AORs with reg watchers):
    the registrar looks each changed AOR up in it, so it stays a set.
    """

    def __init__(self) -> None:
        self.watched: set[str] = set()
        self._listeners: list[Listener] = []
        self._pending: deque[AorEvent] = deque()  # emitted, not delivered yet
        self._scheduled = False  # a _deliver_pending callback is due
        self._paused = False  # (see pause)
        self._tasks: set[asyncio.Task[None]] = set()

    def pause(self) -> None:
        """Hold every event emitted from now until ``resume``: at start, the
        listeners (presence) are not ready before the store has been read, and
        the events of that read (bindings gone while the server was down) must
        wait for them."""
        self._paused = True

    def resume(self) -> None:
        """Deliver what ``pause`` held, as ``emit`` would have."""
        self._paused = False
        if self._pending and not self._scheduled:
            asyncio.get_running_loop().call_soon(self._deliver_pending)
            self._scheduled = True

    def add(self, listener: Listener) -> None:
        """Call ``listener`` with every later event."""
        self._listeners.append(listener)

    def remove(self, listener: Listener) -> None:
        """Stop calling ``listener``; ValueError when it was never added."""
        self._listeners.remove(listener)

    def __len__(self) -> int:
        return len(self._listeners)

    def emit(self, events: list[AorEvent]) -> None:
        """Deliver ``events`` in order once the code that emitted them has
        returned to the event loop (or at the next ``flush``, if that comes first).

        One loop callback delivers every event emitted before it runs: the
        events of one turn (a burst of REGISTERs) cost the loop one callback,
        and one look-up of the running loop (a ``getpid`` system call on 3.11).
        """
        if not events or not self._listeners:
            return
        loop = asyncio.get_running_loop()  # (first: outside a loop, nothing changes)
        self._pending.extend(events)
        if not self._scheduled and not self._paused:
            loop.call_soon(self._deliver_pending)
            self._scheduled = True

    def flush(self) -> None:
        """Deliver now, in order, every event emitted and not delivered yet.

        For a request that must see every change answered before it arrived:
        a SUBSCRIBE's first NOTIFY lists a user whose REGISTER got its 200
        first, even when both were read in the same turn of the loop."""
        while self._pending and not self._paused:
            self._deliver(self._pending.popleft())

    def _deliver_pending(self) -> None:
        self._scheduled = False
        try:
            # Those pending now: what a listener emits meanwhile has its own callback.
            for _ in range(len(self._pending)):
                if not self._pending:  # (a listener may have flushed them)
                    break
                self._deliver(self._pending.popleft())
        finally:
            if self._pending and not self._scheduled:
                # A listener raised past _deliver (a BaseException): the rest
                # still go, on a callback of their own.
                asyncio.get_running_loop().call_soon(self._deliver_pending)
                self._scheduled = True

    def _deliver(self, event: AorEvent) -> None:
        for listener in list(self._listeners):
            try:
                result = listener(event)
            except Exception:
                logger.exception("registration event listener %r failed", listener)
                continue
            if result is not None and inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("registration event listener failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every emitted event has reached every listener (and the
        coroutine listeners have finished): for shutdown and tests."""
        while self._scheduled or self._tasks:
            if self._tasks:
                await asyncio.wait(list(self._tasks))
            else:
                await asyncio.sleep(0)
