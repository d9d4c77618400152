"""The compiled SIP modules: used when built for the source as it is, never when stale."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import centrex.sip.message
from centrex.sip import native

STRICT = os.environ.get("CENTREX_TEST_STRICT") == "1"


def _copy_sources(to: Path) -> Path:
    folder = to / "sip"
    folder.mkdir()
    for name in native.NATIVE_MODULES:
        shutil.copy(native.HERE / f"{name}.py", folder / f"{name}.py")
    return folder


def test_a_build_of_the_current_sources_is_used(tmp_path: Path) -> None:
    folder = _copy_sources(tmp_path)
    (folder / native.MANIFEST).write_text(native.manifest_text(folder), encoding="utf-8")
    assert native.build_matches(folder) == (True, "")


def test_a_build_older_than_its_source_is_not_used(tmp_path: Path) -> None:
    folder = _copy_sources(tmp_path)
    (folder / native.MANIFEST).write_text(native.manifest_text(folder), encoding="utf-8")
    with (folder / "via.py").open("a", encoding="utf-8") as file:
        file.write("\n# edited after the build\n")
    ok, why = native.build_matches(folder)
    assert not ok
    assert "via" in why and "make native" in why


def test_a_build_for_another_python_is_not_used(tmp_path: Path) -> None:
    folder = _copy_sources(tmp_path)
    doc = json.loads(native.manifest_text(folder))
    doc["python"] = "cpython-39-final"
    (folder / native.MANIFEST).write_text(json.dumps(doc), encoding="utf-8")
    ok, why = native.build_matches(folder)
    assert not ok and "another Python" in why


def test_no_manifest_means_not_built(tmp_path: Path) -> None:
    folder = _copy_sources(tmp_path)
    assert native.build_matches(folder) == (False, "not built (make native)")


def _module_file(env: dict[str, str]) -> str:
    code = (
        "import centrex.sip.message as m, centrex.sip.native as n\n"
        "from centrex.sip.parser import parse_message\n"
        "r = parse_message(b'OPTIONS sip:a@b SIP/2.0\\r\\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\\r\\n"
        "From: <sip:c@d>;tag=1\\r\\nTo: <sip:a@b>\\r\\nCall-ID: i\\r\\nCSeq: 1 OPTIONS\\r\\n"
        "Max-Forwards: 70\\r\\nContent-Length: 0\\r\\n\\r\\n')\n"
        "assert r.top_via.branch == 'z9hG4bKx'\n"
        "print(n.mode, m.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **env},
    )
    return out.stdout.strip()


def test_pure_python_on_request() -> None:
    mode, path = _module_file({native.PURE_ENV: "1"}).split(" ", 1)
    assert mode == "pure"
    assert path.endswith("message.py")


def test_the_build_in_use_is_the_one_asked_for() -> None:
    """Pure Python under ``CENTREX_PURE_PYTHON=1``; otherwise the compiled
    build, which ``make test`` makes first (``make native``): CI tests the
    build users run."""
    if os.environ.get(native.PURE_ENV, "") not in ("", "0"):
        assert native.mode == "pure"
        assert centrex.sip.message.__file__.endswith("message.py")
        return
    if native.mode != "compiled":
        if STRICT:
            pytest.fail(f"compiled SIP modules not in use: {native.reason}")
        pytest.skip(f"compiled SIP modules not in use: {native.reason}")
    assert not centrex.sip.message.__file__.endswith(".py")
    mode, path = _module_file({native.PURE_ENV: ""}).split(" ", 1)
    assert mode == "compiled" and not path.endswith(".py")
