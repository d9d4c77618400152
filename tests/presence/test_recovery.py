"""Subscriptions survive a restart through the recovery file, dialog CSeqs included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from centrex import presence
from centrex.presence import SubscriptionTable
from centrex.registrar.recovery import RecoveryFileError
from centrex.sip.message import Request, Response

from .helpers import (
    PHONE,
    SUBSCRIBER,
    T0,
    answer_all,
    came,
    make_table,
    subscribe,
    within,
)


def _running_table() -> tuple[SubscriptionTable, Request, Response, int]:
    """A table whose subscription has sent a few NOTIFYs; the last CSeq sent."""
    table = make_table()
    request = subscribe(extra=["Record-Route: <sip:edge.example.net;lr>"])
    ok, first = table.handle_subscribe(request, subscriber=SUBSCRIBER, source=PHONE, now=T0)
    sent = answer_all(table, first, T0)
    for i, user in enumerate(("1234", "1235")):
        sent += answer_all(table, table.on_aor_event(came(user), T0 + i), T0 + i)
    return table, request, ok, sent[-1].request.cseq.number


def _restarted(table: SubscriptionTable, now: float, cseq_gap: int = 1000) -> SubscriptionTable:
    fresh = make_table()
    fresh.load_registrations([], now)
    assert fresh.from_json(table.to_json(now), now, cseq_gap=cseq_gap) == len(table)
    return fresh


def test_a_restored_dialog_continues_its_cseq() -> None:
    table, _, _, last = _running_table()
    assert last == 3
    restored = _restarted(table, T0 + 10, cseq_gap=0)
    (notify,) = restored.on_aor_event(came("voicemail"), T0 + 11)
    assert notify.request.cseq.number == last + 1
    assert notify.request.call_id == "sub-1@192.168.1.2"
    assert notify.request.get("Route") == "<sip:edge.example.net;lr>"
    assert notify.source == PHONE


def test_by_default_a_restored_cseq_jumps_past_notifies_lost_since_the_save() -> None:
    table, _, _, last = _running_table()
    restored = _restarted(table, T0 + 10)
    (notify,) = restored.on_aor_event(came("voicemail"), T0 + 11)
    assert notify.request.cseq.number == last + 1 + 1000


def test_a_restored_subscription_is_refreshed_and_ended_in_its_dialog() -> None:
    table, request, ok, _ = _running_table()
    restored = _restarted(table, T0 + 10)
    refresh, _ = restored.handle_subscribe(
        within(ok, request), subscriber=SUBSCRIBER, source=PHONE, now=T0 + 11
    )
    assert refresh.status == 200
    replay, _ = restored.handle_subscribe(
        within(ok, request), subscriber=SUBSCRIBER, source=PHONE, now=T0 + 12
    )
    assert replay.status == 500  # the remote CSeq was kept too
    bye, (final,) = restored.handle_subscribe(
        within(ok, request, cseq=9, expires=0), subscriber=SUBSCRIBER, source=PHONE, now=T0 + 13
    )
    assert bye.status == 200
    assert final.request.get("Subscription-State") == "terminated;reason=timeout"


def test_expired_subscriptions_are_not_restored() -> None:
    table, _, _, _ = _running_table()
    fresh = make_table()
    assert fresh.from_json(table.to_json(T0), T0 + 3600) == 0


def test_save_and_load_go_through_an_atomic_file(tmp_path: Path) -> None:
    table, _, _, _ = _running_table()
    path = tmp_path / "data" / presence.RECOVERY_FILE_NAME
    presence.save(path, table, T0 + 5)
    assert json.loads(path.read_bytes())["format"] == "centrex-subscriptions"
    assert list(tmp_path.joinpath("data").iterdir()) == [path]
    fresh = make_table()
    assert presence.load(path, fresh, T0 + 6) == 1
    assert [w.as_row() for w in fresh.watchers(T0 + 6)] == [
        w.as_row() for w in table.watchers(T0 + 6)
    ]
    assert presence.load(tmp_path / "missing.json", make_table(), T0) == 0


def test_columns_are_read_by_name_and_optional_ones_may_be_absent() -> None:
    table, _, _, _ = _running_table()
    doc = json.loads(table.to_json(T0))
    columns = dict(zip(doc["fields"], doc["subscriptions"][0], strict=True))
    del columns["failures"], columns["route_set"]
    doc["fields"] = list(reversed(columns))
    doc["subscriptions"] = [[columns[name] for name in doc["fields"]]]
    fresh = make_table()
    assert fresh.from_json(json.dumps(doc).encode(), T0) == 1
    (sub,) = fresh
    assert sub.route_set == ()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{", "not JSON"),
        (b"[1]", "not a centrex-subscriptions file"),
        (b'{"format":"centrex-subscriptions","version":99}', "version 99"),
        (
            b'{"format":"centrex-subscriptions","version":1,"fields":["id"],"subscriptions":[]}',
            "missing fields",
        ),
    ],
)
def test_an_unreadable_file_is_refused(data: bytes, problem: str) -> None:
    with pytest.raises(RecoveryFileError, match=problem):
        make_table().from_json(data, T0)


def test_a_bad_row_is_refused() -> None:
    table, _, _, _ = _running_table()
    doc = json.loads(table.to_json(T0))
    doc["subscriptions"][0][doc["fields"].index("transport")] = "carrier-pigeon"
    with pytest.raises(RecoveryFileError, match="bad subscription"):
        make_table().from_json(json.dumps(doc).encode(), T0)
