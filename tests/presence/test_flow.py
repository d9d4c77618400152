"""The flow of the issue, end to end, in both wire forms, on a fake clock."""

from __future__ import annotations

import pytest

from centrex.presence import Notify, SubscriptionTable
from centrex.sip.message import Request, Response

from .helpers import (
    DOMAIN,
    PHONE,
    PHONE_CONTACT,
    SUBSCRIBER,
    T0,
    USERS,
    answer_all,
    came,
    left,
    make_table,
    names,
    reparse,
    subscribe,
    within,
)

EXAMPLE = (
    "user-available;param=voicemail|The company voicemail server"
    "|1234|Engineering Lab|1235|Ted McGraw"
)


def _table(compat: str) -> SubscriptionTable:
    table = make_table((*USERS, ("1236", "Lab Bench")), compat=compat)
    for user in ("voicemail", "1234", "1235"):
        assert table.on_aor_event(came(user), T0 - 100) == []  # nobody is watching yet
    return table


def _subscribe(
    table: SubscriptionTable, request: Request, now: float = T0
) -> tuple[Response, list[Notify]]:
    return table.handle_subscribe(request, subscriber=SUBSCRIBER, source=PHONE, now=now)


def _check_shape(compat: str, notify: Notify, request: Request, response: Response) -> None:
    """The headers each wire form promises, read back from the bytes."""
    got = reparse(notify)
    assert got.method == "NOTIFY"
    assert got.uri == PHONE_CONTACT
    assert got.max_forwards == 70
    assert notify.source == PHONE
    if compat == "lanscape":
        assert got.call_id != request.call_id
        assert str(got.from_addr.uri) == f"sip:Registrar@{DOMAIN}"
        assert got.from_tag
        assert got.get("To") == f"<{PHONE_CONTACT}>"
        assert got.to_tag is None
        assert got.get("Contact") == f"<sip:Registrar@{DOMAIN}>"
        assert "Subscription-State" not in got
    else:
        assert got.call_id == request.call_id
        assert got.from_tag == response.to_tag
        assert got.to_tag == request.from_tag
        assert str(got.to_addr.uri) == f"sip:1244@{DOMAIN}"
        assert str(got.from_addr.uri) == f"sip:Registrar@{DOMAIN}"
        assert (got.get("Subscription-State") or "").startswith(("active;expires=", "terminated"))
        assert got.get("Contact") == f"<sip:Registrar@{DOMAIN}>"


@pytest.mark.parametrize("compat", ["", "lanscape"])
def test_subscribe_both_events_see_arrivals_and_departures_then_unsubscribe(compat: str) -> None:
    table = _table(compat)

    # 1. SUBSCRIBE to the registrar, Event: user-available, Expires: 3600 -> 200 OK.
    avail_req = subscribe("user-available")
    avail_ok, notifies = _subscribe(table, avail_req)
    assert avail_ok.status == 200
    assert avail_ok.expires == 3600
    assert avail_ok.to_tag is not None
    # 2. The list of registered users, name|description pairs in the Event header.
    sent = answer_all(table, notifies, T0)
    assert [n.request.get("Event") for n in sent] == [EXAMPLE]
    for notify in sent:
        _check_shape(compat, notify, avail_req, avail_ok)

    # The same for user-unavailable: the directory's users that are not registered.
    gone_req = subscribe("user-unavailable", call_id="sub-2@192.168.1.2", from_tag="ph2")
    gone_ok, notifies = _subscribe(table, gone_req)
    assert gone_ok.status == 200
    sent = answer_all(table, notifies, T0)
    assert names(sent) == ["1244", "1236"]
    assert sent[0].request.get("Event") == "user-unavailable;param=1244|Reception|1236|Lab Bench"

    # 3. A user registers: every user-available subscriber gets its name, no one else.
    notifies = table.on_aor_event(came("1236", T0 + 10), T0 + 10)
    assert [n.request.get("Event") for n in notifies] == ["user-available;param=1236|Lab Bench"]
    _check_shape(compat, notifies[0], avail_req, avail_ok)
    answer_all(table, notifies, T0 + 10)

    # A user leaves: every user-unavailable subscriber gets its name.
    notifies = table.on_aor_event(left("1234", T0 + 20), T0 + 20)
    assert [n.request.get("Event") for n in notifies] == [
        "user-unavailable;param=1234|Engineering Lab"
    ]
    _check_shape(compat, notifies[0], gone_req, gone_ok)
    answer_all(table, notifies, T0 + 20)

    # 4. Expires: 0 ends the user-available subscription.
    bye_ok, notifies = _subscribe(table, within(avail_ok, avail_req, expires=0), T0 + 30)
    assert bye_ok.status == 200
    assert bye_ok.expires == 0
    if compat == "lanscape":
        assert notifies == []
    else:
        (final,) = notifies
        assert final.final
        assert final.request.get("Subscription-State") == "terminated;reason=timeout"
        assert final.request.get("Event") == "user-available"
        _check_shape(compat, final, avail_req, avail_ok)
    # ... and no NOTIFY for that event follows.
    assert table.on_aor_event(came("1234", T0 + 40), T0 + 40) == []
    # The other event still works.
    notifies = table.on_aor_event(left("1235", T0 + 50), T0 + 50)
    assert names(notifies) == ["1235"]
    assert [w.event for w in table.watchers(T0 + 50)] == ["user-unavailable"]


@pytest.mark.parametrize("compat", ["", "lanscape"])
def test_event_names_are_settings(compat: str) -> None:
    table = make_table(compat=compat, event_available="online", event_unavailable="offline")
    table.on_aor_event(came("1234"), T0)
    ok, notifies = _subscribe(table, subscribe("online"))
    assert ok.status == 200
    assert notifies[0].request.get("Event") == "online;param=1234|Engineering Lab"
    refused, none = _subscribe(table, subscribe("user-available", call_id="x"))
    assert refused.status == 489
    assert none == []
    assert refused.get("Allow-Events") == "online, offline, reg, presence"


def test_presence_events_off_refuses_every_package() -> None:
    table = make_table(enabled=False)
    for event in ("user-available", "presence", "reg"):
        response, notifies = _subscribe(table, subscribe(event, call_id=event))
        assert response.status == 489
        assert notifies == []
    assert len(table) == 0
