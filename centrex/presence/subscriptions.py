"""The notifier: SUBSCRIBE in, 200 and NOTIFYs out (RFC 6665 4.2, RFC 3680, RFC 3856).

``SubscriptionTable`` keeps every subscription and answers the four things
that happen to one: a SUBSCRIBE (``handle_subscribe``), a change of
registration state (``on_aor_event``), the outcome of a NOTIFY
(``notify_result``) and the passing of time (``expire``). It opens no socket
and reads no clock; every call returns the NOTIFYs to send.

Choices where the issue and the RFCs leave room:

- The user-available list names the users of the subscriber's domain that have
  bindings, in the order they registered; the user-unavailable list names the
  directory's users that have none, in directory order (each NOTIFY of a
  package names users in that package's state). An empty list is one NOTIFY
  whose Event has no ``param`` (as is the NOTIFY of a refresh: below).
- In the RFC 6665 form a subscription has at most one NOTIFY in flight; the
  others wait in order (an initial list is made a NOTIFY at a time, each when
  there is room for it, so a SUBSCRIBE costs its first NOTIFY only), so
  CSeq order is arrival order over UDP too (RFC 3261 12.2.2 would answer a
  late lower CSeq with 500). Lanscape NOTIFYs are
  separate requests; ``LANSCAPE_WINDOW`` of them may be in flight at once.
  Either way a subscriber that answers slowly (or not at all) holds back
  only its own NOTIFYs, and never gets more than it can take in. The names
  of registration changes wait in a list of their own until the NOTIFYs
  before them are answered, and then go in as few NOTIFYs as hold them;
  a user waits there once, and a user who changes state again before being
  sent is taken out of the other event's waiting names, so that a phone
  watching both events never ends up showing the earlier state. The same
  goes for list NOTIFYs built but not sent yet (an initial list still going
  out a NOTIFY at a time behind the one in flight): the user, found by name
  (a directory reload may have changed the description), is taken out of
  them, and one left naming no one is not sent.
- Change NOTIFYs of the registrar events are throttled per subscription
  (``notify_min_interval_s``): the first change after a quiet spell goes at
  once and starts a burst; a change made after a burst began waits until the
  interval since that burst is over, its names merged with the others that
  wait, and goes in the next burst. Held bursts go only at a subscription's
  own phase of the interval (the first such instant once the interval is
  over, so up to one more interval later): the phases of the table's
  subscriptions are spread evenly over the interval, so subscribers told of
  the same change at once are told again one after another across the
  whole interval, not in the same instant, and under a registration storm
  the bursts of all subscribers stay spread evenly in time, one burst per
  interval each. ``release_due`` sends what is due; ``next_release`` says
  when.
- A refresh in the RFC 6665 form sends the NOTIFY RFC 6665 4.2.1.2 requires:
  for reg the full state, for presence the PIDF; for the registrar events
  one without ``param``, which means "nothing new", not "no one": each name
  in these packages is a user who changed state, so a list sent again at
  every refresh would be every user changing state again (a phone showing
  arrivals would show them all) and a whole list per phone per refresh. A
  subscriber that wants the list again fetches it (Expires: 0 out of the
  dialog) or subscribes anew. Lanscape: none.
- Expires: 0 in the dialog ends the subscription: 200, then in the RFC 6665
  form a NOTIFY with ``terminated;reason=timeout`` and nothing after it; the
  lanscape form sends nothing. Out of a dialog (no To tag) the RFC 6665 form
  answers it as a fetch (RFC 6665 4.4.3) and changes no other subscription:
  the current state in a NOTIFY with ``terminated;reason=timeout`` (reg:
  the full state; presence: the PIDF; the registrar events: the list a new
  subscription gets, in as many NOTIFYs, one in flight at a time, the last
  one terminated). The lanscape form, whose phones know no dialog, takes it
  as the end of the caller's matching subscriptions and sends nothing.
- A new SUBSCRIBE (Expires above 0) from the same subscriber and Contact for
  the same package, id and resource replaces the old subscription (a
  rebooted phone), without a NOTIFY: ``deactivated`` would ask a UA that still
  holds the old dialog to subscribe again at once (RFC 6665 4.1.3), which
  would replace the new one, and so on; a refresh of the old dialog gets 481
  and the UA subscribes again at its own pace. Each subscriber holds at most
  ``max_per_subscriber``, the oldest going first (without a NOTIFY).
- A NOTIFY answered 481 ends its subscription at once; a timeout or any other
  failure counts, and ``notify_failures_before_drop`` in a row end it
  without a final NOTIFY. A failed NOTIFY is not sent again.
- reg: the first NOTIFY and each refresh carry the full state (version 0, 1,
  ...); every contact that comes or goes carries a partial document with
  the contacts that changed (registered / unregistered / expired /
  deactivated for a closed connection / rejected when ``max_contacts``
  pushed it out), while the AOR keeps other contacts too: the registrar
  makes those "changed" events for the AORs in ``reg_watched`` only. A
  refresh of a contact is not reported (RFC 3680 5.1 leaves "refreshed"
  optional). An expired contact is reported when the registrar's purge
  (or the AOR's next REGISTER) removes it.
- The Via the sender adds is kept out of the NOTIFY; ``via_reserve`` bytes of
  ``notify_max_bytes`` are left for it. A single user too long to fit goes
  alone in a NOTIFY anyway.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

from centrex.directory import Directory
from centrex.presence import notify, recovery
from centrex.presence.bodies import (
    PIDF_TYPE,
    REGINFO_TYPE,
    ContactChange,
    RegistrationState,
)
from centrex.presence.content import NotifyBuilder, contact_changes
from centrex.presence.dialog import REGISTRAR_KINDS, Kind, Notify, Subscription, Watcher, watcher_of
from centrex.presence.roster import Roster
from centrex.presence.settings import PRESENCE_EVENT, REG_EVENT, PresenceSettings
from centrex.presence.subscribe import (
    DialogRequest,
    EventHeader,
    Rejection,
    accepts,
    granted_expires,
    parse_event,
    read_dialog,
)
from centrex.presence.userlist import encode_all, name_prefix
from centrex.registrar.aor import aor_host, aor_of, aor_user
from centrex.registrar.binding import Binding, Source
from centrex.registrar.events import AorEvent
from centrex.sip.build import make_response
from centrex.sip.errors import ParseError
from centrex.sip.ids import token_hex
from centrex.sip.message import Request, Response
from centrex.sip.uri import unescape

__all__ = ["LANSCAPE_WINDOW", "Notify", "Subscription", "SubscriptionTable", "Watcher"]

#: How many lanscape NOTIFYs of one subscription may be unanswered at once
#: (in a dialog it is one, for CSeq order).
LANSCAPE_WINDOW: Final = 4


def _token() -> str:
    return token_hex(8)


def _spread(n: int) -> float:
    """The ``n``-th phase in [0, 1): 0, 1/2, 1/4, 3/4, 1/8, ... (the van der
    Corput sequence), so any run of consecutive subscriptions is spread about
    evenly over the interval, however many there are."""
    phase, step = 0.0, 0.5
    while n:
        if n & 1:
            phase += step
        n >>= 1
        step /= 2
    return phase


class SubscriptionTable:
    """Every subscription of this server and the rules of RFC 6665 4.2 for them.

    ``roster`` is who is registered (built on ``directory`` when not given,
    reading bindings from ``bindings_of`` when given: ``Roster``'s ``source``);
    ``contact(sub)`` the URI our 200s and in-dialog NOTIFYs of ``sub`` put in
    Contact (the server gives its own address, where the refreshes must
    reach it); by default ``sip:<registrar name>@<domain>``. ``new_id``, ``new_tag`` and
    ``new_call_id`` make subscription ids, tags and lanscape Call-IDs.
    ``changes`` grows with every change the recovery file should keep.
    """

    max_per_subscriber = 32

    def __init__(
        self,
        settings: PresenceSettings,
        directory: Directory,
        *,
        roster: Roster | None = None,
        bindings_of: Callable[[str, float], tuple[Binding, ...]] | None = None,
        contact: Callable[[Subscription], str] | None = None,
        new_id: Callable[[], str] = _token,
        new_tag: Callable[[], str] = _token,
        new_call_id: Callable[[], str] = _token,
    ) -> None:
        self.settings = settings
        self.roster = roster or Roster(
            directory, case_sensitive=settings.case_sensitive, source=bindings_of
        )
        self._contact = contact
        self._new_id = new_id
        self._new_tag = new_tag
        self.build = NotifyBuilder(
            settings,
            self.roster,
            contact=self.contact_uri,
            new_tag=new_tag,
            new_call_id=new_call_id,
        )
        self._subs: dict[str, Subscription] = {}
        self._dialogs: dict[tuple[str, str, str], str] = {}
        self._topics: dict[tuple[str, str], dict[str, None]] = {}
        self._by_subscriber: dict[str, dict[str, None]] = {}
        self._pending: dict[str, str] = {}
        # (held until, subscription id) of held subscriptions; an entry whose
        # subscription is gone or no longer held until then is skipped.
        self._held: list[tuple[float, str]] = []
        self._phases: dict[tuple[str, str], int] = {}
        #: The AORs with reg watchers: the registrar makes "changed" events
        #: for these only (``EventListeners.watched``; the server shares it).
        self.reg_watched: set[str] = set()
        self.changes = 0
        self.notifies_built = 0

    # -- the table ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._subs)

    def __iter__(self) -> Iterator[Subscription]:
        return iter(list(self._subs.values()))

    def get(self, subscription_id: str) -> Subscription | None:
        """The subscription with this id, if it still exists."""
        return self._subs.get(subscription_id)

    def watchers(self, now: float) -> list[Watcher]:
        """The rows ``centrex subscriptions`` lists, oldest first."""
        return [watcher_of(sub, now) for sub in self._subs.values()]

    def allow_events(self) -> list[str]:
        """The packages served, for Allow-Events (RFC 6665 8.2.2)."""
        s = self.settings
        if not s.enabled:
            return []
        names = [s.event_available, s.event_unavailable]
        return [*names, REG_EVENT, PRESENCE_EVENT] if s.standard_packages else names

    def contact_uri(self, sub: Subscription) -> str:
        """Our Contact URI in the dialog of ``sub`` (RFC 3261 12.1.1: where its
        in-dialog requests, the refreshes, are sent)."""
        if self._contact is not None:
            return self._contact(sub)
        return notify.registrar_uri(self.settings.registrar_name, sub.domain)

    def _add(self, sub: Subscription) -> None:
        # Spread among the subscriptions told of the same changes (same topic).
        n = self._phases.get(sub.topic, 0)
        self._phases[sub.topic] = n + 1
        sub.phase = _spread(n)
        self._subs[sub.id] = sub
        self._dialogs[sub.dialog_key] = sub.id
        self._topics.setdefault(sub.topic, {})[sub.id] = None
        if sub.kind == "reg":
            self.reg_watched.add(sub.resource)
        if not sub.fetch:  # (a fetch is no subscription to count, nor to push one out)
            mine = self._by_subscriber.setdefault(sub.subscriber, {})
            mine[sub.id] = None
            while len(mine) > self.max_per_subscriber:
                self._remove(self._subs[next(iter(mine))])
        self.changes += 1

    def _remove(self, sub: Subscription) -> None:
        if self._subs.pop(sub.id, None) is None:
            return
        self._dialogs.pop(sub.dialog_key, None)
        ids = self._topics.get(sub.topic, {})
        ids.pop(sub.id, None)
        if not ids:
            self._topics.pop(sub.topic, None)
            self._phases.pop(sub.topic, None)
            if sub.kind == "reg":
                self.reg_watched.discard(sub.resource)
        ids = self._by_subscriber.get(sub.subscriber, {})
        ids.pop(sub.id, None)
        if not ids:
            self._by_subscriber.pop(sub.subscriber, None)
        for notify_id in sub.outstanding:
            self._pending.pop(notify_id, None)
        sub.outstanding.clear()
        sub.queue.clear()
        sub.listing = None
        sub.pending = {}
        sub.held_until = 0.0
        self.changes += 1

    def _watching(self, kind: Kind, key: str, now: float) -> list[Subscription]:
        ids = self._topics.get((kind, key))
        if not ids:
            return []  # most registrations: no one watches (no lookups, no iterator)
        return [sub for sub in map(self._subs.__getitem__, ids) if sub.live(now)]

    # -- SUBSCRIBE ----------------------------------------------------------------------

    def handle_subscribe(
        self, request: Request, *, subscriber: str, source: Source, now: float
    ) -> tuple[Response, list[Notify]]:
        """Answer a SUBSCRIBE (RFC 6665 4.2.1) and return the NOTIFYs that follow.

        ``subscriber`` is the canonical AOR (``sip:user@domain``) the caller has
        already allowed to subscribe; its domain is the one whose users the
        registrar events list (ValueError when it is not an AOR). ``source`` is
        where the request came from. Send the response first, then the NOTIFYs.
        """
        if not subscriber.startswith("sip:") or "@" not in subscriber:
            raise ValueError(f"subscriber must be an AOR like sip:user@domain, not {subscriber!r}")
        if request.method != "SUBSCRIBE":
            return self._reply(request, 405, headers=[("Allow", "SUBSCRIBE")]), []
        try:
            event = parse_event(request.get("event"))
            kind = self._kind_of(event.package)
            dialog = read_dialog(request)
            expires = granted_expires(request, self.settings)
        except Rejection as rejection:
            if rejection.status == 489:  # (an Event missing or malformed too)
                rejection = self._unknown_event()
            return self._reject(request, rejection), []
        if dialog.local_tag is not None:
            return self._refresh(request, event, kind, dialog, expires, subscriber, source, now)
        try:
            resource, domain = self._resource(request, kind, subscriber)
            if dialog.remote_target is None:
                raise Rejection(400, "Missing Contact header")
            content_type = {"reg": REGINFO_TYPE, "presence": PIDF_TYPE}.get(kind)
            if content_type is not None and not accepts(request, content_type):
                raise Rejection(406, "Not Acceptable", (("Accept", content_type),))
        except Rejection as rejection:
            return self._reject(request, rejection), []
        form = self.settings.wire_form if kind in REGISTRAR_KINDS else "rfc6665"
        sub = Subscription(
            id=self._new_id(),
            kind=kind,
            event=event.package,
            event_id=event.id,
            subscriber=subscriber,
            resource=resource,
            domain=domain,
            form=form,
            call_id=dialog.call_id,
            local_tag=self._new_tag(),
            remote_tag=dialog.remote_tag,
            local_uri=dialog.local_uri,
            remote_uri=dialog.remote_uri,
            remote_target=dialog.remote_target,
            route_set=dialog.route_set,
            local_cseq=0,
            remote_cseq=dialog.cseq,
            expires_at=now + expires,
            source=source,
            created_at=now,
        )
        response = self._ok(request, sub, expires)
        if expires == 0:
            if form == "lanscape":
                # Its phones know no dialogs: they unsubscribe this way.
                for old in self._same_watch(sub):
                    self._remove(old)
                return response, []
            # A fetch (RFC 6665 4.4.3): the state once, other subscriptions untouched.
            if kind in REGISTRAR_KINDS:
                return response, self._fetch_list(sub, now)
            return response, [self.build.final(sub, now, "timeout", with_state=True)]
        # The subscription this one replaces (a rebooted phone) ends silently:
        # a NOTIFY terminated;reason=deactivated would ask a UA that still holds
        # it to subscribe again at once (RFC 6665 4.1.3), replacing this one.
        for old in self._same_watch(sub):
            self._remove(old)
        self._add(sub)
        return response, self._enqueue(sub, self.build.state_notifies(sub, now, initial=True), now)

    def _fetch_list(self, sub: Subscription, now: float) -> list[Notify]:
        """A fetch of a registrar event: the list a new subscription gets, in
        as many NOTIFYs, one in flight at a time, the last one terminated;
        kept in the table (expired already, so no change reaches it) until
        that one goes."""
        sub.fetch = True
        sub.expires_at = now
        encoded, sizes = self.roster.encoded_list(sub.domain, available=sub.kind == "available")
        sub.listing = (encoded, sizes, 0)
        self._add(sub)
        return self._release(sub, now)

    def _kind_of(self, package: str) -> Kind:
        s = self.settings
        name = package.lower()
        if s.enabled:
            if name == s.event_available.lower():
                return "available"
            if name == s.event_unavailable.lower():
                return "unavailable"
            if s.standard_packages and name == REG_EVENT:
                return "reg"
            if s.standard_packages and name == PRESENCE_EVENT:
                return "presence"
        raise self._unknown_event()

    def _unknown_event(self) -> Rejection:
        """489 with the packages we know (RFC 6665 4.2.1.1, 8.2.2): for an
        unknown package, and for an Event missing or malformed."""
        allow = ", ".join(self.allow_events())
        return Rejection(489, "Bad Event", (("Allow-Events", allow),) if allow else ())

    def _resource(self, request: Request, kind: Kind, subscriber: str) -> tuple[str, str]:
        """What a new subscription watches, and the domain of its user list."""
        domain = aor_host(subscriber)
        if kind in REGISTRAR_KINDS:
            return notify.registrar_uri(self.settings.registrar_name, domain), domain
        try:
            aor = aor_of(request.request_uri, case_sensitive=self.settings.case_sensitive)
        except ParseError:
            aor = None
        user = None if aor is None else aor_user(aor)
        if aor is None or user is None:
            raise Rejection(404, "Not Found")
        if self.roster.directory.find(unescape(user)) is None and not self.roster.is_available(aor):
            raise Rejection(404, "Not Found")
        return aor, aor_host(aor)

    def _same_watch(self, new: Subscription) -> list[Subscription]:
        """Subscriptions a new SUBSCRIBE replaces: same watcher, thing and Contact
        (a fetch still sending its list, not counted by subscriber, is left to
        end on its own)."""
        return [
            sub
            for sub in map(self._subs.__getitem__, self._by_subscriber.get(new.subscriber, {}))
            if sub.topic == new.topic
            and sub.event_id == new.event_id
            and sub.remote_target == new.remote_target
        ]

    def _refresh(
        self,
        request: Request,
        event: EventHeader,
        kind: Kind,
        dialog: DialogRequest,
        expires: int,
        subscriber: str,
        source: Source,
        now: float,
    ) -> tuple[Response, list[Notify]]:
        """A SUBSCRIBE inside an existing dialog (RFC 6665 4.2.1.2, 4.2.1.4)."""
        key = (dialog.call_id, dialog.local_tag or "", dialog.remote_tag)
        sub = self._subs.get(self._dialogs.get(key, ""))
        if sub is None or sub.kind != kind or sub.event_id != event.id:
            return self._reply(request, 481, "Subscription Does Not Exist"), []
        if sub.subscriber != subscriber:
            return self._reply(request, 403, "Not the subscriber of this dialog"), []
        if dialog.cseq <= sub.remote_cseq:
            return self._reply(request, 500, "CSeq Out Of Order"), []  # RFC 3261 12.2.2
        sub.remote_cseq = dialog.cseq
        if dialog.remote_target is not None:
            sub.remote_target = dialog.remote_target  # a target refresh (RFC 6665 4.1.2.1)
        sub.source = source
        self.changes += 1
        response = self._ok(request, sub, expires)
        if expires == 0:
            return response, self._end(sub, now, "timeout")
        sub.expires_at = now + expires
        if sub.form == "lanscape":
            return response, []
        # Made after the rest of an initial list still going out: its CSeq follows theirs.
        while sub.listing is not None:
            sub.queue.append(self.build.next_list_notify(sub, now))
        return response, self._enqueue(sub, self.build.state_notifies(sub, now, initial=False), now)

    # -- responses ----------------------------------------------------------------------

    def _reply(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        extra = list(headers or ())
        if self.settings.user_agent:
            extra.append(("Server", self.settings.user_agent))
        return make_response(
            request, status, reason, to_tag=to_tag or self._new_tag(), headers=extra
        )

    def _reject(self, request: Request, rejection: Rejection) -> Response:
        return self._reply(
            request, rejection.status, rejection.reason, headers=list(rejection.headers)
        )

    def _ok(self, request: Request, sub: Subscription, expires: int) -> Response:
        """200 with the granted Expires (RFC 6665 4.2.1.1), our Contact, the
        packages we serve (Allow-Events) and, when it creates the dialog, the
        Record-Route of the request (RFC 3261 12.1.1)."""
        headers = [] if request.to_tag else [("Record-Route", v) for v in sub.route_set]
        headers += [("Expires", str(expires)), ("Contact", f"<{self.contact_uri(sub)}>")]
        # RFC 6665 4.4.4: SHOULD be in the response to a dialog-creating request.
        events = self.allow_events()
        if events:
            headers.append(("Allow-Events", ", ".join(events)))
        return self._reply(request, 200, to_tag=sub.local_tag, headers=headers)

    # -- registration changes -------------------------------------------------------------

    def load_registrations(self, bindings: Iterable[Binding], now: float) -> int:
        """Learn who is registered from the location store (at start); AOR count."""
        return self.roster.load(bindings, now)

    def on_aor_event(self, event: AorEvent, now: float) -> list[Notify]:
        """Fan a registration event out to its watchers.

        Subscribers of the available (unavailable) event of the AOR's domain get
        a NOTIFY naming the user; ``reg`` subscribers of the AOR a partial
        reginfo; ``presence`` subscribers a PIDF open or closed. A "changed"
        event (contacts came or went, the AOR stays available; made for the
        AORs of ``reg_watched`` only) reaches the ``reg`` subscribers alone.
        """
        if event.kind == "changed":
            self.roster.change(event.aor, event.bindings, event.gone)
            return self._tell_reg(event, contact_changes(event, event.gone), now, "active")
        available = event.kind == "available"
        # What went: named by the registrar's events, else as last reported.
        before = () if available else (event.gone or self.roster.bindings(event.aor, now))
        self.roster.set(event.aor, event.bindings if available else ())
        domain = aor_host(event.aor)
        out: list[Notify] = []
        listeners = self._watching("available" if available else "unavailable", domain, now)
        # A name still waiting to be sent in the other event's list is old
        # news: dropped, so a phone never ends up with the earlier state.
        prefix: str | None = None
        for sub in self._watching("unavailable" if available else "available", domain, now):
            sub.pending.pop(event.aor, None)
            if sub.queue or sub.listing is not None:
                prefix = prefix or name_prefix(self.roster.entry(event.aor).name)
                self._unlist(sub, prefix)
        if listeners:
            (entry,), (size,) = encode_all([self.roster.entry(event.aor)])
            for sub in listeners:
                out += self._append_list(sub, event.aor, entry, size, now)
        out += self._tell_reg(event, contact_changes(event, before), now)
        for sub in self._watching("presence", event.aor, now):
            out += self._enqueue(sub, [self.build.presence_notify(sub, now)], now)
        return out

    def _tell_reg(
        self,
        event: AorEvent,
        changed: list[ContactChange],
        now: float,
        state: RegistrationState | None = None,
    ) -> list[Notify]:
        """A partial reginfo with the contacts ``changed`` to each ``reg``
        watcher of the event's AOR (RFC 3680 5.1, 6)."""
        out: list[Notify] = []
        for sub in self._watching("reg", event.aor, now):
            notify = self.build.reg_notify(sub, now, changed, state=state)
            out += self._enqueue(sub, [notify], now)
        return out

    def _append_list(
        self, sub: Subscription, aor: str, entry: str, size: int, now: float
    ) -> list[Notify]:
        """Name a user (``aor``, its encoded ``entry`` of ``size`` bytes): it
        waits with the other names not sent yet (once each, in the order of
        their latest change) and goes in as few NOTIFYs as hold them once
        ``_release`` lets them."""
        if not sub.pending:
            sub.pending_at = now
        sub.pending.pop(aor, None)
        sub.pending[aor] = (entry, size)
        return self._release(sub, now)

    def _unlist(self, sub: Subscription, prefix: str) -> None:
        """Take the user whose entries start with ``prefix`` out of what ``sub``
        has not sent yet; drop NOTIFYs left naming no one while ``sub`` has
        another NOTIFY to send or in flight (a gap in CSeq is allowed, RFC 3261
        12.2.1.1)."""
        self.build.unlist_listing(sub, prefix)
        emptied = [n for n in sub.queue if self.build.unlist(sub, n, prefix) and not n.listed]
        for empty in emptied:
            if len(sub.queue) > 1 or sub.outstanding or sub.listing is not None:
                sub.queue.remove(empty)

    # -- sending order and outcomes -----------------------------------------------------

    def _enqueue(self, sub: Subscription, notifies: list[Notify], now: float) -> list[Notify]:
        """Queue ``notifies`` (initial state, a refresh's NOTIFY, reg or
        presence state) and return what to send now (``_release``). They
        lift a hold of the throttle: they and whatever waits before them go as
        soon as the window allows."""
        sub.queue.extend(notifies)
        if sub.held_until:
            sub.held_until = 0.0  # its entry in _held is skipped from now on
            sub.burst_at = now
        return self._release(sub, now)

    def release_due(self, now: float, limit: int | None = None) -> list[Notify]:
        """Send the held change NOTIFYs whose interval is over; with ``limit``,
        only the subscriptions whose NOTIFYs come to about that many (at least
        one; ``next_release`` then says the others are due already)."""
        out: list[Notify] = []
        held = self._held
        while held and held[0][0] <= now and (limit is None or len(out) < limit):
            until, sub_id = heapq.heappop(held)
            sub = self._subs.get(sub_id)
            if sub is None or sub.held_until != until:
                continue  # gone, or released meanwhile
            sub.held_until = 0.0
            # The burst counts from its slot, not from when the loop got to
            # it: a late timer must not push the next slot a whole interval on.
            sub.burst_at = until
            out += self._release(sub, now)
        return out

    def next_release(self) -> float | None:
        """When ``release_due`` next has something to send (None: nothing held)."""
        held = self._held
        while held:
            until, sub_id = held[0]
            sub = self._subs.get(sub_id)
            if sub is not None and sub.held_until == until:
                return until
            heapq.heappop(held)
        return None

    def _release(self, sub: Subscription, now: float) -> list[Notify]:
        """The NOTIFYs of ``sub`` that may go now: while fewer than its window
        are unanswered, the waiting ones in order, then the names not sent
        yet in NOTIFYs built now. A change made after the current burst began
        goes only once the interval since that burst is over; until then the
        subscription is held (``release_due`` goes on at ``held_until``)."""
        if sub.held_until:
            return []
        window = LANSCAPE_WINDOW if sub.form == "lanscape" else 1
        out: list[Notify] = []
        while len(sub.outstanding) < window:
            if not sub.queue and sub.listing is not None:
                sub.queue.append(self.build.next_list_notify(sub, now))
            if not sub.queue:
                if not sub.pending or self._hold(sub, sub.pending_at, now):
                    break
                encoded = [entry for entry, _ in sub.pending.values()]
                sizes = [size for _, size in sub.pending.values()]
                notifies = self.build.list_notifies(sub, encoded, sizes, now)
                for notify in notifies:
                    notify.change_at = sub.pending_at
                sub.queue.extend(notifies)
                sub.pending = {}
            notify = sub.queue[0]
            if notify.change_at is not None and self._hold(sub, notify.change_at, now):
                break
            sub.queue.popleft()
            if notify.final:  # the end of a fetch's list: nothing follows it
                self._remove(sub)
                out.append(notify)
                break
            if sub.form != "lanscape":
                old = notify.request.get("Subscription-State") or ""
                new = f"active;expires={sub.remaining(now)}"
                # Never longer than when it was sized: an older, shorter expires is harmless.
                if old.startswith("active") and len(new) <= len(old):
                    notify.request.set("Subscription-State", new)
            self._track(sub, notify, now)
            out.append(notify)
        return out

    def _hold(self, sub: Subscription, made_at: float, now: float) -> bool:
        """The throttle, for a change made at ``made_at`` about to go: True (and
        ``sub`` held) when it must wait for the interval since the current
        burst; False when it goes, starting a new burst if it came after."""
        if made_at <= sub.burst_at:
            return False
        interval = self.settings.notify_min_interval_s
        if interval > 0 and now - sub.burst_at < interval:
            # The first instant at the subscription's phase once the interval is over.
            offset = sub.phase * interval
            turns = math.ceil((sub.burst_at + interval - offset) / interval)
            sub.held_until = offset + turns * interval
            heapq.heappush(self._held, (sub.held_until, sub.id))
            return True
        sub.burst_at = now  # a new burst: what waits now goes in it
        return False

    def _track(self, sub: Subscription, notify: Notify, now: float) -> None:
        sub.outstanding[notify.id] = now
        self._pending[notify.id] = sub.id
        self.notifies_built += 1  # a CSeq moved on (``recovery.SAVE_AFTER_NOTIFIES``)

    def notify_result(self, notify_id: str, status: int | None, now: float) -> list[Notify]:
        """Take a NOTIFY's final response (``None``: it timed out); return what to send next.

        2xx clears the failure count; 481 ends the subscription at once (RFC
        6665 4.2.2); anything else counts, and ``notify_failures_before_drop``
        in a row end it. Unknown ids (final NOTIFYs, ended subscriptions) are
        ignored.
        """
        if status is not None and status < 200:
            return []
        sub_id = self._pending.pop(notify_id, None)
        sub = self._subs.get(sub_id) if sub_id is not None else None
        if sub is None:
            return []
        sub.outstanding.pop(notify_id, None)
        if status is not None and 200 <= status < 300:
            sub.failures = 0
        elif status == 481:
            self._remove(sub)
            return []
        else:
            sub.failures += 1
            if sub.failures >= self.settings.notify_failures_before_drop:
                self._remove(sub)
                return []
        return self._release(sub, now)

    # -- time -----------------------------------------------------------------------------

    def expire(self, now: float) -> list[Notify]:
        """End the subscriptions past their expiry (RFC 6665 4.2.2: a final NOTIFY
        with ``terminated;reason=timeout`` in the RFC 6665 form) and count the
        NOTIFYs unanswered for ``notify_timeout_s`` as timed out."""
        out: list[Notify] = self.release_due(now)
        timeout = self.settings.notify_timeout_s
        for sub in list(self._subs.values()):
            if not sub.live(now) and not sub.fetch:  # (a fetch ends with its list)
                out += self._end(sub, now, "timeout")
                continue
            for notify_id, sent_at in list(sub.outstanding.items()):
                if sent_at + timeout <= now:
                    out += self.notify_result(notify_id, None, now)
        return out

    def next_deadline(self) -> float | None:
        """When ``expire`` next has something to do (None: nothing pending)."""
        timeout = self.settings.notify_timeout_s
        times = [sub.expires_at for sub in self._subs.values() if not sub.fetch]
        times += [t + timeout for sub in self._subs.values() for t in sub.outstanding.values()]
        held = self.next_release()
        if held is not None:
            times.append(held)
        return min(times, default=None)

    def _end(self, sub: Subscription, now: float, reason: str) -> list[Notify]:
        self._remove(sub)
        if sub.form == "lanscape":
            return []
        return [self.build.final(sub, now, reason)]

    def end(self, subscription_id: str, now: float, reason: str = "noresource") -> list[Notify]:
        """End one subscription from our side (admin, shutdown of a package)."""
        sub = self._subs.get(subscription_id)
        return [] if sub is None else self._end(sub, now, reason)

    def end_all(self, now: float, reason: str = "noresource") -> list[Notify]:
        """End every subscription (presence switched off)."""
        return [n for sub in list(self._subs.values()) for n in self._end(sub, now, reason)]

    # -- recovery ---------------------------------------------------------------------------

    def to_json(self, saved_at: float) -> bytes:
        """The recovery file content of the table (``presence.recovery``)."""
        return recovery.encode(self._subs.values(), saved_at)

    def from_json(
        self,
        data: bytes,
        now: float,
        *,
        path: Path | None = None,
        cseq_gap: int = recovery.CSEQ_RESTART_GAP,
    ) -> int:
        """Add the subscriptions of recovery content ``data`` still live at ``now``;
        returns how many. Their NOTIFY CSeqs move on by ``cseq_gap``."""
        subs = recovery.decode(data, now=now, path=path, cseq_gap=cseq_gap)
        for sub in subs:
            self._add(sub)
        return len(subs)
