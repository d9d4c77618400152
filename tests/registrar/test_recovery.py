"""The recovery file format: versioned, compact, read by column name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from centrex.registrar import recovery

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
