"""The NOTIFYs of each package, sized for UDP (RFC 6665 4.2.2, RFC 3680, RFC 3856).

``NotifyBuilder`` turns a subscription and the registration state into ready
``Notify`` objects: the user list of the registrar events split so that each
whole NOTIFY stays within ``build_limit`` bytes, reginfo documents with their
version counter, PIDF documents, and the terminated NOTIFY that ends a
subscription. It keeps no subscriptions: ``SubscriptionTable`` decides what to
send and when.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from centrex.presence import notify as build
from centrex.presence.bodies import (
    PIDF_TYPE,
    REGINFO_TYPE,
    ContactChange,
    ContactEvent,
    RegistrationState,
    pidf,
    reginfo,
)
from centrex.presence.dialog import Notify, Subscription
from centrex.presence.roster import Roster
from centrex.presence.settings import PresenceSettings
from centrex.presence.userlist import PARAM_PREFIX, event_value, pack
from centrex.registrar.binding import Binding
from centrex.registrar.events import AorEvent
from centrex.sip.message import Request

_CONTACT_EVENT: dict[str, ContactEvent] = {
    "registered": "registered",
    "unregistered": "unregistered",
    "expired": "expired",
    "purged": "expired",
    "connection_closed": "deactivated",
    # max_contacts pushed it out for a newer one: coming back would push
    # out another, so not "deactivated" (RFC 3680 5.1: re-register at once).
    "evicted": "rejected",
}


#: The Subscription-State of the NOTIFY that ends a fetch (RFC 6665 4.4.3).
FETCH_END = "terminated;reason=timeout"


def contact_changes(event: AorEvent, gone: Iterable[Binding]) -> list[ContactChange]:
    """The reginfo contacts a registration event reports (RFC 3680 5.1): the
    bindings that came as registered (of an available or changed event), and
    those that went (``gone``) as terminated with why: expired when they had
    by the time of the event, else as the event's reason says (a closed
    connection deactivates its contacts)."""
    out: list[ContactChange] = []
    if event.kind != "unavailable":
        out = [(b, True, "registered") for b in event.bindings]
    why = _CONTACT_EVENT.get(event.reason, "unregistered")
    out += [(b, False, "expired" if b.expires_at <= event.at else why) for b in gone]
    return out


class NotifyBuilder:
    """Builds the NOTIFYs of a subscription; see the module docstring.

    ``contact(sub)`` gives our Contact URI in the dialog of ``sub``; ``new_tag`` and ``new_call_id``
    the From tag and Call-ID of each lanscape NOTIFY.
    """

    def __init__(
        self,
        settings: PresenceSettings,
        roster: Roster,
        *,
        contact: Callable[[Subscription], str],
        new_tag: Callable[[], str],
        new_call_id: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.roster = roster
        self.contact_uri = contact
        self._new_tag = new_tag
        self._new_call_id = new_call_id
        self._notify_ids = itertools.count(1)

    def notify(self, sub: Subscription, request: Request, *, final: bool = False) -> Notify:
        """``request`` as a Notify of ``sub``, with a new id and where to send it."""
        hop = sub.remote_target if sub.form == "lanscape" else build.next_hop(sub)
        notify_id = f"{sub.id}.{next(self._notify_ids)}"
        return Notify(notify_id, sub.id, request, sub.source, hop, final)

    def event(self, sub: Subscription) -> str:
        """The Event value naming no one: the package and its ``id``."""
        return event_value(sub.event, (), sub.event_id)

    def dialog_request(
        self, sub: Subscription, state: str, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        """An in-dialog NOTIFY of ``sub`` with Subscription-State ``state``."""
        return build.in_dialog(
            sub,
            contact=self.contact_uri(sub),
            event=self.event(sub),
            state=state,
            body=body,
            content_type=content_type,
            user_agent=self.settings.user_agent,
        )

    def list_notify(self, sub: Subscription, now: float) -> Notify:
        """A registrar-event NOTIFY naming no one yet (``fill`` adds the names)."""
        if sub.form == "lanscape":
            request = build.lanscape(
                sub,
                registrar=build.registrar_uri(self.settings.registrar_name, sub.domain),
                event=self.event(sub),
                call_id=self._new_call_id(),
                from_tag=self._new_tag(),
                user_agent=self.settings.user_agent,
            )
        elif sub.fetch:
            # Sized with the longer state of the last one (``next_list_notify``).
            request = self.dialog_request(sub, FETCH_END)
        else:
            request = self.dialog_request(sub, f"active;expires={sub.remaining(now)}")
        notify = self.notify(sub, request)
        notify.listed = []
        return notify

    def fill(
        self,
        sub: Subscription,
        notify: Notify,
        encoded: list[str],
        sizes: list[int],
        start: int,
        *,
        at_least_one: bool,
    ) -> int:
        """Add the entries from ``start`` that fit to ``notify``; the new start."""
        listed = notify.listed if notify.listed is not None else []
        if notify.size is None:
            notify.size = len(notify.request.to_bytes())
        joint = 1 if listed else len(PARAM_PREFIX)
        room = self.settings.build_limit - notify.size - joint
        end = pack(sizes, room, start, at_least_one=at_least_one)
        if end > start:
            listed.extend(encoded[start:end])
            notify.listed = listed
            notify.request.set("Event", event_value(sub.event, listed, sub.event_id))
            # The Event value grew by exactly the new entries and their separators.
            notify.size += joint + sum(sizes[start:end]) + (end - start - 1)
        return end

    def unlist_listing(self, sub: Subscription, prefix: str) -> None:
        """Take the user whose entry starts with ``prefix`` (``name_prefix``)
        out of the initial list still to be sent (``listing``; the shared
        list is copied, never changed)."""
        if sub.listing is None:
            return
        encoded, sizes, start = sub.listing
        rest = range(start, len(encoded))
        if not any(encoded[i].startswith(prefix) for i in rest):
            return  # the common case: nothing to copy
        kept = [i for i in rest if not encoded[i].startswith(prefix)]
        sub.listing = ([encoded[i] for i in kept], [sizes[i] for i in kept], 0) if kept else None

    def unlist(self, sub: Subscription, notify: Notify, prefix: str) -> bool:
        """Take the user whose entry starts with ``prefix`` (``name_prefix``)
        out of ``notify``, a list NOTIFY not sent yet; True when it named them."""
        listed = notify.listed
        if not listed:
            return False
        kept = [entry for entry in listed if not entry.startswith(prefix)]
        if len(kept) == len(listed):
            return False
        listed[:] = kept
        notify.request.set("Event", event_value(sub.event, listed, sub.event_id))
        notify.size = None  # shorter now; only ``fill`` reads it, which is done with it
        return True

    def list_notifies(
        self, sub: Subscription, encoded: list[str], sizes: list[int], now: float, start: int = 0
    ) -> list[Notify]:
        """NOTIFYs naming ``encoded[start:]``, each within the size limit."""
        out: list[Notify] = []
        while start < len(encoded) or not out:
            notify = self.list_notify(sub, now)
            start = self.fill(sub, notify, encoded, sizes, start, at_least_one=True)
            out.append(notify)
        return out

    def reg_notify(
        self,
        sub: Subscription,
        now: float,
        changed: list[ContactChange] | None,
        *,
        state: RegistrationState | None = None,
    ) -> Notify:
        """reginfo (RFC 3680 5.1): full state when ``changed`` is None, else
        partial, with the registration ``state`` the change brings (by
        default active when a contact came, else terminated)."""
        contacts: list[ContactChange]
        if changed is None:
            bindings = self.roster.bindings(sub.resource, now)
            state = "active" if bindings else ("init" if sub.version == 0 else "terminated")
            contacts = [(b, True, "registered") for b in bindings]
        else:
            # The state the change itself brings (the store may already be
            # past it: the events reach presence a turn of the loop later).
            if state is None:
                state = "active" if any(active for _, active, _ in changed) else "terminated"
            contacts = changed
        body = reginfo(
            sub.resource,
            version=sub.version,
            full=changed is None,
            state=state,
            contacts=contacts,
            now=now,
        )
        sub.version += 1
        request = self.dialog_request(
            sub, f"active;expires={sub.remaining(now)}", body, REGINFO_TYPE
        )
        return self.notify(sub, request)

    def presence_notify(self, sub: Subscription, now: float, state: str = "") -> Notify:
        """PIDF open when the watched AOR has a binding, else closed (RFC 3863 4.1.4)."""
        body = pidf(sub.resource, self.roster.is_available(sub.resource), now)
        state = state or f"active;expires={sub.remaining(now)}"
        return self.notify(sub, self.dialog_request(sub, state, body, PIDF_TYPE))

    def state_notifies(self, sub: Subscription, now: float, *, initial: bool) -> list[Notify]:
        """The NOTIFYs a new or refreshed subscription gets (RFC 6665 4.2.1.2).

        A new registrar-event subscription gets none here: its list is
        started as ``sub.listing`` and made a NOTIFY at a time
        (``next_list_notify``) as there is room to send one.
        """
        if sub.kind == "reg":
            return [self.reg_notify(sub, now, None)]
        if sub.kind == "presence":
            return [self.presence_notify(sub, now)]
        if not initial:
            return [self.list_notify(sub, now)]
        encoded, sizes = self.roster.encoded_list(sub.domain, available=sub.kind == "available")
        sub.listing = (encoded, sizes, 0)
        return []

    def next_list_notify(self, sub: Subscription, now: float) -> Notify:
        """The next NOTIFY of ``sub``'s initial list (``listing``), which moves
        on past the entries it names (``listing`` None once all are). An empty list
        is one NOTIFY without ``param``. A fetch's last one is terminated and
        ``final``."""
        assert sub.listing is not None
        encoded, sizes, start = sub.listing
        notify = self.list_notify(sub, now)
        start = self.fill(sub, notify, encoded, sizes, start, at_least_one=True)
        sub.listing = (encoded, sizes, start) if start < len(encoded) else None
        if sub.fetch:
            # A fetch's list ends with its terminated NOTIFY (RFC 6665 4.4.3);
            # those before it are active, for no time left.
            if sub.listing is None:
                notify.final = True
            else:
                notify.request.set("Subscription-State", "active;expires=0")
        return notify

    def final(
        self, sub: Subscription, now: float, reason: str, *, with_state: bool = False
    ) -> Notify:
        """The NOTIFY that ends a subscription (RFC 6665 4.2.2): terminated, a
        body only for a reg or presence fetch (a registrar event's fetch ends
        its list instead: ``next_list_notify``)."""
        state = f"terminated;reason={reason}"
        if with_state and sub.kind == "presence":
            notify = self.presence_notify(sub, now, state)
        elif with_state and sub.kind == "reg":
            bindings = self.roster.bindings(sub.resource, now)
            body = reginfo(
                sub.resource,
                version=0,
                full=True,
                state="active" if bindings else "init",
                contacts=[(b, True, "registered") for b in bindings],
                now=now,
            )
            notify = self.notify(sub, self.dialog_request(sub, state, body, REGINFO_TYPE))
        else:
            notify = self.notify(sub, self.dialog_request(sub, state))
        notify.final = True
        return notify
