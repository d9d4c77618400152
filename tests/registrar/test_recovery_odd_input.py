"""The recovery file and the packed table against odd input: a bad file is set
aside or a bad journal line ends the journal, never a crash at start; what an
older reader accepted still loads the same."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from centrex.registrar import recovery
from centrex.registrar.binding import Binding, Source
from centrex.registrar.memory import MemoryLocationStore
from centrex.registrar.packed import PackedTable
from centrex.registrar.store import Changes

FIELDS = list(recovery.FIELDS)
UDP = Source("udp", "1.1.1.1", 5060)
NOW = 1000.0


def row(aor: str, id: str, exp: float = 2000.0) -> list[object]:
    return [
        id,
        aor,
        f"sip:{id}@1.2.3.4",
        exp,
        None,
        "c",
        1,
        "udp",
        "1.2.3.4",
        5060,
        "",
        None,
        None,
        None,
        [],
        None,
        "",
        1.0,
        1.0,
    ]


def header(gen: int = 0) -> str:
    doc = {
        "format": "centrex-registrations",
        "version": 1,
        "saved_at": 1.0,
        "journal": gen,
        "fields": FIELDS,
    }
    return json.dumps(doc, separators=(",", ":"))[:-1] + ',"bindings":['


def aorline(rows: list[list[object]]) -> str:
    return json.dumps(rows, separators=(",", ":"))[1:-1]


def layout(lines: list[str], tail: str = "\n]}\n", gen: int = 0) -> bytes:
    return (header(gen) + "\n" + ",\n".join(lines) + tail).encode("utf-8")


def open_store(path: Path) -> MemoryLocationStore:
    store = MemoryLocationStore(path)
    asyncio.run(store.open(NOW))  # the server's start: must not raise
    return store


def test_short_row_in_file_is_set_aside_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "registrations.json"
    path.write_bytes(layout([aorline([row("sip:a@x", "1")]), '["x","sip:b@x"]']))
    open_store(path)  # set aside, logged


def test_short_row_in_journal_stops_the_journal_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "registrations.json"
    path.write_bytes(layout([aorline([row("sip:a@x", "1")])], gen=7))
    head = {"format": "centrex-registrations-journal", "generation": 7, "fields": FIELDS}
    recovery.journal_path(path).write_text(
        json.dumps(head) + "\n" + json.dumps(["sip:b@x", [["x"]]]) + "\n"
    )
    assert open_store(path).binding_count == 1


@pytest.mark.parametrize("bad", [0, 150, 255, 256, 270, 299])
def test_a_journal_applies_up_to_its_first_record_not_whole(tmp_path: Path, bad: int) -> None:
    # The journal is read before the file, its records checked a batch at a
    # time: wherever the bad record falls, the users before it have their
    # journaled registration, the users after it (and its own) the file's.
    path = tmp_path / "registrations.json"
    users = [f"sip:u{i}@x" for i in range(300)]
    path.write_bytes(layout([aorline([row(aor, f"f{i}")]) for i, aor in enumerate(users)], gen=7))
    head = {"format": "centrex-registrations-journal", "generation": 7, "fields": FIELDS}
    records = [json.dumps([aor, [row(aor, f"j{i}", 3000.0)]]) for i, aor in enumerate(users)]
    records[bad] = json.dumps([users[bad], [["x"]]])
    recovery.journal_path(path).write_text(json.dumps(head) + "\n" + "\n".join(records) + "\n")
    table, _, applied = recovery.read_table(path, NOW)
    assert applied == bad
    assert [b.id for aor in users for b in table.get(aor)] == [
        f"j{i}" if i < bad else f"f{i}" for i in range(300)
    ]
    assert table.count == 300


def test_a_journal_that_removes_a_user_of_the_file_leaves_no_trace_of_it(tmp_path: Path) -> None:
    path = tmp_path / "registrations.json"
    lines = [aorline([row("sip:a@x", "1")]), aorline([row("sip:b@x", "2")])]
    path.write_bytes(layout(lines, gen=7))
    head = {"format": "centrex-registrations-journal", "generation": 7, "fields": FIELDS}
    recovery.journal_path(path).write_text(json.dumps(head) + "\n" + json.dumps(["sip:a@x", []]))
    table, _, applied = recovery.read_table(path, NOW)
    assert applied == 1
    assert "sip:a@x" not in table
    assert [b.id for b in table.bindings()] == ["2"]
    assert table.count == 1


def journal_lines(*records: object, gen: int = 7) -> str:
    head = {"format": "centrex-registrations-journal", "generation": gen, "fields": FIELDS}
    return "\n".join([json.dumps(head), *(json.dumps(r) for r in records)]) + "\n"


def test_a_user_removed_and_registered_again_comes_after_the_others(tmp_path: Path) -> None:
    # The order presence lists users in: the running server's. A phone that
    # unregistered (or expired) and registered again before the next
    # compaction went after b then, and must after a crash too.
    path = tmp_path / "registrations.json"
    path.write_bytes(
        layout([aorline([row("sip:a@x", "a1")]), aorline([row("sip:b@x", "b1")])], gen=7)
    )
    recovery.journal_path(path).write_text(
        journal_lines(["sip:a@x", []], ["sip:a@x", [row("sip:a@x", "a2")]])
    )
    table, _, applied = recovery.read_table(path, NOW)
    assert applied == 2
    assert [b.id for b in table.bindings()] == ["b1", "a2"]


def test_a_user_refreshed_in_the_journal_keeps_its_place(tmp_path: Path) -> None:
    path = tmp_path / "registrations.json"
    path.write_bytes(
        layout([aorline([row("sip:a@x", "a1")]), aorline([row("sip:b@x", "b1")])], gen=7)
    )
    recovery.journal_path(path).write_text(
        journal_lines(["sip:c@x", [row("sip:c@x", "c1")]], ["sip:a@x", [row("sip:a@x", "a2")]])
    )
    table, _, _ = recovery.read_table(path, NOW)
    assert [b.id for b in table.bindings()] == ["a2", "b1", "c1"]


def test_an_expired_row_with_an_odd_aor_does_not_cost_the_file_its_registrations(
    tmp_path: Path,
) -> None:
    # The journal's users are skipped in the file by their AOR: an AOR that
    # is not a string must not stop the start (an expired row is not checked).
    path = tmp_path / "registrations.json"
    odd = row("sip:a@x", "a1", exp=500.0)
    odd[1] = ["sip:a@x"]
    path.write_bytes(layout([json.dumps([odd])[1:-1], aorline([row("sip:b@x", "b1")])], gen=7))
    recovery.journal_path(path).write_text(journal_lines(["sip:c@x", [row("sip:c@x", "c1")]]))
    table, _, _ = recovery.read_table(path, NOW)
    assert [b.id for b in table.bindings()] == ["b1", "c1"]


def test_an_unreadable_file_says_nothing_of_its_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "registrations.json"
    path.write_bytes(layout([aorline([row("sip:a@x", "a1")]), '["x","sip:b@x"]'], gen=7))
    damaged = recovery.journal_records([("sip:c@x", ())], 7)
    recovery.journal_path(path).write_bytes(damaged[:-1] + bytes([damaged[-1] ^ 1]))
    with pytest.raises(recovery.RecoveryFileError):
        recovery.read_table(path, NOW, keep=True)
    assert "damaged" not in caplog.text
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "registrations.json",
        "registrations.json.journal",
    ]


def test_a_row_that_is_no_list_in_a_file_of_another_field_order_is_set_aside(
    tmp_path: Path,
) -> None:
    # A file of another version (its fields in another order) is mapped to
    # ours row by row: a row that is an object, not a list, raised KeyError
    # past the check, and the server did not start.
    path = tmp_path / "registrations.json"
    fields = [FIELDS[1], FIELDS[0], *FIELDS[2:]]
    text = header().replace(json.dumps(FIELDS, separators=(",", ":")), json.dumps(fields))
    path.write_bytes((text + "\n" + '{"a":1}' + "\n]}\n").encode())
    assert open_store(path).binding_count == 0  # set aside, logged
    assert not path.exists()


def test_infinite_expiry_does_not_crash_the_load(tmp_path: Path) -> None:
    path = tmp_path / "registrations.json"
    path.write_bytes(layout([aorline([row("sip:a@x", "1")]).replace("2000.0", "Infinity", 1)]))
    open_store(path)


def test_trailing_comma_is_rejected_whatever_the_line_length(tmp_path: Path) -> None:
    path = tmp_path / "registrations.json"
    big = aorline([row("sip:big@x", str(i)) for i in range(200)])  # a line > 16 KB
    data = layout([aorline([row("sip:a@x", "1")]), big], tail=",\n]}\n")
    path.write_bytes(data)
    try:
        json.loads(data)
        raise AssertionError("fixture should not be JSON")
    except ValueError:
        pass
    small = tmp_path / "small.json"
    small.write_bytes(layout([aorline([row("sip:a@x", "1")])], tail=",\n]}\n"))
    outcomes: list[int | str] = []
    for p in (small, path):
        try:
            outcomes.append(len(recovery.read(p, NOW).bindings))
        except recovery.RecoveryFileError:
            outcomes.append("rejected")
    assert outcomes == ["rejected", "rejected"], outcomes


def test_raw_utf8_in_a_hand_edited_file_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "registrations.json"
    line = aorline([row("sip:a@x", "1")]).replace('null,"",1.0', '"Zoiper \u00e9","",1.0', 1)
    path.write_bytes(layout([line]))
    (b,) = recovery.read(path, NOW).bindings
    assert b.user_agent == "Zoiper \u00e9"


class Put:
    def __init__(self, b: Binding) -> None:
        self.changes = Changes((b,), ())


def writing(b: Binding) -> Callable[[list[Binding]], Put]:
    return lambda current: Put(b)


def test_journal_replay_keeps_the_aor_order(tmp_path: Path) -> None:
    # presence Roster.available_users: "in the order they registered", from store.bindings()
    async def run() -> tuple[list[str], list[str]]:
        path = tmp_path / "registrations.json"
        s = MemoryLocationStore(path, flush_every_changes=10_000)
        await s.open(NOW)
        for n in "abc":
            b = Binding(
                n, f"sip:{n}@x", "sip:c", NOW + 60, None, "c", 1, Source("udp", "1.1.1.1", 5060)
            )
            await s.update(b.aor, writing(b), NOW)
        await s.flush(NOW)  # compaction
        a2 = Binding(
            "a", "sip:a@x", "sip:c", NOW + 120, None, "c", 2, Source("udp", "1.1.1.1", 5060)
        )
        await s.update("sip:a@x", writing(a2), NOW + 1)  # a refresh
        await s.flush(NOW + 1)  # journal
        before = [b.aor for b in await s.bindings()]
        s2 = MemoryLocationStore(path)
        await s2.open(NOW + 2)
        return before, [b.aor for b in await s2.bindings()]

    before, after = asyncio.run(run())
    assert after == before


def test_refreshes_do_not_pile_up_bucket_entries() -> None:
    t = PackedTable()
    cur: dict[str, tuple[Binding, ...]] = {}
    now = 0.0
    for step in range(120):  # re-REGISTER every 30 s with Expires: 3600, for an hour
        for i in range(100):
            aor = f"sip:u{i}@x"
            b = Binding("id", aor, "sip:c", now + 3600, None, "c", step + 1, Source("udp", "h", 1))
            t.set(aor, cur.get(aor, ()), (b,))
            cur[aor] = (b,)
        now += 30
        t.expired(now)
    entries = sum(len(v) for v in t._due.values())  # memory held for the purge
    assert entries <= 2 * 100, entries  # one or two per AOR, not one per refresh


def test_rows_are_written_as_the_standard_json_encoder_writes_them() -> None:
    # The encoder made once (recovery._encode) writes what json.dumps would:
    # escapes for non-ASCII and control characters, floats in full, nulls.
    import json

    from centrex.registrar import recovery

    rows = [
        ["id", "sip:zoë@example.com", "sip:a@[2001:db8::1]", 1796087875.1029863, None,
         "c\x00\udcff", 1, "udp", "192.0.2.1", 5060, "udp:0.0.0.0:5060", None, 0.5, 7,
         ["<sip:p;lr>"], 'q"\\', "s", 1e-7, -0.0],
    ]  # fmt: skip
    expected = json.dumps(rows, separators=(",", ":"))
    assert recovery._encode(rows) == expected
    assert json.loads(recovery._encode(rows)) == json.loads(expected)
