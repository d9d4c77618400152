"""The compiled modules: used when built for the source as it is, whole;
never when stale, partial, for another Python, or left beside the sources."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import centrex.sip.message
import centrex.transaction.layer
from centrex import native

STRICT = os.environ.get("CENTREX_TEST_STRICT") == "1"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
ROOT = Path(__file__).resolve().parents[1]


def _file(name: str) -> str:
    """Where the build puts module ``name`` ("sip.via"), in its folder."""
    return "/".join(name.split(".")) + SUFFIX


def _fake_build(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the sources, and a build folder whose manifest names them
    and a file per module (not real extensions: ``build_matches`` only reads)."""
    sources = tmp_path / "centrex"
    shutil.copytree(
        native.HERE, sources, ignore=shutil.ignore_patterns("_compiled", "__pycache__", "*.so")
    )
    folder = tmp_path / "compiled"
    files = {}
    for name in (*native.NATIVE_MODULES, native.SHARED_LIBRARY):
        (folder / _file(name)).parent.mkdir(parents=True, exist_ok=True)
        (folder / _file(name)).write_bytes(os.urandom(64))
        files[name] = _file(name)
    text = native.manifest_text(native.source_digests(sources), files, folder)
    (folder / native.MANIFEST).write_text(text, encoding="utf-8")
    return folder, sources


def test_the_build_covers_the_hot_path_beyond_the_message_modules() -> None:
    packages = native.packages()
    assert {"sip", "transaction", "registrar"} <= set(packages)
    assert all(native.source_of(name).is_file() for name in native.NATIVE_MODULES)


def test_a_build_of_the_current_sources_is_used_whole(tmp_path: Path) -> None:
    folder, sources = _fake_build(tmp_path)
    files, why = native.build_matches(folder, sources)
    assert why == ""
    assert files["centrex.sip.message"] == folder / "sip" / f"message{SUFFIX}"
    assert files["centrex.transaction.layer"] == folder / "transaction" / f"layer{SUFFIX}"
    assert set(files) == {f"centrex.{n}" for n in (*native.NATIVE_MODULES, "native__mypyc")}


@pytest.mark.parametrize("name", ["sip.via", "transaction.layer", "registrar.binding"])
def test_a_build_older_than_its_source_is_not_used(tmp_path: Path, name: str) -> None:
    """Any source the build depends on: a compiled module, or one whose types
    a compiled module checks (``registrar.binding`` is not compiled itself)."""
    folder, sources = _fake_build(tmp_path)
    with native.source_of(name, sources).open("a", encoding="utf-8") as file:
        file.write("\n# edited after the build\n")
    files, why = native.build_matches(folder, sources)
    assert not files
    assert name in why and "make native" in why


@pytest.mark.parametrize("damage", ["remove", "change"])
def test_a_build_with_a_module_missing_or_changed_is_not_used(tmp_path: Path, damage: str) -> None:
    folder, sources = _fake_build(tmp_path)
    extension = folder / "sip" / f"message{SUFFIX}"
    if damage == "remove":
        extension.unlink()
    else:
        extension.write_bytes(b"another build")
    files, why = native.build_matches(folder, sources)
    assert not files and "sip.message missing or changed" in why


@pytest.mark.parametrize("where", ["beside", "other", "outside"])
def test_a_manifest_naming_a_file_out_of_its_place_is_not_used(tmp_path: Path, where: str) -> None:
    """Each module's file is in its package's folder of the build: a file
    named elsewhere (another package's folder, outside the build) is refused
    even when its digest is right."""
    folder, sources = _fake_build(tmp_path)
    doc = json.loads((folder / native.MANIFEST).read_text(encoding="utf-8"))
    target = {
        "beside": f"via{SUFFIX}",
        "other": f"transaction/via{SUFFIX}",
        "outside": f"../via{SUFFIX}",
    }[where]
    (folder / target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "sip" / f"via{SUFFIX}", folder / target)
    doc["files"]["sip.via"][0] = target
    (folder / native.MANIFEST).write_text(json.dumps(doc), encoding="utf-8")
    files, why = native.build_matches(folder, sources)
    assert not files and "sip.via missing or changed" in why


def test_a_build_naming_another_modules_file_is_not_used(tmp_path: Path) -> None:
    folder, sources = _fake_build(tmp_path)
    doc = json.loads((folder / native.MANIFEST).read_text(encoding="utf-8"))
    doc["files"]["sip.via"] = doc["files"]["sip.uri"]  # a real file, with its digest
    (folder / native.MANIFEST).write_text(json.dumps(doc), encoding="utf-8")
    files, why = native.build_matches(folder, sources)
    assert not files and "sip.via missing or changed" in why


def test_the_build_does_not_depend_on_the_files_that_choose_it() -> None:
    digests = native.source_digests()
    assert "registrar.binding" in digests and "config.settings" in digests
    assert not {"__init__", "native", "native_build"} & set(digests)


def test_a_build_for_another_python_is_not_used(tmp_path: Path) -> None:
    folder, sources = _fake_build(tmp_path)
    doc = json.loads((folder / native.MANIFEST).read_text(encoding="utf-8"))
    doc["python"] = "cpython-39-final"
    (folder / native.MANIFEST).write_text(json.dumps(doc), encoding="utf-8")
    files, why = native.build_matches(folder, sources)
    assert not files and "another Python" in why


def test_no_manifest_means_not_built(tmp_path: Path) -> None:
    assert native.build_matches(tmp_path, native.HERE) == ({}, "not built (make native)")


_PARSE = (
    "import centrex.sip.message as m, centrex.native as n, centrex.transaction.layer as t\n"
    "from centrex.sip.parser import parse_message\n"
    "r = parse_message(b'OPTIONS sip:a@b SIP/2.0\\r\\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\\r\\n"
    "From: <sip:c@d>;tag=1\\r\\nTo: <sip:a@b>\\r\\nCall-ID: i\\r\\nCSeq: 1 OPTIONS\\r\\n"
    "Max-Forwards: 70\\r\\nContent-Length: 0\\r\\n\\r\\n')\n"
    "assert r.top_via.branch == 'z9hG4bKx' and isinstance(r, m.Request)\n"
    "print(n.mode, m.__file__)\n"
    "print(t.__file__)\n"
)


def _run(env: dict[str, str], path: Path | None = None) -> tuple[str, str, str]:
    environment = {**os.environ, **env}
    if path is not None:
        environment["PYTHONPATH"] = str(path)
    out = subprocess.run(
        [sys.executable, "-c", _PARSE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=environment,
        cwd=path or ROOT,
    )
    first, layer = out.stdout.strip().splitlines()
    mode, file = first.split(" ", 1)
    return mode, file, layer


def test_pure_python_on_request() -> None:
    mode, path, layer = _run({native.PURE_ENV: "1"})
    assert mode == "pure"
    assert path.endswith("message.py") and layer.endswith("layer.py")


def test_an_extension_left_beside_the_sources_is_never_imported(tmp_path: Path) -> None:
    """An earlier layout built the modules beside their sources, where Python
    would import them before the ``.py``: a garbage one there must not load."""
    copy = tmp_path / "centrex"
    shutil.copytree(
        ROOT / "centrex", copy, ignore=shutil.ignore_patterns("_compiled", "__pycache__", "*.so")
    )
    (copy / "sip" / f"via{SUFFIX}").write_bytes(b"not an extension module")
    (copy / "sip" / f"message{SUFFIX}").write_bytes(b"not an extension module")
    (copy / "transaction" / f"layer{SUFFIX}").write_bytes(b"not an extension module")
    mode, path, layer = _run({native.PURE_ENV: ""}, tmp_path)
    assert mode == "pure"
    assert path == str(copy / "sip" / "message.py")
    assert layer == str(copy / "transaction" / "layer.py")


def test_the_build_in_use_is_the_one_asked_for() -> None:
    """Pure Python under ``CENTREX_PURE_PYTHON=1``; otherwise the compiled
    build, which ``make test`` makes first (``make native``): CI tests the
    build users run."""
    if os.environ.get(native.PURE_ENV, "") not in ("", "0"):
        assert native.mode == "pure"
        assert centrex.sip.message.__file__.endswith("message.py")
        assert centrex.transaction.layer.__file__.endswith("layer.py")
        return
    if native.mode != "compiled":
        if STRICT:
            pytest.fail(f"compiled modules not in use: {native.reason}")
        pytest.skip(f"compiled modules not in use: {native.reason}")
    # (mypyc may name the file under the build folder as if it were a package root)
    assert Path(centrex.sip.message.__file__).is_relative_to(native.COMPILED)
    assert Path(centrex.transaction.layer.__file__).is_relative_to(native.COMPILED)
    mode, path, layer = _run({native.PURE_ENV: ""})
    assert mode == "compiled" and Path(path).is_relative_to(native.COMPILED)
    assert Path(layer).is_relative_to(native.COMPILED)
