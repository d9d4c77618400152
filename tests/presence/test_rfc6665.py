"""The notifier rules of RFC 6665 4.2 and the dialog rules of RFC 3261 12."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from centrex.presence import Notify, SubscriptionTable
from centrex.presence.subscriptions import LANSCAPE_WINDOW
from centrex.registrar.binding import Source
from centrex.sip.message import Request, Response

from .helpers import (
    PHONE,
    SUBSCRIBER,
    T0,
    answer_all,
    came,
    directory,
    left,
    make_table,
    names,
    reparse,
    subscribe,
    within,
)


def _subscribe(
    table: SubscriptionTable,
    request: Request,
    now: float = T0,
    *,
    subscriber: str = SUBSCRIBER,
    source: Source = PHONE,
) -> tuple[Response, list[Notify]]:
    return table.handle_subscribe(request, subscriber=subscriber, source=source, now=now)


def _many_users(count: int) -> list[tuple[str, str]]:
    return [(f"{2000 + i}", f"Desk {i} of the second floor east wing") for i in range(count)]


def _registered_table(count: int, **changes: Any) -> SubscriptionTable:
    table = make_table(_many_users(count), **changes)
    for name, _ in _many_users(count):
        table.on_aor_event(came(name), T0 - 1)
    return table


def test_in_dialog_notifies_go_one_at_a_time_with_cseq_one_higher_each() -> None:
    table = _registered_table(100)
    _, first = _subscribe(table, subscribe())
    assert len(first) == 1  # the rest waits for the answer to the first
    sent = answer_all(table, first, T0)
    assert len(sent) > 2
    cseqs = [reparse(n).cseq.number for n in sent]
    assert cseqs == list(range(1, len(sent) + 1))
    assert {reparse(n).call_id for n in sent} == {"sub-1@192.168.1.2"}
    assert names(sent) == [name for name, _ in _many_users(100)]


def test_lanscape_notifies_go_a_window_at_a_time_each_its_own_request() -> None:
    table = _registered_table(100, compat="lanscape")
    _, first = _subscribe(table, subscribe())
    assert len(first) == LANSCAPE_WINDOW  # the rest waits for answers
    sent = answer_all(table, first, T0)
    assert len(sent) > LANSCAPE_WINDOW
    assert len({n.request.call_id for n in sent}) == len(sent)
    assert names(sent) == [name for name, _ in _many_users(100)]


def test_a_lanscape_phone_that_never_answers_is_never_sent_more_than_the_window() -> None:
    table = _registered_table(100, compat="lanscape", notify_min_interval_s=0)
    _, first = _subscribe(table, subscribe())
    sent = list(first)
    for i in range(50):  # a registration storm, the phone silent
        sent += table.on_aor_event(came(f"30{i:02}"), T0 + 1 + i / 100)
    assert len(sent) == LANSCAPE_WINDOW
    # Its names are all still owed: the first answers release them.
    sent += answer_all(table, sent, T0 + 2)
    assert names(sent)[-50:] == [f"30{i:02}" for i in range(50)]


def test_changes_soon_after_a_change_wait_for_the_interval_and_go_together() -> None:
    table = make_table(notify_min_interval_s=1.0)
    _, first = _subscribe(table, subscribe())
    answer_all(table, first, T0)
    (told,) = table.on_aor_event(came("1234"), T0 + 10)  # after a quiet spell: at once
    assert names([told]) == ["1234"]
    assert table.notify_result(told.id, 200, T0 + 10) == []
    assert table.on_aor_event(came("1235"), T0 + 10.2) == []  # within the interval: held
    assert table.on_aor_event(came("voicemail"), T0 + 10.4) == []
    due = table.next_release()
    assert due is not None and T0 + 11 <= due < T0 + 12  # at its phase of the interval
    assert table.release_due(due - 0.01) == []
    (together,) = table.release_due(due)
    assert names([together]) == ["1235", "voicemail"]
    assert table.release_due(due + 5) == []
    assert table.next_release() is None


def test_a_registration_storm_reaches_a_watcher_in_about_one_burst_per_interval() -> None:
    users = [(f"{2000 + i}", "") for i in range(100)]  # short: a burst fits one NOTIFY
    table = make_table(users, notify_min_interval_s=1.0)
    _, first = _subscribe(table, subscribe())
    answer_all(table, first, T0)
    sent: list[Notify] = []
    in_flight: list[tuple[float, Notify]] = []

    def step(now: float, out: list[Notify]) -> None:
        sent.extend(out)
        in_flight.extend((now + 0.01, n) for n in out)  # the phone answers in 10 ms
        for answered_at, n in [x for x in in_flight if x[0] <= now]:
            in_flight.remove((answered_at, n))
            step(now, table.notify_result(n.id, 200, answered_at))

    start = T0 + 10
    for i in range(100):  # 100 users register over 2 seconds
        now = start + i * 0.02
        step(now, table.on_aor_event(came(f"{2000 + i}"), now) + table.release_due(now))
    for k in range(1, 400):  # then time passes
        now = start + 2 + k * 0.01
        step(now, table.release_due(now))
    assert names(sent) == [f"{2000 + i}" for i in range(100)]
    # The first change at once, then one burst per interval (1-1.5 s): 2 or 3 more.
    assert 3 <= len(sent) <= 4
    assert table.next_release() is None


def _watchers(table: SubscriptionTable, count: int) -> list[Notify]:
    """``count`` phones subscribed to user-available, their first NOTIFYs answered."""
    sent: list[Notify] = []
    for i in range(count):
        request = subscribe(call_id=f"sub-{i}", contact=f"<sip:1244@192.168.1.{i + 2}:5060>")
        _, first = _subscribe(table, request)
        sent += answer_all(table, first, T0)
    return sent


def test_held_changes_of_watchers_told_at_once_go_one_after_another_across_the_interval() -> None:
    table = make_table(notify_min_interval_s=1.0)
    _watchers(table, 16)
    told = table.on_aor_event(came("1234"), T0 + 10)  # after a quiet spell: all at once
    assert len(told) == 16
    answer_all(table, told, T0 + 10)
    assert table.on_aor_event(came("1235"), T0 + 10.2) == []  # held, for every watcher
    released: dict[str, float] = {}
    now = T0 + 10.2
    while now < T0 + 13:
        now += 0.01
        for notify in table.release_due(now):
            assert names([notify]) == ["1235"]
            released[notify.subscription_id] = now
            table.notify_result(notify.id, 200, now)
    assert len(released) == 16
    times = sorted(released.values())
    assert times[0] >= T0 + 11 and times[-1] < T0 + 12.01  # each after its interval...
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 16 - 0.011  # ...evenly spread: never two together


def test_under_a_storm_each_watcher_gets_one_burst_per_interval_at_its_own_phase() -> None:
    users = [(f"{2000 + i}", "") for i in range(200)]
    table = make_table(users, notify_min_interval_s=1.0)
    _watchers(table, 8)
    bursts: dict[str, list[float]] = {}
    start = T0 + 10
    for k in range(400):  # 100 registrations a second for 4 seconds, answered at once
        now = start + k / 100
        out = table.on_aor_event(came(f"{2000 + k % 200}"), now) + table.release_due(now)
        while out:
            notify = out.pop()
            bursts.setdefault(notify.subscription_id, []).append(now)
            out += table.notify_result(notify.id, 200, now)
    assert len(bursts) == 8
    for times in bursts.values():
        later = sorted(set(times))[1:]  # after the first change, which went at once
        assert [round(b - a, 2) for a, b in itertools.pairwise(later)] == [1.0] * (len(later) - 1)
    # The watchers' phases are eighths of the interval (this loop steps 10 ms).
    second = sorted(sorted(set(times))[1] - start - 1 for times in bursts.values())
    assert all(0 <= at - i / 8 < 0.011 for i, at in enumerate(second))


def test_release_due_with_a_limit_leaves_the_others_due() -> None:
    table = make_table(notify_min_interval_s=1.0)
    _watchers(table, 6)
    answer_all(table, table.on_aor_event(came("1234"), T0 + 10), T0 + 10)
    table.on_aor_event(came("1235"), T0 + 10.2)
    later = T0 + 20  # the loop was late: every watcher is due
    first = table.release_due(later, limit=2)
    assert len(first) == 2
    assert table.next_release() is not None and table.next_release() <= later  # type: ignore[operator]
    rest = table.release_due(later)
    assert len(rest) == 4
    assert {n.subscription_id for n in first + rest} == {sub.id for sub in table}


def test_a_refresh_is_not_held_by_the_throttle() -> None:
    table = make_table(notify_min_interval_s=5.0)
    request = subscribe(expires=600)
    ok, first = _subscribe(table, request)
    answer_all(table, first, T0)
    (told,) = table.on_aor_event(came("1234"), T0 + 10)
    table.notify_result(told.id, 200, T0 + 10)
    assert table.on_aor_event(came("1235"), T0 + 11) == []  # held
    _, (refreshed,) = _subscribe(table, within(ok, request, expires=600), T0 + 12)
    assert names([refreshed]) == []  # the refresh's NOTIFY goes at once...
    assert table.next_release() is None
    (then,) = table.notify_result(refreshed.id, 200, T0 + 12)
    assert names([then]) == ["1235"]  # ...and the held name right after it


def test_without_the_throttle_every_change_goes_at_once() -> None:
    table = make_table(notify_min_interval_s=0)
    _, first = _subscribe(table, subscribe())
    answer_all(table, first, T0)
    for i, user in enumerate(["1234", "1235", "voicemail"]):
        (told,) = table.on_aor_event(came(user), T0 + 1 + i / 100)
        assert names([told]) == [user]
        table.notify_result(told.id, 200, T0 + 1 + i / 100)
    assert table.next_release() is None


def test_names_arriving_while_notifies_wait_join_the_last_waiting_one() -> None:
    table = make_table()
    _, (first,) = _subscribe(table, subscribe())  # an empty list, in flight
    assert table.on_aor_event(came("1234"), T0 + 1) == []  # waits for the first answer
    assert table.on_aor_event(came("1235"), T0 + 2) == []  # joins the waiting NOTIFY
    (waiting,) = table.notify_result(first.id, 200, T0 + 3)
    assert waiting.request.get("Event") == (
        "user-available;param=1234|Engineering Lab|1235|Ted McGraw"
    )
    assert waiting.request.cseq.number == 2


def test_an_empty_list_is_one_notify_without_param() -> None:
    table = make_table()
    ok, (notify,) = _subscribe(table, subscribe())
    assert ok.status == 200
    assert notify.request.get("Event") == "user-available"


def test_refresh_extends_the_subscription_and_sends_state_without_the_list() -> None:
    table = make_table()
    table.on_aor_event(came("1234"), T0)
    request = subscribe(expires=600)
    ok, first = _subscribe(table, request)
    answer_all(table, first, T0)
    again, (notify,) = _subscribe(table, within(ok, request, expires=1800), T0 + 500)
    assert again.status == 200
    assert again.expires == 1800
    assert notify.request.get("Event") == "user-available"
    assert notify.request.get("Subscription-State") == "active;expires=1800"
    assert table.watchers(T0 + 500)[0].expires_in == 1800
    assert table.expire(T0 + 1000) == []  # the old expiry has passed: still alive


def test_lanscape_refresh_is_answered_without_notify() -> None:
    table = make_table(compat="lanscape")
    request = subscribe()
    ok, _ = _subscribe(table, request)
    again, notifies = _subscribe(table, within(ok, request), T0 + 10)
    assert again.status == 200
    assert notifies == []


def test_refresh_updates_the_remote_target_and_source() -> None:
    table = make_table()
    request = subscribe()
    ok, first = _subscribe(table, request)
    answer_all(table, first, T0)
    moved = Source("udp", "198.51.100.7", 4000)
    refresh = within(ok, request, contact="<sip:1244@10.0.0.9:5062>")
    _, (notify,) = _subscribe(table, refresh, T0 + 1, source=moved)
    assert notify.request.uri == "sip:1244@10.0.0.9:5062"
    assert notify.source == moved


def test_a_subscribe_with_an_old_cseq_is_refused_with_500() -> None:
    table = make_table()
    request = subscribe(cseq=5)
    ok, _ = _subscribe(table, request)
    stale = subscribe(to_tag=ok.to_tag, cseq=5)
    response, notifies = _subscribe(table, stale)
    assert response.status == 500
    assert notifies == []


def test_a_subscribe_in_an_unknown_dialog_gets_481() -> None:
    table = make_table()
    response, notifies = _subscribe(table, subscribe(to_tag="not-ours"))
    assert response.status == 481
    assert notifies == []


def test_another_user_cannot_refresh_someone_elses_subscription() -> None:
    table = make_table()
    request = subscribe()
    ok, _ = _subscribe(table, request)
    response, _ = _subscribe(table, within(ok, request), subscriber="sip:1235@example.com")
    assert response.status == 403


def test_an_unknown_event_gets_489_with_allow_events() -> None:
    table = make_table()
    response, notifies = _subscribe(table, subscribe("dialog"))
    assert response.status == 489
    assert response.get("Allow-Events") == "user-available, user-unavailable, reg, presence"
    assert notifies == []
    assert len(table) == 0


def test_a_missing_or_malformed_event_gets_489_with_allow_events_too() -> None:
    table = make_table()
    no_event = subscribe()
    no_event.remove("Event")
    for request in (subscribe("a b"), no_event):
        response, notifies = _subscribe(table, request)
        assert response.status == 489
        assert response.get("Allow-Events") == "user-available, user-unavailable, reg, presence"
        assert notifies == []


def test_a_too_short_expires_gets_423_with_min_expires() -> None:
    table = make_table()
    response, _ = _subscribe(table, subscribe(expires=10))
    assert response.status == 423
    assert response.get("Min-Expires") == "60"


def test_a_long_expires_is_cut_to_the_maximum_and_a_missing_one_gets_the_default() -> None:
    table = make_table()
    long, _ = _subscribe(table, subscribe(expires=999999))
    assert long.expires == 7200
    default, _ = _subscribe(table, subscribe(expires=None, call_id="two", from_tag="x"))
    assert default.expires == 3600


def test_a_subscribe_without_contact_gets_400() -> None:
    response, _ = _subscribe(make_table(), subscribe(contact=None))
    assert response.status == 400


def test_the_event_id_is_echoed_and_must_match_on_refresh() -> None:
    table = make_table()
    request = subscribe("user-available;id=7")
    ok, (notify,) = _subscribe(table, request)
    assert notify.request.get("Event") == "user-available;id=7"
    table.notify_result(notify.id, 200, T0)
    wrong, _ = _subscribe(table, within(ok, request, event="user-available;id=8"))
    assert wrong.status == 481
    (listed,) = table.on_aor_event(came("1234"), T0 + 1)
    assert listed.request.get("Event") == "user-available;id=7;param=1234|Engineering Lab"
    table.notify_result(listed.id, 200, T0 + 1)
    ok_again, (state,) = _subscribe(table, within(ok, request, cseq=3), T0 + 2)
    assert ok_again.status == 200
    assert state.request.get("Event") == "user-available;id=7"


def test_route_set_is_the_record_route_in_order_and_the_200_copies_it() -> None:
    table = make_table()
    rr = "Record-Route: <sip:edge.example.net;lr>, <sip:core.example.net;lr>"
    ok, (notify,) = _subscribe(table, subscribe(extra=[rr]))
    assert ok.get_all("Record-Route") == [
        "<sip:edge.example.net;lr>",
        "<sip:core.example.net;lr>",
    ]
    assert notify.request.get_all("Route") == [
        "<sip:edge.example.net;lr>",
        "<sip:core.example.net;lr>",
    ]
    assert notify.request.uri == "sip:1244@192.168.1.2:10000"
    assert notify.next_hop == "sip:edge.example.net;lr"


def test_a_strict_router_becomes_the_request_uri() -> None:
    table = make_table()
    _, (notify,) = _subscribe(table, subscribe(extra=["Record-Route: <sip:old.example.net>"]))
    assert notify.request.uri == "sip:old.example.net"
    assert notify.request.get_all("Route") == ["<sip:1244@192.168.1.2:10000>"]


def test_a_new_subscribe_from_the_same_contact_replaces_the_old_one_silently() -> None:
    # A rebooted phone subscribes again from the same Contact: the old
    # subscription ends without a NOTIFY (deactivated would ask a UA still
    # holding it to subscribe again at once, RFC 6665 4.1.3).
    table = make_table()
    _, (first,) = _subscribe(table, subscribe(call_id="before-reboot"))
    table.notify_result(first.id, 200, T0)
    _, notifies = _subscribe(table, subscribe(call_id="after-reboot", from_tag="new"), T0 + 5)
    (listed,) = notifies
    assert listed.request.call_id == "after-reboot"
    assert len(table) == 1
    table.notify_result(listed.id, 200, T0 + 5)
    assert [n.request.call_id for n in table.on_aor_event(came("1234"), T0 + 10)] == [
        "after-reboot"
    ]


def test_a_new_lanscape_subscribe_from_the_same_contact_replaces_the_old_one_silently() -> None:
    table = make_table(compat="lanscape")
    _subscribe(table, subscribe(call_id="before-reboot"))
    _, notifies = _subscribe(table, subscribe(call_id="after-reboot", from_tag="new"), T0 + 5)
    assert len(notifies) == 1  # the list only: lanscape has no dialog to end
    assert len(table) == 1


def test_a_fetch_carries_the_list_and_leaves_the_callers_subscription_alone() -> None:
    # RFC 6665 4.4.3: Expires: 0 out of a dialog fetches the state once; the
    # subscription the phone holds from the same Contact goes on.
    table = make_table()
    table.on_aor_event(came("1234"), T0)
    _, (first,) = _subscribe(table, subscribe(call_id="first"))
    table.notify_result(first.id, 200, T0)
    ok, (notify,) = _subscribe(table, subscribe(call_id="fetch", expires=0), T0 + 1)
    assert ok.status == 200
    assert ok.expires == 0
    assert notify.final
    assert notify.request.get("Subscription-State") == "terminated;reason=timeout"
    assert notify.request.call_id == "fetch"
    assert names([notify]) == ["1234"]
    assert len(table) == 1
    (told,) = table.on_aor_event(came("1235"), T0 + 2)
    assert told.request.call_id == "first" and names([told]) == ["1235"]


def test_a_fetch_at_the_subscribers_limit_pushes_no_subscription_out() -> None:
    table = make_table()
    table.max_per_subscriber = 1
    _, (first,) = _subscribe(table, subscribe(call_id="first"))
    table.notify_result(first.id, 200, T0)
    _subscribe(table, subscribe(call_id="fetch", expires=0), T0 + 1)
    (told,) = table.on_aor_event(came("1235"), T0 + 2)
    assert told.request.call_id == "first"


def test_a_fetch_of_a_long_list_sends_it_a_notify_at_a_time_and_ends_with_the_last() -> None:
    users = [(f"{3000 + i}", f"Office {i} on the second floor, east wing") for i in range(60)]
    table = make_table(users)
    for i in range(60):
        table.on_aor_event(came(f"{3000 + i}"), T0)
    _, (first,) = _subscribe(table, subscribe(call_id="fetch", expires=0), T0 + 1)
    assert table.expire(T0 + 1) == []  # not ended before its list is out
    sent = answer_all(table, [first], T0 + 1)
    assert len(sent) > 2
    assert names(sent) == [f"{3000 + i}" for i in range(60)]
    states = [n.request.get("Subscription-State") for n in sent]
    assert states == ["active;expires=0"] * (len(sent) - 1) + ["terminated;reason=timeout"]
    assert [n.final for n in sent] == [False] * (len(sent) - 1) + [True]
    cseqs = [n.request.cseq.number for n in sent]
    assert cseqs == sorted(set(cseqs))
    assert all(len(n.request.to_bytes()) <= table.settings.build_limit for n in sent)
    assert len(table) == 0
    assert table.on_aor_event(came("1234"), T0 + 2) == []


def test_a_fetch_of_an_empty_list_is_one_terminated_notify_without_param() -> None:
    table = make_table()
    _, (notify,) = _subscribe(table, subscribe(call_id="fetch", expires=0))
    assert notify.final and names([notify]) == []
    assert notify.request.get("Event") == "user-available"
    assert len(table) == 0


def test_lanscape_unsubscribe_out_of_a_dialog_ends_it_without_notify() -> None:
    table = make_table(compat="lanscape")
    _subscribe(table, subscribe(call_id="first"))
    ok, notifies = _subscribe(table, subscribe(call_id="second", expires=0), T0 + 1)
    assert ok.status == 200
    assert notifies == []
    assert len(table) == 0
    assert table.on_aor_event(came("1234"), T0 + 2) == []


@pytest.mark.parametrize("compat", ["", "lanscape"])
def test_a_subscription_expires_on_its_own(compat: str) -> None:
    table = make_table(compat=compat)
    _, first = _subscribe(table, subscribe(expires=600))
    answer_all(table, first, T0)
    assert table.next_deadline() == T0 + 600
    assert table.expire(T0 + 599) == []
    ended = table.expire(T0 + 600)
    if compat == "lanscape":
        assert ended == []
    else:
        (final,) = ended
        assert final.request.get("Subscription-State") == "terminated;reason=timeout"
        assert final.request.cseq.number == 2
    assert len(table) == 0
    assert table.next_deadline() is None
    assert table.on_aor_event(came("1234"), T0 + 601) == []


@pytest.mark.parametrize("compat", ["", "lanscape"])
def test_a_notify_answered_481_ends_the_subscription(compat: str) -> None:
    table = make_table(compat=compat)
    _, (notify,) = _subscribe(table, subscribe())
    assert table.notify_result(notify.id, 481, T0 + 1) == []
    assert len(table) == 0
    assert table.on_aor_event(came("1234"), T0 + 2) == []


@pytest.mark.parametrize("compat", ["", "lanscape"])
def test_timeouts_end_the_subscription_only_after_n_in_a_row(compat: str) -> None:
    table = make_table(compat=compat, notify_failures_before_drop=3)
    _, (notify,) = _subscribe(table, subscribe())
    table.notify_result(notify.id, None, T0 + 32)
    (notify,) = table.on_aor_event(came("1234"), T0 + 40)
    table.notify_result(notify.id, None, T0 + 72)
    (notify,) = table.on_aor_event(came("1235"), T0 + 80)
    table.notify_result(notify.id, 200, T0 + 81)  # an answer: the count starts over
    assert table.on_aor_event(left("1234"), T0 + 90) == []  # not watched here
    arrivals = [came("voicemail"), came("1244"), came("1234")]
    for i, arrival in enumerate(arrivals):
        assert len(table) == 1
        (notify,) = table.on_aor_event(arrival, T0 + 100 + i)
        table.notify_result(notify.id, None, T0 + 140 + i)
    assert len(table) == 0


def test_other_failures_count_like_timeouts() -> None:
    table = make_table(notify_failures_before_drop=2)
    _, (notify,) = _subscribe(table, subscribe())
    table.notify_result(notify.id, 503, T0 + 1)
    assert len(table) == 1
    (notify,) = table.on_aor_event(came("1234"), T0 + 2)
    table.notify_result(notify.id, 408, T0 + 3)
    assert len(table) == 0


def test_a_notify_never_reported_counts_as_a_timeout() -> None:
    table = make_table(notify_failures_before_drop=1, notify_timeout_s=64)
    _subscribe(table, subscribe())
    assert table.next_deadline() == T0 + 64
    assert table.expire(T0 + 63) == []
    assert table.expire(T0 + 64) == []
    assert len(table) == 0


def test_a_provisional_or_unknown_result_changes_nothing() -> None:
    table = make_table()
    _, (notify,) = _subscribe(table, subscribe())
    assert table.notify_result(notify.id, 100, T0) == []
    assert table.notify_result("nobody", 481, T0) == []
    assert len(table) == 1
    assert table.watchers(T0)[0].waiting == 1


def test_watchers_lists_one_plain_row_per_subscription() -> None:
    table = make_table()
    _subscribe(table, subscribe())
    _subscribe(table, subscribe("user-unavailable", call_id="two", from_tag="b"), T0 + 10)
    rows = [w.as_row() for w in table.watchers(T0 + 100)]
    assert [(r["event"], r["subscriber"], r["expires_in"]) for r in rows] == [
        ("user-available", SUBSCRIBER, 3500),
        ("user-unavailable", SUBSCRIBER, 3510),
    ]
    assert rows[0]["contact"] == "sip:1244@192.168.1.2:10000"
    assert rows[0]["source"] == "udp:192.168.1.2:10000"
    assert rows[0]["resource"] == "sip:Registrar@example.com"


def test_end_all_terminates_every_dialog() -> None:
    table = make_table()
    _subscribe(table, subscribe())
    (final,) = table.end_all(T0 + 1)
    assert final.request.get("Subscription-State") == "terminated;reason=noresource"
    assert len(table) == 0


def test_names_merged_into_a_waiting_notify_keep_it_within_the_size_limit() -> None:
    users = [(f"{3000 + i}", f"Büro {i} — Zweiter Stock; Ost|Flügel") for i in range(200)]
    table = make_table(users, notify_min_interval_s=0)
    _, (first,) = _subscribe(table, subscribe())  # in flight: the rest waits
    for i in range(200):
        table.on_aor_event(came(f"{3000 + i}"), T0 + 1)
    sent = answer_all(table, [first], T0 + 2)
    assert names(sent) == [f"{3000 + i}" for i in range(200)]
    limit = table.settings.build_limit
    for notify in sent:
        wire = len(notify.request.to_bytes())
        assert wire <= limit
        assert notify.size is None or notify.size >= wire  # never underestimated
    assert max(len(n.request.to_bytes()) for n in sent) > limit - 100  # and filled


def _watch_both(table: SubscriptionTable) -> tuple[Notify, Notify]:
    """The phone subscribes to both events; their initial lists are answered."""
    _, (available,) = _subscribe(table, subscribe("user-available", call_id="a"))
    _, (unavailable,) = _subscribe(table, subscribe("user-unavailable", call_id="u"))
    answer_all(table, [available, unavailable], T0)
    return available, unavailable


def test_a_user_who_comes_and_goes_within_the_interval_ends_up_shown_gone() -> None:
    table = make_table(notify_min_interval_s=1.0)
    _watch_both(table)
    (told,) = table.on_aor_event(came("1234"), T0 + 10)  # starts the available burst
    table.notify_result(told.id, 200, T0 + 10)
    assert table.on_aor_event(came("1235"), T0 + 10.2) == []  # held
    gone = table.on_aor_event(left("1235"), T0 + 10.3)  # the unavailable list goes at once
    assert names(gone) == ["1235"]
    due = table.next_release()
    assert due is not None
    # The held "1235 is available" is old news: never sent after "1235 left".
    assert names(table.release_due(due)) == []


def test_a_user_back_within_the_interval_is_named_once_as_available() -> None:
    table = make_table(notify_min_interval_s=1.0)
    _watch_both(table)
    (told,) = table.on_aor_event(came("1234"), T0 + 10)
    table.notify_result(told.id, 200, T0 + 10)
    assert table.on_aor_event(came("1235"), T0 + 10.1) == []  # held
    (gone,) = table.on_aor_event(left("1235"), T0 + 10.2)
    table.notify_result(gone.id, 200, T0 + 10.2)
    assert table.on_aor_event(came("1235"), T0 + 10.3) == []  # back, held again
    due = table.next_release()
    assert due is not None
    (again,) = table.release_due(due)
    assert names([again]) == ["1235"]


@pytest.mark.parametrize("compat", ["", "lanscape"])
def test_a_user_who_leaves_while_the_initial_list_goes_out_is_not_named_in_the_rest(
    compat: str,
) -> None:
    table = _registered_table(100, compat=compat)
    _, first = _subscribe(table, subscribe())
    everyone = [name for name, _ in _many_users(100)]
    assert set(names(first)) < set(everyone)  # the rest waits for answers
    gone = "2095"  # in one of the NOTIFYs still waiting
    assert gone not in names(first)
    table.on_aor_event(left(gone), T0 + 1)
    sent = answer_all(table, first, T0 + 1)
    assert names(sent) == [name for name in everyone if name != gone]


def test_a_user_who_registers_while_the_unavailable_list_goes_out_is_not_named_in_it() -> None:
    table = make_table(_many_users(100))
    _, first = _subscribe(table, subscribe("user-unavailable"))
    everyone = [name for name, _ in _many_users(100)]
    assert len(first) == 1 and "2090" not in names(first)  # the rest waits for answers
    table.on_aor_event(came("2090"), T0 + 1)
    sent = answer_all(table, first, T0 + 1)
    assert names(sent) == [name for name in everyone if name != "2090"]


def test_a_waiting_list_notify_left_naming_no_one_is_not_sent_and_cseq_still_rises() -> None:
    # A description so long that every NOTIFY names one user.
    users = [(f"{3000 + i}", "x" * 1000) for i in range(5)]
    table = make_table(users)
    for name, _ in users:
        table.on_aor_event(came(name), T0 - 1)
    _, first = _subscribe(table, subscribe())
    assert names(first) == ["3000"]
    table.on_aor_event(left("3002"), T0 + 1)
    sent = answer_all(table, first, T0 + 1)
    assert names(sent) == ["3000", "3001", "3003", "3004"]
    assert len(sent) == 4  # the NOTIFY that named 3002 alone is not sent
    cseqs = [reparse(n).cseq.number for n in sent]
    assert cseqs == sorted(cseqs) and len(set(cseqs)) == 4


def test_a_user_leaving_after_a_directory_reload_is_still_taken_out_of_the_waiting_list() -> None:
    table = _registered_table(100)
    _, first = _subscribe(table, subscribe())
    renamed = [(name, f"{text}, moved to the third floor") for name, text in _many_users(100)]
    table.roster.directory.replace(directory(renamed))  # a reload while the list goes out
    table.on_aor_event(left("2095"), T0 + 1)
    sent = answer_all(table, first, T0 + 1)
    assert "2095" not in names(sent)
    assert len(names(sent)) == 99


def test_a_long_list_is_made_a_notify_at_a_time_as_the_answers_come() -> None:
    """A SUBSCRIBE's turn of the loop makes its first NOTIFY only, not the
    whole list of 1,000 users: the REGISTERs waiting behind it are not held
    up by the building of NOTIFYs that could not be sent yet anyway."""
    table = _registered_table(1000)
    _, first = _subscribe(table, subscribe())
    other_phone = subscribe(
        call_id="sub-2@192.168.1.3", from_tag="ph2", contact="<sip:1244@192.168.1.3>"
    )
    _, other = _subscribe(table, other_phone)
    # Notify ids count every NOTIFY made: the second subscriber's first is the second made.
    assert [n.id.rsplit(".", 1)[1] for n in (*first, *other)] == ["1", "2"]
    sent = answer_all(table, first, T0)
    assert names(sent) == [name for name, _ in _many_users(1000)]
    assert len(sent) > 10


def test_a_refresh_during_the_initial_list_gets_its_notify_after_the_whole_list() -> None:
    table = _registered_table(200)
    response, first = _subscribe(table, subscribe())
    _, refreshed = _subscribe(table, within(response, subscribe()))
    assert refreshed == []  # one NOTIFY in flight: the rest waits
    sent = answer_all(table, first, T0)
    assert names(sent) == [name for name, _ in _many_users(200)]
    last = reparse(sent[-1])
    assert "param" not in (last.get("Event") or "")  # the refresh's NOTIFY, last
    assert [reparse(n).cseq.number for n in sent] == list(range(1, len(sent) + 1))


def test_a_watcher_midway_through_its_initial_list_shows_more_notifies_waiting() -> None:
    table = _registered_table(200)
    _, first = _subscribe(table, subscribe())
    (row,) = [w.as_row() for w in table.watchers(T0)]
    assert row["waiting"] == 2  # the NOTIFY in flight, and the rest of the list
    answer_all(table, first, T0)
    (row,) = [w.as_row() for w in table.watchers(T0)]
    assert row["waiting"] == 0
