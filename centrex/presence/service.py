"""The presence service on the event loop: the glue between the server and the notifier.

``SubscriptionTable`` decides (sans-IO); ``PresenceService`` does what it asks
with the server's own machinery, so that wiring presence in is a few lines:

- A SUBSCRIBE the proxy hands over (``is_for_registrar``) is answered on its
  server transaction; the NOTIFYs that follow go out in non-INVITE client
  transactions (RFC 3261 17.1.2) with our Via, to where the SUBSCRIBE came
  from (RFC 3581 symmetric response routing, the NAT-safe choice the
  registrar makes for INVITEs too) or, when the dialog has a route set, to
  its first hop resolved as RFC 3263 says (RFC 3261 12.2.1.1).
- The transaction layer's outcomes of those NOTIFYs come back through
  ``owns`` / ``on_response`` / ``on_timeout`` / ``on_transport_error``
  (the server's ``_drain`` routes them here) and feed
  ``SubscriptionTable.notify_result``; whatever that releases is sent.
- The registrar's ``AorEvent``s arrive through ``on_aor_event``. The
  registrar already delivers them on a later loop turn than the REGISTER's
  response; here one event costs the table's work for the watchers of one
  domain or AOR, and NOTIFYs beyond ``batch`` go through an outbox drained
  ``batch`` at a time with ``await asyncio.sleep(0)`` in between, so a
  fan-out to thousands never holds the loop for long. The batch is small
  (``BATCH``): a REGISTER that arrives while a hundred subscribers are being
  told waits for one batch, not for all of them.
- Held NOTIFYs (the throttle) are released by a timer at the table's
  ``next_release``, again about a batch per turn of the loop.
- ``tick`` (once a second) expires subscriptions, counts NOTIFYs left
  unanswered as timed out and writes the recovery file when the table
  changed; ``stop`` writes it once more.

Which SUBSCRIBEs are ours (``is_for_registrar``): Centrex is the notifier
for every package it serves from registration state, and only for those.

1. Request-URI user part equal to ``[registrar] name`` (case-insensitive):
   ours whatever the Event. That name is the registrar's address, so no
   phone can be behind it: the registrar events are subscribed there, our
   Contact in every subscription's dialog is that name at the server's own
   address (so every in-dialog refresh of any of our subscriptions comes
   back to it, to this server), and an unknown package gets our 489
   with Allow-Events rather than a 404 from the proxy. This holds even with
   ``presence_events = false`` (then every package is answered 489).
2. ``Event: reg`` (RFC 3680) or ``Event: presence`` (RFC 3856) to a user of
   a served domain, when the standard packages are on: ours, as the
   registrar and the presence server of the domain.
3. Anything else (``dialog``, ``message-summary``, ``presence.winfo``, the
   registrar event names sent to a user rather than to the registrar, ...):
   not ours; the proxy forwards it to the user's phones.

Who may subscribe (``may_subscribe``, checked by the caller; ``answer_subscribe``
does it all for the proxy): a user of the domain. That is a subscriber whose
digest credentials were verified for the From user, or, without credentials
(authentication off, a trusted peer), a From user listed in the directory
or with at least one registration. A SUBSCRIBE inside a dialog of ours (not
challenged) is let through to the table, which answers 481 to an unknown
dialog and 403 to another From than the dialog's subscriber. A user
disabled in the directory never may. Anyone else gets 403. Any other
request in a dialog with the registrar's own URI gets 481: the server holds
no dialogs there but its subscriptions.

Clocks: the table, the recovery file and ``now`` arguments use wall-clock
seconds (``wall_clock``), as the registrar does, so that expiry times
survive a restart; the transaction layer runs on ``clock`` (loop time).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Final

from centrex.directory import Directory
from centrex.presence import recovery
from centrex.presence.dialog import Notify, Subscription, Watcher, watcher_of
from centrex.presence.settings import PRESENCE_EVENT, REG_EVENT, PresenceSettings
from centrex.presence.subscribe import Rejection, parse_event
from centrex.presence.subscriptions import SubscriptionTable
from centrex.registrar.aor import aor_host, aor_of, aor_user
from centrex.registrar.binding import Binding, Source
from centrex.registrar.events import AorEvent
from centrex.registrar.recovery import (
    RecoveryFileError,
    gc_paused,
    set_aside,
    write_atomically,
)
from centrex.sip.build import make_response
from centrex.sip.errors import ParseError
from centrex.sip.ids import token_hex
from centrex.sip.message import Request, Response
from centrex.sip.uri import SipURI, parse_uri, unescape
from centrex.transaction.events import (
    Output,
    ResponseEvent,
    Terminated,
    TimeoutEvent,
    TransportErrorEvent,
)
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.transaction import ClientTransaction, ServerTransaction, Transaction
from centrex.transport.address import Peer
from centrex.workers.frames import worker_paths

__all__ = [
    "BATCH",
    "BRANCH_PREFIX",
    "PresenceService",
    "load_watchers",
    "peer_of",
]

logger: Final = logging.getLogger(__name__)

#: How the branch of every NOTIFY we send starts: the RFC 3261 magic cookie
#: and a mark of our own, distinct from the proxy's ``z9hG4bKcx`` branches, so
#: ``owns`` recognises our transactions and loop detection never mistakes one.
BRANCH_PREFIX: Final = "z9hG4bKpn"

#: How many NOTIFYs are sent, at most, in one turn of the event loop. Each
#: costs a system call (about 0.1-0.2 ms here): eight keep a turn around a
#: millisecond, so whatever else arrives meanwhile is not held up for long.
BATCH = 8

#: The status a NOTIFY counts with when it could not be sent at all (no
#: route to its next hop, no transaction): a failure like any other.
_UNSENDABLE: Final = 503


def peer_of(source: Source) -> Peer:
    """The transport's ``Peer`` for a registrar ``Source`` (same address and connection)."""
    return Peer(source.transport, source.host, source.port, source.connection_id)


def load_watchers(data_dir: Path, now: float) -> list[Watcher]:
    """The watchers in ``data_dir``'s recovery file still live at ``now``, oldest
    first, for ``centrex subscriptions`` (``Watcher.as_row()`` gives a mapping).

    No file: no watchers. An unreadable one raises ``RecoveryFileError``.
    The file is as fresh as the server's last save (about once a second).
    With several workers each keeps its own file (``worker_path``); all are read.
    """
    subs = []
    for path in worker_paths(data_dir / recovery.FILE_NAME):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        subs.extend(recovery.decode(data, now=now, path=path, cseq_gap=0))
    subs.sort(key=lambda sub: sub.created_at)
    return [watcher_of(sub, now) for sub in subs]


class PresenceService:
    """SUBSCRIBE/NOTIFY for the server: see the module docstring.

    ``transactions`` is the server's transaction layer; ``flush`` (the
    server's ``_drain``) hands its outputs on and may be called while a drain
    runs. ``local_contact(sub)`` is the Contact URI of our 200s and
    in-dialog NOTIFYs of ``sub`` (None: ``sip:<registrar name>@<domain>``). ``clock`` is the
    transaction layer's time, ``wall_clock`` the table's. ``sent_by(peer)``
    is the ``host:port`` of our Via toward ``peer``; ``resolve`` finds the
    next hop of a URI (RFC 3263). ``domain_of(host, port)``, when given, is
    the served domain a host stands for (``LocalIdentity.canonical_domain``):
    with it the service checks the domain of Request-URIs and From URIs
    itself and maps our addresses to the domain; without it, every host is
    taken as the served domain it names. ``bindings_of(aor, now)`` (the
    location store's ``live``) reads an AOR's live bindings, so the roster
    keeps no copy of them; it is for the table made here, not one passed as
    ``table``. ``batch`` bounds the NOTIFYs sent in
    one turn of the loop; ``save_every_s`` how often, at most, the recovery
    file is rewritten when the table changed.
    """

    def __init__(
        self,
        settings: PresenceSettings,
        directory: Directory,
        *,
        transactions: TransactionLayer,
        data_dir: Path,
        local_contact: Callable[[Subscription], str] | None = None,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        flush: Callable[[], None],
        sent_by: Callable[[Peer], str],
        resolve: Callable[[SipURI], Awaitable[Peer | None]],
        domain_of: Callable[[str, int | None], str | None] | None = None,
        table: SubscriptionTable | None = None,
        bindings_of: Callable[[str, float], tuple[Binding, ...]] | None = None,
        batch: int = BATCH,
        save_every_s: float = 1.0,
        path: Path | None = None,
        branch_tag: str = "",
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.settings = settings
        self.directory = directory
        self.table = table or SubscriptionTable(
            settings, directory, contact=local_contact, bindings_of=bindings_of
        )
        self.transactions = transactions
        #: The subscriptions' recovery file (each worker keeps its own).
        self.path = path if path is not None else data_dir / recovery.FILE_NAME
        # Ends every NOTIFY's branch: the worker that holds its transaction.
        self._branch_tag = branch_tag
        self.batch = batch
        self.save_every_s = save_every_s
        self._clock = clock
        self._wall = wall_clock
        self._flush = flush
        self._sent_by = sent_by
        self._resolve = resolve
        self._domain_of = domain_of
        self._pending: dict[ClientTransaction, str] = {}
        self._outbox: deque[Notify] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._save_lock = asyncio.Lock()
        self._saved_changes = self.table.changes
        self._saved_built = self.table.notifies_built
        self._saved_at: float | None = None
        self._release_timer: asyncio.TimerHandle | None = None
        self._release_at: float | None = None
        #: NOTIFYs handed to the transaction layer, and those that failed.
        self.notifies_sent = 0
        self.notifies_failed = 0

    # -- life cycle -----------------------------------------------------------------

    async def start(self, bindings: Iterable[Binding], now: float) -> None:
        """Learn who is registered (the location store's ``bindings``) and load
        the subscriptions of the recovery file still live at ``now``.

        Runs without yielding to the loop, so no registration event can slip
        in between; an unreadable file is set aside (logged), as the
        registrar does with its own.
        """
        users = self.table.load_registrations(bindings, now)
        loaded = 0
        try:
            loaded = recovery.load(self.path, self.table, now)
        except RecoveryFileError as exc:
            moved = set_aside(self.path, now)
            logger.error(
                "subscriptions file unreadable, starting without subscriptions: %s (kept as %s)",
                exc.problem,
                moved,
            )
        except OSError as exc:
            logger.error("cannot read %s, starting without subscriptions: %s", self.path, exc)
        self._saved_changes = self.table.changes
        self._saved_built = self.table.notifies_built
        self._saved_at = now
        logger.info("presence: %d registered users, %d subscriptions loaded", users, loaded)

    async def stop(self, now: float) -> None:
        """Stop sending and write the recovery file. NOTIFYs not sent yet are
        dropped; their CSeqs are covered by the restart gap (``recovery``)."""
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.exception("presence task failed")
        self._outbox.clear()
        await self.save(now)

    async def tick(self, now: float) -> None:
        """The periodic work, about once a second: end expired subscriptions (a
        final NOTIFY in the RFC 6665 form), count NOTIFYs unanswered for
        ``notify_timeout_s`` as timed out, and save when subscriptions changed
        or enough NOTIFYs were built (``recovery.SAVE_AFTER_NOTIFIES``)."""
        self._dispatch(self.table.expire(now))
        for tx in [tx for tx in self._pending if tx.terminated]:
            # Ended without an event reaching us (should not happen): the
            # table's own timeout has counted it already or will.
            del self._pending[tx]
        due = self._saved_at is None or now - self._saved_at >= self.save_every_s
        built = self.table.notifies_built - self._saved_built
        if due and (
            self.table.changes != self._saved_changes or built >= recovery.SAVE_AFTER_NOTIFIES
        ):
            await self.save(now)

    async def save(self, now: float) -> bool:
        """Write the recovery file now (atomically, in a worker thread); False
        when it cannot be written (logged; the next tick tries again)."""
        async with self._save_lock:
            changes, built = self.table.changes, self.table.notifies_built
            with gc_paused():
                data = self.table.to_json(now)
            try:
                await asyncio.to_thread(write_atomically, self.path, data)
            except OSError as exc:
                logger.error("cannot write %s: %s", self.path, exc)
                return False
            self._saved_changes, self._saved_built = changes, built
            self._saved_at = now
            return True

    # -- what is ours -----------------------------------------------------------------

    def allow_events(self) -> list[str]:
        """The event packages this server answers itself (Allow-Events)."""
        return self.table.allow_events()

    def is_registrar_uri(self, uri: SipURI) -> bool:
        """True for the registrar's own URI (its name at a served domain): the
        server is the user agent there, and holds no dialog but its
        subscriptions."""
        if uri.user is None or unescape(uri.user).lower() != self.settings.registrar_name.lower():
            return False
        return self._domain_of is None or self._domain_of(uri.host, uri.port) is not None

    def is_for_registrar(self, request: Request) -> bool:
        """True for a SUBSCRIBE this server answers itself (module docstring:
        the registrar's name, or ``reg`` / ``presence`` to a served user);
        False for one the proxy forwards. Call it for a request with no Route
        left (ours removed) whose Request-URI is in a served domain."""
        if request.method != "SUBSCRIBE":
            return False
        try:
            uri = request.request_uri
        except ParseError:
            return False
        if not isinstance(uri, SipURI) or uri.user is None:
            return False
        if self.is_registrar_uri(uri):
            return True
        if self._domain_of is not None and self._domain_of(uri.host, uri.port) is None:
            return False
        s = self.settings
        if not (s.enabled and s.standard_packages):
            return False
        try:
            package = parse_event(request.get("event")).package.lower()
        except Rejection:
            return False
        return package in (REG_EVENT, PRESENCE_EVENT)

    def subscriber_of(self, request: Request) -> str | None:
        """The canonical AOR of the From of ``request`` in its served domain
        (``sip:user@domain``), or None: not a SIP URI with a user, or (with
        ``domain_of``) a host that is not ours."""
        try:
            uri = request.from_addr.uri
        except ParseError:
            return None
        if not isinstance(uri, SipURI) or uri.user is None:
            return None
        key = aor_of(uri, case_sensitive=self.settings.case_sensitive)
        if key is None or "@" not in key:
            return None
        if self._domain_of is None:
            return key
        domain = self._domain_of(uri.host, uri.port)
        if domain is None:
            return None
        return f"{key[: key.rfind('@') + 1]}{domain}"

    def may_subscribe(
        self, aor: str, *, has_bindings: bool, authenticated: bool, in_dialog: bool = False
    ) -> bool:
        """Whether ``aor`` (a canonical AOR of a served domain) may subscribe.

        The rule of the issue, "only users of the domain": a user disabled in
        the directory never; one whose credentials were verified for this
        AOR's user (``authenticated``) always; one without credentials (auth
        off, or a trusted peer) when it has at least one registration
        (``has_bindings``) or is listed in the directory. A SUBSCRIBE inside
        a dialog (``in_dialog``: a To tag; authentication does not challenge
        those it routes here) needs no more: only the subscriber that created
        the dialog can refresh or end it, the table answers 481 for an
        unknown dialog and 403 for another From.
        """
        user = aor_user(aor)
        if not user:
            return False
        name = unescape(user)
        entry = self.directory.find(name, include_disabled=True)
        if entry is not None:
            return bool(entry.enabled)
        return authenticated or in_dialog or has_bindings

    # -- SUBSCRIBE ----------------------------------------------------------------------

    def handle_subscribe(
        self,
        tx: ServerTransaction,
        request: Request,
        inbound_peer: Peer,
        subscriber_aor: str,
        now: float,
        *,
        local: str = "",
    ) -> Response:
        """Answer a SUBSCRIBE ``is_for_registrar`` claimed, from a subscriber the
        caller allowed (``may_subscribe``): the response goes on ``tx`` first,
        then the NOTIFYs that follow it. ``inbound_peer`` is where it came
        from (NOTIFYs go back there), ``local`` names the socket it arrived on
        (for ``centrex subscriptions``). Returns the response sent."""
        self._to_served_domain(request)
        source = Source(
            inbound_peer.transport,
            inbound_peer.host,
            inbound_peer.port,
            local,
            inbound_peer.connection_id,
        )
        response, notifies = self.table.handle_subscribe(
            request, subscriber=subscriber_aor, source=source, now=now
        )
        self.transactions.respond(tx, response, self._clock())
        self._dispatch(notifies)
        self._flush()
        return response

    async def answer_subscribe(
        self,
        tx: ServerTransaction,
        request: Request,
        inbound_peer: Peer,
        *,
        registered: Callable[[str], Awaitable[bool]],
        identity: str | None = None,
        local: str = "",
    ) -> Response:
        """``subscriber_of`` + ``may_subscribe`` + ``handle_subscribe`` in one call,
        for the proxy: 403 to a subscriber that is not a user of the domain.

        ``registered(aor)`` tells whether the AOR has bindings (the registrar's
        lookup; asked only when it matters); ``identity`` is the user name
        authentication verified, None when the request was not authenticated.
        """
        subscriber = self.subscriber_of(request)
        allowed = False
        if subscriber is not None:
            key = self.directory.key
            user = unescape(aor_user(subscriber) or "")
            authenticated = identity is not None and key(identity) == key(user)
            in_dialog = request.to_tag is not None
            if identity is not None and not authenticated:
                subscriber = None  # credentials of someone else: 403 below
            else:
                asks = not (authenticated or in_dialog)
                has_bindings = asks and await registered(subscriber)
                allowed = self.may_subscribe(
                    subscriber,
                    has_bindings=has_bindings,
                    authenticated=authenticated,
                    in_dialog=in_dialog,
                )
        if subscriber is None or not allowed:
            response = make_response(
                request,
                403,
                "Only users of the domain may subscribe",
                to_tag=token_hex(6),
            )
            self.transactions.respond(tx, response, self._clock())
            self._flush()
            return response
        now = self._wall()
        return self.handle_subscribe(tx, request, inbound_peer, subscriber, now, local=local)

    def _to_served_domain(self, request: Request) -> None:
        """A dialog-creating SUBSCRIBE to one of our addresses (phones set up with
        an IP) names the AOR of the served domain that address stands for."""
        if self._domain_of is None or request.to_tag is not None:
            return
        try:
            uri = request.request_uri
        except ParseError:
            return
        if not isinstance(uri, SipURI) or uri.user is None:
            return
        domain = self._domain_of(uri.host, uri.port)
        if domain is not None and aor_host(uri.aor()) != domain:
            request.set_uri(uri.replace(host=domain, port=None))

    # -- registration changes -----------------------------------------------------------

    def on_aor_event(self, event: AorEvent) -> None:
        """An AOR became available or unavailable, or the contacts of one with
        reg watchers changed: tell its watchers. For ``registrar.listeners.add``
        (with ``listeners.watched`` set to the table's ``reg_watched``); the
        work is the table's for the watchers of one domain or AOR, the
        sending is batched."""
        try:
            notifies = self.table.on_aor_event(event, self._wall())
        except Exception:
            logger.exception("presence: cannot fan out %s of %s", event.kind, event.aor)
            return
        self._dispatch(notifies)

    def _arm_release(self) -> None:
        """Have the loop call ``_release_due`` when the table's first held
        NOTIFYs are due (the throttle); ``tick`` is the fallback without a loop."""
        due = self.table.next_release()
        if due is None or (self._release_at is not None and self._release_at <= due):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._release_timer is not None:
            self._release_timer.cancel()
        self._release_at = due
        self._release_timer = loop.call_later(max(0.0, due - self._wall()), self._release_due)

    def _release_due(self) -> None:
        # About a batch per turn: when more subscriptions are due, the timer
        # _dispatch arms again fires at once, on the next turn of the loop.
        self._release_timer = None
        self._release_at = None
        self._dispatch(self.table.release_due(self._wall(), limit=self.batch))

    # -- NOTIFY outcomes (the server's _drain routes them here) ---------------------------

    def owns(self, tx: Transaction | None) -> bool:
        """True for a client transaction of a NOTIFY this service sent."""
        if not isinstance(tx, ClientTransaction):
            return False
        if tx in self._pending:
            return True
        # The key is (branch, method): no need to read the request again.
        branch, method = tx.key[0], tx.key[-1]
        return method == "NOTIFY" and isinstance(branch, str) and branch.startswith(BRANCH_PREFIX)

    def on_response(self, tx: ClientTransaction, response: Response) -> None:
        """A NOTIFY's response: a final one is its outcome (RFC 6665 4.2.2)."""
        if response.status < 200:
            return
        notify_id = self._pending.pop(tx, None)
        if notify_id is None:
            return
        # Over UDP the transaction would wait out Timer K (5 s) with both:
        # reduced to its key instead, so that a fan-out of hundreds of NOTIFYs
        # a second leaves no thousands of them for the collector's young
        # passes to walk (as the server does for its server transactions);
        # over TCP/TLS/WS it ends now anyway.
        if not self.transactions.retire_client(tx):
            tx.request.forget_views()
            response.forget_views()
        if response.status >= 300:
            self.notifies_failed += 1
            logger.debug("NOTIFY %s answered %d", notify_id, response.status)
        self._dispatch(self.table.notify_result(notify_id, response.status, self._wall()))

    def on_timeout(self, tx: Transaction) -> None:
        """Timer F: the NOTIFY was never answered."""
        self._failed(tx, None)

    def on_transport_error(self, tx: Transaction) -> None:
        """The NOTIFY could not be sent (17.1.4)."""
        self._failed(tx, _UNSENDABLE)

    def on_terminated(self, tx: Transaction) -> None:
        """The transaction left the layer's tables."""
        if isinstance(tx, ClientTransaction):
            self._pending.pop(tx, None)

    def route_output(self, out: Output) -> bool:
        """Take a transaction-layer output if it is about one of our NOTIFYs;
        True when taken (the server then passes it on to no one else)."""
        if isinstance(out, ResponseEvent):
            if out.transaction is None or not self.owns(out.transaction):
                return False
            self.on_response(out.transaction, out.response)
        elif isinstance(out, TimeoutEvent | TransportErrorEvent | Terminated):
            if not self.owns(out.transaction):
                return False
            if isinstance(out, TimeoutEvent):
                self.on_timeout(out.transaction)
            elif isinstance(out, TransportErrorEvent):
                self.on_transport_error(out.transaction)
            else:
                self.on_terminated(out.transaction)
        else:
            return False
        return True

    def _failed(self, tx: Transaction, status: int | None) -> None:
        if not isinstance(tx, ClientTransaction):
            return
        notify_id = self._pending.pop(tx, None)
        if notify_id is None:
            return
        self.notifies_failed += 1
        self._dispatch(self.table.notify_result(notify_id, status, self._wall()))

    # -- the CLI -------------------------------------------------------------------------

    def watchers(self, now: float) -> list[Watcher]:
        """The current watchers, oldest first (``Watcher.as_row()`` for a mapping)."""
        return self.table.watchers(now)

    # -- sending --------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """NOTIFYs waiting in the outbox for a later turn of the loop."""
        return len(self._outbox)

    async def idle(self) -> None:
        """Wait until the outbox is empty and no routed NOTIFY is being resolved
        (tests, benchmarks, an orderly shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    def _dispatch(self, notifies: list[Notify]) -> None:
        """Send ``notifies`` in order: when nothing waits, the first ``batch``
        now; the rest through the outbox, ``batch`` per turn of the loop.
        Every table call that returned them, and every send that failed at
        once, may have held a subscription: the release timer is armed for
        it here."""
        if notifies and not self._outbox:
            self._send_each(notifies[: self.batch])
            self._flush()
            notifies = notifies[self.batch :]
        if notifies:
            self._outbox.extend(notifies)
            if self._sender is None or self._sender.done():
                self._sender = self._spawn(self._drain_outbox())
        self._arm_release()

    async def _drain_outbox(self) -> None:
        outbox = self._outbox
        while outbox:
            batch = [outbox.popleft() for _ in range(min(self.batch, len(outbox)))]
            self._send_each(batch)
            self._flush()
            if outbox:
                await asyncio.sleep(0)

    def _send_each(self, notifies: Iterable[Notify]) -> None:
        todo = deque(notifies)
        while todo:
            # A NOTIFY that cannot even start fails at once, which may release
            # the next one of its subscription.
            todo.extend(self._send(todo.popleft()))

    def _send(self, notify: Notify) -> list[Notify]:
        """Start ``notify``'s client transaction; what the table releases when
        it could not be started. A dialog with a route set goes to its first
        Route, resolved (RFC 3261 12.2.1.1, RFC 3263), in a task of its own.
        A NOTIFY whose subscription ended while it waited in the outbox (an
        unsubscribe, a 481) is dropped: after the 200 to Expires 0 only the
        final NOTIFY of the RFC 6665 form may follow."""
        if self._ended(notify):
            return []
        if "route" in notify.request:
            self._spawn(self._send_routed(notify))
            return []
        return self._start(notify, peer_of(notify.source))

    async def _send_routed(self, notify: Notify) -> None:
        hop: Peer | None = None
        try:
            uri = parse_uri(notify.next_hop)
            if isinstance(uri, SipURI):
                hop = await self._resolve(uri)
        except ParseError:
            hop = None
        if self._ended(notify):
            return
        if hop is None:
            logger.info("NOTIFY %s: next hop %s unresolvable", notify.id, notify.next_hop)
            self.notifies_failed += 1
            follow = self.table.notify_result(notify.id, _UNSENDABLE, self._wall())
        else:
            follow = self._start(notify, hop)
        self._dispatch(follow)
        self._flush()

    def _ended(self, notify: Notify) -> bool:
        """True for a NOTIFY (not a final one) of a subscription no longer in the table."""
        return not notify.final and self.table.get(notify.subscription_id) is None

    def _start(self, notify: Notify, peer: Peer) -> list[Notify]:
        request = notify.request
        branch = f"{BRANCH_PREFIX}{token_hex(8)}{self._branch_tag}"
        request.push_via(
            f"SIP/2.0/{peer.transport.upper()} {self._sent_by(peer)};branch={branch};rport"
        )
        try:
            tx = self.transactions.start_client(
                request, self._clock(), reliable=peer.reliable, peer=peer
            )
        except ValueError as exc:
            logger.warning("NOTIFY %s to %s not sent: %s", notify.id, peer, exc)
            self.notifies_failed += 1
            return self.table.notify_result(notify.id, _UNSENDABLE, self._wall())
        self._pending[tx] = notify.id
        self.notifies_sent += 1
        return []

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("presence sending failed", exc_info=task.exception())
