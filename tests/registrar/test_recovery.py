"""The recovery file format: versioned, compact, read by column name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from centrex.registrar import recovery
from centrex.registrar.binding import Binding

from .helpers import T0, binding


def test_newer_version_is_refused(tmp_path: Path) -> None:
    data = recovery.encode([binding()], T0).replace(b'"version":1', b'"version":99')
    with pytest.raises(recovery.RecoveryFileError, match="version 99"):
        recovery.decode(data, tmp_path / "r.json", T0)


def test_other_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(recovery.RecoveryFileError, match="not a centrex-registrations"):
        recovery.decode(b"[1, 2]", tmp_path / "r.json", T0)


def test_bad_row_is_refused(tmp_path: Path) -> None:
    doc = json.loads(recovery.encode([binding()], T0))
    doc["bindings"][0][7] = "carrier-pigeon"  # transport
    with pytest.raises(recovery.RecoveryFileError, match="bad binding"):
        recovery.decode(json.dumps(doc).encode(), tmp_path / "r.json", T0)


def test_columns_are_read_by_name_and_optional_ones_may_be_absent(tmp_path: Path) -> None:
    original = binding(user_agent="X")
    doc = json.loads(recovery.encode([original], T0))
    columns = dict(zip(doc["fields"], doc["bindings"][0], strict=True))
    del columns["user_agent"]
    order = list(reversed(columns))
    doc["fields"] = order
    doc["bindings"] = [[columns[name] for name in order]]
    (loaded,) = recovery.decode(json.dumps(doc).encode(), tmp_path / "r.json", T0)
    assert loaded == binding(user_agent=None)


def test_missing_required_column_is_refused(tmp_path: Path) -> None:
    doc = json.loads(recovery.encode([binding()], T0))
    doc["fields"] = doc["fields"][1:]
    doc["bindings"] = [row[1:] for row in doc["bindings"]]
    with pytest.raises(recovery.RecoveryFileError, match="missing fields"):
        recovery.decode(json.dumps(doc).encode(), tmp_path / "r.json", T0)


# -- the line layout: one AOR per line, kept packed by the memory store ------------


def _line_file(*bindings: Binding) -> bytes:
    return recovery.encode(bindings, T0)


def test_the_file_has_one_line_per_aor_and_is_the_same_json_document(tmp_path: Path) -> None:
    a1 = binding("sip:a@192.0.2.1", id="a1", aor="sip:a@example.com")
    a2 = binding("sip:a@192.0.2.2", id="a2", aor="sip:a@example.com", q=0.5)
    b1 = binding("sip:b@192.0.2.3", id="b1", aor="sip:b@example.com")
    data = _line_file(a1, b1, a2)
    lines = data.decode().splitlines()
    assert lines[0].endswith('"bindings":[') and lines[-1] == "]}"
    assert len(lines) == 4  # header, sip:a (two rows), sip:b, closing
    doc = json.loads(data)  # what an older Centrex, or any JSON tool, reads
    assert [row[0] for row in doc["bindings"]] == ["a1", "a2", "b1"]
    assert recovery.decode(data, tmp_path / "r.json", T0) == [a1, a2, b1]


def test_a_file_in_the_one_line_layout_of_earlier_versions_still_loads(tmp_path: Path) -> None:
    a1 = binding("sip:a@192.0.2.1", id="a1", aor="sip:a@example.com")
    b1 = binding("sip:b@192.0.2.3", id="b1", aor="sip:b@example.com")
    one_line = json.dumps(json.loads(_line_file(a1, b1)), separators=(",", ":")).encode()
    assert b"\n" not in one_line
    assert recovery.decode(one_line, tmp_path / "r.json", T0) == [a1, b1]


def test_an_expired_binding_is_dropped_from_its_line_and_the_rest_kept(tmp_path: Path) -> None:
    old = binding("sip:a@192.0.2.1", id="old", aor="sip:a@example.com", expires_at=T0 + 5)
    new = binding("sip:a@192.0.2.2", id="new", aor="sip:a@example.com", expires_at=T0 + 500)
    assert recovery.decode(_line_file(old, new), tmp_path / "r.json", T0 + 10) == [new]


def test_an_aor_on_two_lines_keeps_the_bindings_of_both(tmp_path: Path) -> None:
    a1 = binding("sip:a@192.0.2.1", id="a1", aor="sip:a@example.com")
    a2 = binding("sip:a@192.0.2.2", id="a2", aor="sip:a@example.com")
    header, line, _ = _line_file(a1, a2).split(b"\n", 2)
    rows = json.loads(b"[" + line + b"]")
    edited = b"\n".join(
        [header, json.dumps(rows[0]).encode() + b",", json.dumps(rows[1]).encode(), b"]}"]
    )
    assert recovery.decode(edited, tmp_path / "r.json", T0) == [a1, a2]


@pytest.mark.parametrize(
    ("field", "value"),
    [(7, "carrier-pigeon"), (9, "5060"), (3, "soon"), (14, "not-a-list"), (1, None)],
)
def test_a_bad_row_in_the_line_layout_is_refused(tmp_path: Path, field: int, value: object) -> None:
    data = _line_file(binding())
    header, line, rest = data.split(b"\n", 2)
    row = json.loads(line)
    row[field] = value
    bad = b"\n".join([header, json.dumps(row).encode(), rest])
    with pytest.raises(recovery.RecoveryFileError, match="bad binding"):
        recovery.decode(bad, tmp_path / "r.json", T0)


def test_a_line_file_cut_short_is_refused(tmp_path: Path) -> None:
    data = _line_file(binding(id="a1"), binding("sip:b@192.0.2.3", id="b1", aor="sip:b@x"))
    cut = data[: data.rindex(b"\n]}")]
    with pytest.raises(recovery.RecoveryFileError, match="cut short"):
        recovery.decode(cut, tmp_path / "r.json", T0)
    with pytest.raises(recovery.RecoveryFileError, match="bad bindings line"):
        recovery.decode(cut[:-10] + b"\n]}\n", tmp_path / "r.json", T0)
