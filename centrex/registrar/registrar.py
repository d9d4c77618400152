"""The registrar service: REGISTER in, response out (RFC 3261 10.3).

``Registrar`` composes the pure pieces (``request`` reads and checks the
REGISTER, ``rules.decide`` computes the new bindings) with a ``LocationStore``
that persists them, and tells listeners when an AOR becomes available or
unavailable, and when the contacts of a watched AOR change (``events``). It
opens no socket and reads no clock: the server passes the transport
``Source`` and the wall-clock time ``now`` with every call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Final

from centrex.config.settings import RegistrarSettings
from centrex.directory import Directory
from centrex.registrar.aor import aor_of, normalize_domain
from centrex.registrar.binding import Binding, Source, live_bindings
from centrex.registrar.events import AorEvent, EventListeners, EventReason, contact_change
from centrex.registrar.request import (
    RegisterRequest,
    Rejection,
    Target,
    read_register,
    read_target,
)
from centrex.registrar.rules import Outcome, decide
from centrex.registrar.store import AorRemoval, LocationStore, StoreDataError, error_line
from centrex.sip.build import make_response
from centrex.sip.fields import quote_string
from centrex.sip.ids import token_hex
from centrex.sip.message import Request, Response
from centrex.sip.uri import URI

logger: Final = logging.getLogger(__name__)


def _random_id() -> str:
    return token_hex(8)


def _random_tag() -> str:
    return token_hex(6)


def render_q(q: float) -> str:
    """A q-value as RFC 3261 20.10 writes it: ``1``, ``0.5``, ``0.125``."""
    return f"{q:.3f}".rstrip("0").rstrip(".")


def render_contact(binding: Binding, now: float) -> str:
    """The Contact value a 200 lists for ``binding`` (RFC 3261 10.3 step 8).

    ``<uri>;expires=N`` with the remaining seconds, plus ``q`` and the RFC 5626
    ``+sip.instance`` / ``reg-id`` when the binding has them.
    """
    text = f"<{binding.contact}>;expires={binding.remaining(now)}"
    if binding.q is not None:
        text += f";q={render_q(binding.q)}"
    if binding.instance is not None:
        text += f";+sip.instance={quote_string(binding.instance)}"
        if binding.reg_id is not None:
            text += f";reg-id={binding.reg_id}"
    return text


_last_date: tuple[int, str] = (-1, "")


def _date_header(now: float) -> str:
    """The Date of a 200 (RFC 3261 10.3 step 8, 20.17), rendered once a second."""
    global _last_date
    second = int(now)
    if _last_date[0] != second:
        _last_date = (second, formatdate(second, usegmt=True))
    return _last_date[1]


class Registrar:
    """A registrar for ``domains`` over ``store`` (RFC 3261 10.3).

    ``directory`` says who may register (a disabled user never, an unknown one
    when ``settings.allow_unknown_users``); ``server_id`` marks the bindings
    this server instance holds connections for; ``alias`` maps another host
    (an address of this server) to the served domain it stands for. Listen to AOR availability
    with ``registrar.listeners.add(callback)``: events of kind "available" and
    "unavailable", and "changed" for the AORs in ``listeners.watched`` (a
    listener that knows only the first two ignores it).
    """

    def __init__(
        self,
        settings: RegistrarSettings,
        store: LocationStore,
        *,
        domains: Iterable[str],
        directory: Directory,
        server_id: str,
        alias: Callable[[str], str | None] | None = None,
        new_id: Callable[[], str] = _random_id,
        new_tag: Callable[[], str] = _random_tag,
    ) -> None:
        self.settings = settings
        self.store = store
        self.domains = frozenset(normalize_domain(d) for d in domains)
        if not self.domains:
            raise ValueError("a registrar needs at least one domain")
        self.directory = directory
        self.server_id = server_id
        self.alias = alias
        #: Retry-After of the 503 sent when the store cannot commit a change.
        self.retry_after_s = 30
        self.listeners = EventListeners()
        self._new_id = new_id
        self._new_tag = new_tag
        self._last_purge: float | None = None
        self._purge_failed = False  # (a failed purge logged with its traceback once)
        self._refusals_logged: set[str] = set()

    # -- helpers for the rest of the server -------------------------------------

    def aor_of(self, uri: URI | str) -> str | None:
        """The canonical AOR of ``uri`` under this registrar's case rule (``aor.aor_of``)."""
        return aor_of(uri, case_sensitive=self.settings.case_sensitive)

    def serves(self, host: str) -> bool:
        """True when ``host`` is one of the served domains."""
        return normalize_domain(host) in self.domains

    # -- life cycle ---------------------------------------------------------------

    async def start(self, now: float) -> None:
        """Open the store. Bindings this server held over connections are gone
        with those connections (a restart closes them all), so they are removed.
        Both, and the users whose bindings expired while the server was down,
        are told to the listeners (the server holds the events until its
        listeners are ready: ``listeners.pause``)."""
        await self.store.open(now)
        self.store.on_remote_change = self._remote_change
        self._last_purge = now
        # Users whose bindings expired while the server was down: their
        # watchers were told they came, and must hear that they went.
        self._emit_removals(self.store.take_departed(), "expired", now)
        if self.settings.remove_on_connection_close:
            removals = await self.store.remove_connections(self.server_id, None, now)
            self._emit_removals(removals, "connection_closed", now)

    async def stop(self, now: float) -> None:
        """Persist the store and deliver the events still pending."""
        await self.store.close(now)
        await self.listeners.drain()

    async def maintain(self, now: float) -> None:
        """The periodic work, for the server to call about every second: the
        purge every ``purge_interval_s`` (when ``purge_expired``) and the
        store's timed write of its recovery file."""
        settings = self.settings
        if settings.purge_expired and (
            self._last_purge is None or now - self._last_purge >= settings.purge_interval_s
        ):
            self._last_purge = now
            # A shared store whose database is lost has said so once: the
            # purge waits for it, without a traceback every interval.
            if self.store.available:
                try:
                    await self.purge(now)
                except Exception as exc:
                    # With its traceback the first time (a bug shows where it
                    # is), in one line after that.
                    logger.error(
                        "purge of expired registrations failed: %s (tried again in %d s)",
                        error_line(exc),
                        settings.purge_interval_s,
                        exc_info=not self._purge_failed or logger.isEnabledFor(logging.DEBUG),
                    )
                    self._purge_failed = True
        await self.store.maybe_flush(now)

    # -- the location service -----------------------------------------------------

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of canonical ``aor``: q descending, most recent first."""
        return live_bindings(await self.store.lookup(aor), now)

    async def connection_closed(self, connection_id: int, now: float) -> int:
        """Remove the bindings that came over connection ``connection_id`` of
        this server (when ``remove_on_connection_close``); returns how many."""
        if not self.settings.remove_on_connection_close:
            return 0
        try:
            removals = await self.store.remove_connections(self.server_id, connection_id, now)
        except Exception as exc:  # (a shared store that is down: its purge removes them later)
            logger.error(
                "cannot remove the bindings of closed connection %d: %s",
                connection_id,
                error_line(exc),
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            return 0
        self._emit_removals(removals, "connection_closed", now)
        return sum(len(r.removed) for r in removals)

    async def purge(self, now: float) -> int:
        """Remove every binding expired at ``now``; returns how many."""
        removals = await self.store.purge(now)
        self._emit_removals(removals, "purged", now)
        return sum(len(r.removed) for r in removals)

    # -- REGISTER -------------------------------------------------------------------

    async def handle(
        self, request: Request, source: Source, now: float, *, identity: str | None = None
    ) -> Response:
        """Answer a REGISTER (RFC 3261 10.3).

        ``identity`` is the user name the authentication module verified, if
        it ran (10.3 step 3); a REGISTER for another user's AOR is then refused
        (step 4). The response is built after the store has committed.
        """
        if request.method != "REGISTER":
            return self._respond(request, 405, headers=(("Allow", "REGISTER"),))
        try:
            target = read_target(
                request,
                self.domains,
                case_sensitive=self.settings.case_sensitive,
                alias=self.alias,
            )
            self._authorize(target, identity)
            reg = read_register(request, target, source, self.settings)
        except Rejection as rejection:
            return self._respond(request, rejection.status, rejection.reason, rejection.headers)
        if reg.is_query:
            bindings = await self.lookup(reg.aor, now)
            return self._ok(request, reg, bindings, now)
        try:
            outcome = await self.store.update(
                reg.aor, lambda current: self._decide(reg, current, now), now
            )
        except StoreDataError as exc:
            # Not an outage: the store is fine, this change's data was refused.
            self._log_refused(reg.aor, exc)
            return self._respond(request, 500, "Binding could not be stored")
        except Exception as failure:
            # 10.3 step 7: a failed commit fails the request; the store applied nothing.
            if self.store.available:
                # One line (the store says when it finds the database lost);
                # the traceback with debug logging.
                logger.error(
                    "location store failed to update %s: %s",
                    reg.aor,
                    error_line(failure),
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
            else:  # the store has logged the outage once; not a traceback per REGISTER
                logger.debug("location store unavailable: 503 for %s", reg.aor)
            # Never a 200 for a binding that was not stored; the phone retries.
            retry = (("Retry-After", str(self.retry_after_s)),)
            return self._respond(request, 503, "Location service unavailable", retry)
        if not outcome.ok:
            return self._respond(request, outcome.status, outcome.reason)
        self._emit_update(reg.aor, outcome, now)
        return self._ok(request, reg, outcome.bindings, now)

    def _log_refused(self, aor: str, exc: StoreDataError) -> None:
        """Log a refused change: with its traceback the first time a kind of
        refusal is seen, in one line after that (a phone retries every minute)."""
        kind = str(exc)
        if kind in self._refusals_logged:
            logger.error("%s: 500 for %s", kind, aor)
            return
        if len(self._refusals_logged) < 100:
            self._refusals_logged.add(kind)
        logger.exception("%s: 500 for %s", kind, aor)

    def _decide(self, reg: RegisterRequest, current: list[Binding], now: float) -> Outcome:
        return decide(
            reg, current, now, self.settings, server_id=self.server_id, new_id=self._new_id
        )

    def _authorize(self, target: Target, identity: str | None) -> None:
        """RFC 3261 10.3 step 4, with the directory as the list of users."""
        user = target.user or ""
        entry = self.directory.find(user, include_disabled=True)
        if entry is not None and not entry.enabled:
            raise Rejection(403, "User disabled")
        if entry is None and not self.settings.allow_unknown_users:
            # 10.3 step 3: an address of record not valid for the domain.
            raise Rejection(404, "Not Found")
        if identity is not None and self.directory.key(identity) != self.directory.key(user):
            raise Rejection(403, "Not allowed to register this address")

    def _respond(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        return make_response(request, status, reason, to_tag=self._new_tag(), headers=list(headers))

    def _ok(
        self, request: Request, reg: RegisterRequest, bindings: Iterable[Binding], now: float
    ) -> Response:
        """The 200 of 10.3 step 8: every current binding with its remaining expires."""
        headers = [("Contact", render_contact(b, now)) for b in bindings]
        if reg.path_supported:
            # RFC 3327 5.3: the Path of the REGISTER goes back to a UA that supports it.
            headers.extend(("Path", value) for value in reg.path)
        headers.append(("Date", _date_header(now)))
        return self._respond(request, 200, None, headers)

    # -- events -------------------------------------------------------------------------

    def _emit_update(self, aor: str, outcome: Outcome, now: float) -> None:
        before, after = outcome.before, outcome.bindings
        event: AorEvent | None = None
        if not before and after:
            event = AorEvent("available", aor, "registered", now, after)
        elif before and not after:
            reason: EventReason = (
                "unregistered" if any(b.expires_at > now for b in before) else "expired"
            )
            event = AorEvent("unavailable", aor, reason, now, gone=before)
        elif after and aor in self.listeners.watched:  # (nearly always not: one lookup)
            self._emit_contact_changes(aor, outcome, now)
        if event is not None:
            logger.info("%s aor=%s reason=%s", event.kind, aor, event.reason)
            self.listeners.emit([event])

    def _emit_contact_changes(self, aor: str, outcome: Outcome, now: float) -> None:
        """The contacts a REGISTER added or removed while ``aor`` stays
        registered, for its reg watchers: the evicted ones (``max_contacts``)
        in an event of their own, as they went for another reason."""
        before, evicted = outcome.before, outcome.evicted
        if evicted:
            pushed = {b.id for b in evicted}
            before = tuple(b for b in before if b.id not in pushed)
        found = [
            contact_change(aor, before, outcome.bindings, "unregistered", now),
            contact_change(aor, evicted, (), "evicted", now) if evicted else None,
        ]
        self.listeners.emit([event for event in found if event is not None])

    def _remote_change(
        self, aor: str, before: tuple[Binding, ...], after: tuple[Binding, ...], now: float
    ) -> None:
        """Another server changed ``aor`` (shared store): the same events as a
        change made here, so presence watchers of this server hear of it
        (the contacts that went while others stay count as unregistered, or
        expired when they had).

        As for a change made here, the events follow the *stored* bindings
        (events.py): unavailable when the last one goes, whether it was still
        live (an unregister) or had expired (another instance's purge: only
        the instance winning a purge removes the rows, every other one learns
        of it here, after the bindings expired)."""
        event: AorEvent | None = None
        if before and not after:
            live_before = any(b.expires_at > now for b in before)
            reason: EventReason = "unregistered" if live_before else "purged"
            event = AorEvent("unavailable", aor, reason, now, gone=before)
        elif not before:
            live = live_bindings(after, now)
            if live:
                event = AorEvent("available", aor, "registered", now, tuple(live))
        elif aor in self.listeners.watched:
            event = contact_change(aor, before, after, "unregistered", now)
        if event is not None:
            logger.info("%s aor=%s reason=%s (another instance)", event.kind, aor, event.reason)
            self.listeners.emit([event])

    def _emit_removals(self, removals: list[AorRemoval], reason: EventReason, now: float) -> None:
        """Unavailable events of the AORs left without bindings; changed
        events of the watched ones (``listeners.watched``) that keep some."""
        watched = self.listeners.watched
        events: list[AorEvent] = []
        for r in removals:
            if not r.removed:
                continue
            if not r.remaining:
                logger.info("unavailable aor=%s reason=%s", r.aor, reason)
                events.append(AorEvent("unavailable", r.aor, reason, now, gone=r.removed))
            elif r.aor in watched:
                events.append(AorEvent("changed", r.aor, reason, now, gone=r.removed))
        self.listeners.emit(events)
