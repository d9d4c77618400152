"""The standard packages: reg (RFC 3680) and presence with PIDF (RFC 3856, RFC 3863)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from centrex.presence import Notify, SubscriptionTable
from centrex.registrar.binding import Binding
from centrex.registrar.events import AorEvent, EventReason
from centrex.sip.message import Request, Response

from .helpers import (
    DOMAIN,
    PHONE,
    SUBSCRIBER,
    T0,
    binding,
    came,
    left,
    make_table,
    reparse,
    subscribe,
    within,
)

REG = "{urn:ietf:params:xml:ns:reginfo}"
PIDF = "{urn:ietf:params:xml:ns:pidf}"
WATCHED = f"sip:1234@{DOMAIN}"


def _subscribe(
    table: SubscriptionTable, request: Request, now: float = T0
) -> tuple[Response, list[Notify]]:
    return table.handle_subscribe(request, subscriber=SUBSCRIBER, source=PHONE, now=now)


def _xml(notify: Notify, content_type: str) -> ET.Element:
    parsed = reparse(notify)
    assert parsed.get("Content-Type") == content_type
    assert parsed.content_length == len(parsed.body)
    return ET.fromstring(parsed.body)


def _reginfo(notify: Notify) -> ET.Element:
    return _xml(notify, "application/reginfo+xml")


def _basic(notify: Notify) -> str | None:
    root = _xml(notify, "application/pidf+xml")
    assert root.tag == f"{PIDF}presence"
    assert root.get("entity") == WATCHED
    return root.findtext(f"{PIDF}tuple/{PIDF}status/{PIDF}basic")


def _reg_subscribe(table: SubscriptionTable) -> tuple[Response, Notify]:
    request = subscribe("reg", ruri=WATCHED, call_id="reg-sub")
    ok, (notify,) = _subscribe(table, request)
    assert ok.status == 200
    table.notify_result(notify.id, 200, T0)
    return ok, notify


def test_reg_starts_with_the_full_state_of_the_aor() -> None:
    table = make_table()
    event = AorEvent(
        "available",
        WATCHED,
        "registered",
        T0 - 60,
        (binding("1234", T0 - 60), binding("1234", T0 - 60, q=0.5, contact="sip:1234@10.0.0.2")),
    )
    table.on_aor_event(event, T0 - 60)
    _, notify = _reg_subscribe(table)
    assert notify.request.get("Event") == "reg"
    root = _reginfo(notify)
    assert (root.tag, root.get("version"), root.get("state")) == (f"{REG}reginfo", "0", "full")
    (registration,) = root.findall(f"{REG}registration")
    assert registration.get("aor") == WATCHED
    assert registration.get("state") == "active"
    contacts = registration.findall(f"{REG}contact")
    assert [(c.get("state"), c.get("event")) for c in contacts] == [("active", "registered")] * 2
    assert [c.findtext(f"{REG}uri") for c in contacts] == [
        "sip:1234@192.168.1.54:5060",
        "sip:1234@10.0.0.2",
    ]
    assert contacts[0].get("expires") == "3540"
    assert contacts[0].get("duration-registered") == "60"
    assert contacts[1].get("q") == "0.5"


def test_reg_of_a_user_never_registered_is_init() -> None:
    _, notify = _reg_subscribe(make_table())
    (registration,) = _reginfo(notify).findall(f"{REG}registration")
    assert registration.get("state") == "init"
    assert registration.findall(f"{REG}contact") == []


@pytest.mark.parametrize(
    ("reason", "event"),
    [
        ("unregistered", "unregistered"),
        ("expired", "expired"),
        ("purged", "expired"),
        ("connection_closed", "deactivated"),
    ],
)
def test_reg_reports_a_change_as_a_partial_document_with_the_next_version(
    reason: EventReason, event: str
) -> None:
    table = make_table()
    table.on_aor_event(came("1234"), T0)
    _reg_subscribe(table)
    (notify,) = table.on_aor_event(left("1234", T0 + 5, reason), T0 + 5)
    root = _reginfo(notify)
    assert (root.get("version"), root.get("state")) == ("1", "partial")
    registration = root.find(f"{REG}registration")
    assert registration is not None
    assert registration.get("state") == "terminated"
    (contact,) = registration.findall(f"{REG}contact")
    assert (contact.get("state"), contact.get("event"), contact.get("expires")) == (
        "terminated",
        event,
        "0",
    )
    table.notify_result(notify.id, 200, T0 + 5)
    (back,) = table.on_aor_event(came("1234", T0 + 9), T0 + 9)
    root = _reginfo(back)
    assert root.get("version") == "2"
    assert root.find(f"{REG}registration/{REG}contact") is not None


def test_reg_refresh_sends_the_full_state_again() -> None:
    table = make_table()
    table.on_aor_event(came("1234"), T0)
    request = subscribe("reg", ruri=WATCHED, call_id="reg-sub")
    ok, (first,) = _subscribe(table, request)
    table.notify_result(first.id, 200, T0)
    _, (again,) = _subscribe(table, within(ok, request), T0 + 100)
    root = _reginfo(again)
    assert (root.get("version"), root.get("state")) == ("1", "full")


def _contacts(notify: Notify) -> tuple[str | None, list[tuple[str | None, ...]]]:
    """A partial reginfo's registration state and (state, event, uri) of its contacts."""
    root = _reginfo(notify)
    assert root.get("state") == "partial"
    registration = root.find(f"{REG}registration")
    assert registration is not None
    contacts = [
        (c.get("state"), c.get("event"), c.findtext(f"{REG}uri"))
        for c in registration.iter(f"{REG}contact")
    ]
    return registration.get("state"), contacts


def test_reg_watchers_get_a_partial_for_each_contact_that_comes_or_goes() -> None:
    # RFC 3680 5.1: while the AOR stays registered, a second phone, one of
    # the two unregistering, expiring or pushed out are each a partial
    # document naming that contact; the registration stays active.
    table = make_table()
    desk = binding("1234")
    table.on_aor_event(AorEvent("available", WATCHED, "registered", T0, (desk,)), T0)
    assert WATCHED not in table.reg_watched
    ok, _ = _reg_subscribe(table)
    assert table.reg_watched == {WATCHED}
    soft = binding("1234", contact="sip:1234@10.0.0.3")
    seen = []
    for event in [
        AorEvent("changed", WATCHED, "unregistered", T0 + 1, (soft,)),
        AorEvent("changed", WATCHED, "unregistered", T0 + 2, gone=(soft,)),
        AorEvent("changed", WATCHED, "purged", T0 + 3, gone=(binding("1234", expires=2),)),
        AorEvent("changed", WATCHED, "evicted", T0 + 4, gone=(soft,)),
        AorEvent("changed", WATCHED, "connection_closed", T0 + 5, gone=(soft,)),
    ]:
        (notify,) = table.on_aor_event(event, event.at)
        table.notify_result(notify.id, 200, event.at)
        seen.append((_reginfo(notify).get("version"), *_contacts(notify)))
    assert seen == [
        ("1", "active", [("active", "registered", soft.contact)]),
        ("2", "active", [("terminated", "unregistered", soft.contact)]),
        ("3", "active", [("terminated", "expired", "sip:1234@192.168.1.54:5060")]),
        ("4", "active", [("terminated", "rejected", soft.contact)]),
        ("5", "active", [("terminated", "deactivated", soft.contact)]),
    ]
    # Only reg watchers hear of them; the AOR leaves reg_watched with its last one.
    presence = subscribe("presence", ruri=WATCHED, call_id="buddy")
    _, (first,) = _subscribe(table, presence)
    table.notify_result(first.id, 200, T0 + 6)
    notifies = table.on_aor_event(
        AorEvent("changed", WATCHED, "unregistered", T0 + 6, (soft,)), T0 + 6
    )
    assert [n.request.get("Event") for n in notifies] == ["reg"]
    request = subscribe("reg", ruri=WATCHED, call_id="reg-sub")
    _subscribe(table, within(ok, request, expires=0, cseq=2), T0 + 7)
    assert table.reg_watched == set()
    late = AorEvent("changed", WATCHED, "unregistered", T0 + 8, (soft,))
    assert table.on_aor_event(late, T0 + 8) == []


def test_reg_lists_what_the_store_holds_and_what_went_from_the_event() -> None:
    # With the location store as the roster's source: a phone registered
    # after the user became available (no event) is in the full state, and
    # the last unregistration's partial names the contact that went.
    store: dict[str, tuple[Binding, ...]] = {}

    def live(aor: str, now: float) -> tuple[Binding, ...]:
        return tuple(b for b in store.get(aor, ()) if b.expires_at > now)

    table = make_table(bindings_of=live)
    desk = binding("1234")
    store[WATCHED] = (desk,)
    table.on_aor_event(AorEvent("available", WATCHED, "registered", T0, (desk,)), T0)
    soft = binding("1234", contact="sip:1234@10.0.0.3")
    store[WATCHED] = (desk, soft)
    _, full = _reg_subscribe(table)
    uris = [c.findtext(f"{REG}uri") for c in _reginfo(full).iter(f"{REG}contact")]
    assert sorted(uris) == sorted([desk.contact, soft.contact])
    store[WATCHED] = ()
    gone = AorEvent("unavailable", WATCHED, "unregistered", T0 + 5, gone=(soft,))
    (partial,) = table.on_aor_event(gone, T0 + 5)
    root = _reginfo(partial)
    assert root.get("state") == "partial"
    registration = root.find(f"{REG}registration")
    assert registration is not None and registration.get("state") == "terminated"
    assert [
        (c.get("state"), c.findtext(f"{REG}uri")) for c in registration.iter(f"{REG}contact")
    ] == [("terminated", soft.contact)]


def test_a_partial_takes_its_state_from_the_change_not_from_the_store() -> None:
    # The events reach presence a turn of the loop after the store changed:
    # a user who registered and unregistered in between is reported active
    # by the first partial (its contacts registered), terminated by the next.
    store: dict[str, tuple[Binding, ...]] = {}
    table = make_table(bindings_of=lambda aor, now: store.get(aor, ()))
    _reg_subscribe(table)
    (partial,) = table.on_aor_event(came("1234", T0 + 1), T0 + 1)
    registration = _reginfo(partial).find(f"{REG}registration")
    assert registration is not None and registration.get("state") == "active"
    assert [c.get("state") for c in registration.iter(f"{REG}contact")] == ["active"]


def test_presence_is_open_with_a_binding_and_closed_without() -> None:
    table = make_table()
    request = subscribe("presence", ruri=WATCHED, call_id="buddy")
    ok, (first,) = _subscribe(table, request)
    assert ok.status == 200
    assert first.request.get("Event") == "presence"
    assert _basic(first) == "closed"
    table.notify_result(first.id, 200, T0)
    (online,) = table.on_aor_event(came("1234", T0 + 1), T0 + 1)
    assert _basic(online) == "open"
    assert online.request.get("Subscription-State") == "active;expires=3599"
    table.notify_result(online.id, 200, T0 + 1)
    (offline,) = table.on_aor_event(left("1234", T0 + 2), T0 + 2)
    assert _basic(offline) == "closed"
    # Other users' changes do not reach this watcher.
    table.notify_result(offline.id, 200, T0 + 2)
    assert table.on_aor_event(came("1235", T0 + 3), T0 + 3) == []


def test_presence_unsubscribe_ends_with_a_terminated_notify() -> None:
    table = make_table()
    request = subscribe("presence", ruri=WATCHED, call_id="buddy")
    ok, (first,) = _subscribe(table, request)
    table.notify_result(first.id, 200, T0)
    _, (final,) = _subscribe(table, within(ok, request, expires=0), T0 + 1)
    assert final.request.get("Subscription-State") == "terminated;reason=timeout"
    assert table.on_aor_event(came("1234"), T0 + 2) == []


def test_presence_fetch_carries_the_state_in_the_terminated_notify() -> None:
    table = make_table()
    table.on_aor_event(came("1234"), T0)
    _, (notify,) = _subscribe(table, subscribe("presence", ruri=WATCHED, expires=0))
    assert notify.request.get("Subscription-State") == "terminated;reason=timeout"
    assert _basic(notify) == "open"
    assert len(table) == 0


def test_a_subscription_to_an_unknown_user_gets_404() -> None:
    request = subscribe("presence", ruri=f"sip:nobody@{DOMAIN}")
    response, notifies = _subscribe(make_table(), request)
    assert response.status == 404
    assert notifies == []


def test_an_accept_without_the_body_type_gets_406() -> None:
    request = subscribe("presence", ruri=WATCHED, extra=["Accept: application/cpim-pidf+xml"])
    response, _ = _subscribe(make_table(), request)
    assert response.status == 406
    ok, _ = _subscribe(
        make_table(), subscribe("presence", ruri=WATCHED, extra=["Accept: application/*"])
    )
    assert ok.status == 200


def test_standard_packages_can_be_switched_off() -> None:
    table = make_table(standard_packages=False)
    response, _ = _subscribe(table, subscribe("presence", ruri=WATCHED))
    assert response.status == 489
    assert response.get("Allow-Events") == "user-available, user-unavailable"


def test_standard_packages_use_the_dialog_even_in_lanscape_mode() -> None:
    table = make_table(compat="lanscape")
    request = subscribe("presence", ruri=WATCHED, call_id="buddy")
    _, (notify,) = _subscribe(table, request)
    assert notify.request.call_id == "buddy"
    assert notify.request.to_tag == request.from_tag
    assert notify.request.get("Subscription-State") == "active;expires=3600"
