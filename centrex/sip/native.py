"""Which build of the SIP message modules runs: compiled (mypyc) or pure Python.

The message core (``NATIVE_MODULES``: parsing, header views, URIs, Vias,
addresses, building responses) can be compiled to C extensions with mypyc
(``make native``, which ``make run`` and ``make test`` do first; DESIGN.md:
"compiling the typed hot modules with mypyc while keeping the pure-Python
path working"). The compiled build is the same source, and 1.1-2x as fast
on it (docs/benchmarks.md).

The build lives in ``centrex/sip/_compiled/``, not beside the sources: Python
would import an extension found there in preference to the ``.py``, so a
build left behind by other source (an edit, a checkout of another commit)
would run instead of the code as it is. ``centrex/sip/__init__.py`` calls
``choose()`` before any of the modules is imported: the build is used only
when its manifest (``_compiled/native.json``) names this Python, the SHA-256
of every compiled source as it is now and of every extension file, and every
one of those files is there; a finder placed first on ``sys.meta_path`` then
loads each compiled module from that folder. Otherwise (or whenever
``CENTREX_PURE_PYTHON=1``) all of them run from source, never a mix.

This module imports nothing of the package, so it is never compiled itself.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

logger = logging.getLogger(__name__)

#: The modules of ``centrex.sip`` compiled by ``make native``.
NATIVE_MODULES = (
    "address",
    "build",
    "errors",
    "fields",
    "framing",
    "headers",
    "message",
    "parser",
    "uri",
    "via",
)

#: mypyc's shared library of the build (``centrex.sip.native__mypyc``).
SHARED_LIBRARY = "native__mypyc"

#: Where the build and its manifest go.
HERE = Path(__file__).resolve().parent
COMPILED = HERE / "_compiled"
MANIFEST = "native.json"

#: Set to 1 to run the pure-Python modules even where a compiled build is present.
PURE_ENV = "CENTREX_PURE_PYTHON"

_PACKAGE = "centrex.sip"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_digests(sources: Path = HERE) -> dict[str, str]:
    """SHA-256 of each compiled module's source, by module name."""
    return {name: _sha256(sources / f"{name}.py") for name in NATIVE_MODULES}


def python_tag() -> str:
    """What the compiled build is bound to: the interpreter and its version."""
    return f"{sys.implementation.cache_tag}-{sys.version_info.releaselevel}"


def manifest_text(sources: dict[str, str], files: dict[str, str], folder: Path) -> str:
    """The manifest of a build of ``sources`` (module -> SHA-256 of the source
    compiled) made of ``files`` (module -> extension file name in ``folder``)."""
    doc = {
        "python": python_tag(),
        "sources": sources,
        "files": {name: [file, _sha256(folder / file)] for name, file in files.items()},
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def build_matches(folder: Path = COMPILED, sources: Path = HERE) -> tuple[dict[str, Path], str]:
    """The build in ``folder`` when it is of ``sources`` as they are now, for
    this Python, whole: (module -> extension file, "") or ({}, why not)."""
    path = folder / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, "not built (make native)"
    except (OSError, ValueError) as exc:
        return {}, f"{path} unreadable: {exc}"
    if not isinstance(doc, dict):
        return {}, f"{path} is not a build manifest"
    if doc.get("python") != python_tag():
        return {}, f"built for another Python ({doc.get('python')})"
    try:
        digests = source_digests(sources)
    except OSError as exc:
        return {}, f"source unreadable: {exc}"
    built = doc.get("sources")
    built = built if isinstance(built, dict) else {}
    stale = sorted(name for name, digest in digests.items() if built.get(name) != digest)
    if stale:
        return {}, f"older than the source of {', '.join(stale)} (make native)"
    files = doc.get("files")
    if not isinstance(files, dict) or set(files) != {*NATIVE_MODULES, SHARED_LIBRARY}:
        return {}, f"{path} does not list the modules of this build (make native)"
    found: dict[str, Path] = {}
    for name, entry in files.items():
        try:
            file, digest = entry
            extension = folder / str(file)
            ok = _sha256(extension) == digest and Path(str(file)).name == str(file)
        except (OSError, TypeError, ValueError):
            ok = False
        if not ok:
            return {}, f"{name} missing or changed in {folder} (make native)"
        found[f"{_PACKAGE}.{name}"] = extension
    return found, ""


class _ExtensionFinder:
    """Finds the compiled modules in the build folder (a meta path finder; not
    derived from importlib.abc, whose import costs ~20 ms)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        return importlib.util.spec_from_file_location(fullname, file)


class _SourceFinder:
    """Finds every ``centrex.sip.<module>`` in its ``.py`` file, never in an
    extension module left beside it (by a build of an earlier layout)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != _PACKAGE:
            return None
        source = self.folder / f"{name}.py"
        if not source.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


#: "compiled" or "pure": what ``choose`` decided.
mode = "pure"
#: Why the compiled build is not used ("" when it is).
reason = ""


def is_extension(path: Path) -> bool:
    """Whether ``path`` is named as an extension module of this Python."""
    return path.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def choose(folder: Path = COMPILED, sources: Path = HERE) -> str:
    """Decide, once, which build of ``NATIVE_MODULES`` this process imports."""
    global mode, reason
    if any(isinstance(f, _ExtensionFinder | _SourceFinder) for f in sys.meta_path):
        return mode
    if any(map(is_extension, sources.iterdir())):  # an earlier layout's build
        sys.meta_path.insert(0, _SourceFinder(sources))
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        mode, reason = "pure", f"{PURE_ENV} is set"
        return mode
    files, why = build_matches(folder, sources)
    if not files:
        mode, reason = "pure", why
        if (folder / MANIFEST).exists():
            logger.warning("compiled SIP modules not used: %s", why)
        return mode
    sys.meta_path.insert(0, _ExtensionFinder(files))
    mode, reason = "compiled", ""
    return mode
