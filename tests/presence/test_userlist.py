"""The user list in the Event header: escaping, and splitting to fit UDP."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from centrex.presence import UserEntry, parse_event_list
from centrex.presence.userlist import escape_field, event_value, pack, unescape_field
from centrex.sip.parser import parse_message

from .helpers import PHONE, SUBSCRIBER, T0, answer_all, came, make_table, reparse, subscribe

TYPICAL_VIA = "SIP/2.0/UDP [2001:db8:1234:5678:9abc:def0:1234:5678]:5060;branch=z9hG4bKcx" + (
    "0123456789ab-" + "f" * 20
)


def test_the_list_is_written_exactly_as_the_phones_expect() -> None:
    entries = [
        UserEntry("voicemail", "The company voicemail server"),
        UserEntry("1234", "Engineering Lab"),
        UserEntry("1235", "Ted McGraw"),
    ]
    value = event_value("user-available", [e.encoded() for e in entries])
    assert value == (
        "user-available;param=voicemail|The company voicemail server"
        "|1234|Engineering Lab|1235|Ted McGraw"
    )
    assert parse_event_list(value) == ("user-available", {}, entries)


@pytest.mark.parametrize(
    "description",
    [
        "Sales | Support",
        "Lab; bench 3",
        "100% uptime",
        'The "big" room',
        "A, B and C",
        "back\\slash",
        "two\r\nlines\tand a tab",
        "Müller Straße 💡",
        "  padded  ",
        "",
    ],
)
def test_a_description_with_separators_stays_one_field_and_comes_back(description: str) -> None:
    encoded = UserEntry("1234", description).encoded()
    name, text = encoded.split("|")
    assert name == "1234"
    assert not set(text) & set(';|,"\\\r\n\t')
    assert unescape_field(text) == description.strip()
    value = event_value("user-available", [encoded, UserEntry("1235", "Ted").encoded()], "4")
    package, params, entries = parse_event_list(value)
    assert (package, params) == ("user-available", {"id": "4"})
    assert entries == [UserEntry("1234", description.strip()), UserEntry("1235", "Ted")]


def test_escaping_is_only_for_the_characters_that_need_it() -> None:
    assert escape_field("Ted McGraw") == "Ted McGraw"
    assert escape_field("a|b;c%d") == "a%7Cb%3Bc%25d"


def test_pack_takes_what_fits_and_always_one() -> None:
    assert pack([3, 3, 3], room=7) == 2  # 3 + 1 + 3
    assert pack([3, 3, 3], room=7, start=2) == 3
    assert pack([50, 3], room=7) == 1  # too long, goes alone
    assert pack([50, 3], room=7, at_least_one=False) == 0


@pytest.mark.parametrize("compat", ["", "lanscape"])
def test_500_users_with_long_descriptions_are_split_under_1300_bytes_each_named_once(
    compat: str,
) -> None:
    users = [
        (f"{3000 + i}", f'Desk {i} | room {i % 17}; building "{i % 5}" – long text ' * 2)
        for i in range(500)
    ]
    table = make_table(users, compat=compat)
    for name, _ in users:
        table.on_aor_event(came(name), T0)
    ok, first = table.handle_subscribe(subscribe(), subscriber=SUBSCRIBER, source=PHONE, now=T0)
    assert ok.status == 200
    sent = answer_all(table, first, T0)
    assert len(sent) > 20
    seen: Counter[str] = Counter()
    for notify in sent:
        assert len(notify.request.to_bytes()) <= 1300
        with_via = notify.request.copy()
        with_via.push_via(TYPICAL_VIA)
        assert len(with_via.to_bytes()) <= 1300
        parsed = reparse(notify)  # the whole message parses with centrex.sip
        value = parsed.get("Event")
        assert value is not None
        package, _, entries = parse_event_list(value)
        assert package == "user-available"
        assert entries
        seen.update(entry.name for entry in entries)
        for entry in entries:
            assert entry.description == dict(users)[entry.name].strip()
    assert seen == Counter(name for name, _ in users)
    # Each NOTIFY is filled: the next user would not have fitted (1300 - 160 for the Via).
    for notify, after in itertools.pairwise(sent):
        assert after.listed
        next_entry = len(after.listed[0].encode())
        assert len(notify.request.to_bytes()) + 1 + next_entry > 1300 - 160


def test_a_user_too_long_for_one_notify_goes_alone_anyway() -> None:
    users = [("1234", "x" * 3000), ("1235", "short")]
    table = make_table(users)
    for name, _ in users:
        table.on_aor_event(came(name), T0)
    _, first = table.handle_subscribe(subscribe(), subscriber=SUBSCRIBER, source=PHONE, now=T0)
    sent = answer_all(table, first, T0)
    listed = [parse_event_list(n.request.get("Event") or "")[2] for n in sent]
    assert [[e.name for e in entries] for entries in listed] == [["1234"], ["1235"]]
    assert len(sent[0].request.to_bytes()) > 1300


def test_a_notify_fits_the_configured_limit() -> None:
    users = [(f"{4000 + i}", "A fairly long description of this desk") for i in range(100)]
    table = make_table(users, notify_max_bytes=900, via_reserve=100)
    for name, _ in users:
        table.on_aor_event(came(name), T0)
    _, first = table.handle_subscribe(subscribe(), subscriber=SUBSCRIBER, source=PHONE, now=T0)
    sent = answer_all(table, first, T0)
    assert all(len(n.request.to_bytes()) <= 800 for n in sent)
    assert max(len(n.request.to_bytes()) for n in sent) > 700


def test_the_event_header_of_a_parsed_notify_reads_back_with_centrex_sip() -> None:
    table = make_table([("1234", 'Lab "A"; bench | 3')])
    table.on_aor_event(came("1234"), T0)
    _, (notify,) = table.handle_subscribe(subscribe(), subscriber=SUBSCRIBER, source=PHONE, now=T0)
    message = parse_message(reparse(notify).to_bytes())
    assert message.get("Event") == "user-available;param=1234|Lab %22A%22%3B bench %7C 3"
    assert message.get("o") == message.get("Event")  # the compact form finds it too
    assert parse_event_list(message.get("Event") or "")[2] == [
        UserEntry("1234", 'Lab "A"; bench | 3')
    ]
