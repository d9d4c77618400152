"""Which build of the SIP message modules runs: compiled (mypyc) or pure Python.

The message core (``NATIVE_MODULES``: parsing, header views, URIs, Vias,
addresses, building responses) can be compiled to C extensions with mypyc
(``make native``, which ``make run`` and ``make test`` do first; DESIGN.md:
"compiling the typed hot modules with mypyc while keeping the pure-Python
path working"). The compiled build is the same source, and 1.1-2x as
fast on it (docs/benchmarks.md).

Python imports an extension module in preference to the ``.py`` beside it, so
a build left behind by an older source would run instead of the code as it
is now. ``centrex/sip/__init__.py`` therefore calls ``choose()`` before any of
these modules is imported: the compiled build is used only when the manifest
written with it (``native.json``) names this Python and the SHA-256 of every
source as it is now; otherwise, and whenever ``CENTREX_PURE_PYTHON=1``, a
finder placed first on ``sys.meta_path`` loads the modules from their source.

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

#: The manifest the build writes beside the modules.
MANIFEST = "native.json"

#: Set to 1 to run the pure-Python modules even where a compiled build is present.
PURE_ENV = "CENTREX_PURE_PYTHON"

HERE = Path(__file__).resolve().parent


def source_digests(folder: Path = HERE) -> dict[str, str]:
    """SHA-256 of each compiled module's source, by module name."""
    return {
        name: hashlib.sha256((folder / f"{name}.py").read_bytes()).hexdigest()
        for name in NATIVE_MODULES
    }


def python_tag() -> str:
    """What the compiled build is bound to: the interpreter and its version."""
    return f"{sys.implementation.cache_tag}-{sys.version_info.releaselevel}"


def manifest_text(folder: Path = HERE) -> str:
    """The manifest describing a build of the sources in ``folder`` as they are now."""
    doc = {"python": python_tag(), "sources": source_digests(folder)}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def build_matches(folder: Path = HERE) -> tuple[bool, str]:
    """(True, "") when the compiled build in ``folder`` is of the sources as
    they are now and for this Python; else (False, why not)."""
    path = folder / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False, "not built (make native)"
    except (OSError, ValueError) as exc:
        return False, f"{path} unreadable: {exc}"
    if not isinstance(doc, dict):
        return False, f"{path} is not a build manifest"
    if doc.get("python") != python_tag():
        return False, f"built for another Python ({doc.get('python')})"
    try:
        digests = source_digests(folder)
    except OSError as exc:
        return False, f"source unreadable: {exc}"
    built = doc.get("sources")
    built = built if isinstance(built, dict) else {}
    stale = sorted(name for name, digest in digests.items() if built.get(name) != digest)
    if stale:
        return False, f"older than the source of {', '.join(stale)} (make native)"
    return True, ""


class _SourceFinder:
    """Finds ``centrex.sip.<module>`` in its ``.py`` file, never the extension
    (a meta path finder; not derived from importlib.abc, whose import costs ~20 ms)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names = {f"{__package__}.{name}" for name in NATIVE_MODULES}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        source = self.folder / f"{fullname.rpartition('.')[2]}.py"
        return importlib.util.spec_from_file_location(fullname, source)


#: "compiled" or "pure": what ``choose`` decided.
mode = "pure"
#: Why the compiled build is not used ("" when it is).
reason = ""


def compiled_present(folder: Path = HERE) -> bool:
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return any(
        (folder / f"{name}{suffix}").exists() for name in NATIVE_MODULES for suffix in suffixes
    )


def choose(folder: Path = HERE) -> str:
    """Decide, once, which build of ``NATIVE_MODULES`` this process imports."""
    global mode, reason
    if any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        return mode
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        mode, reason = "pure", f"{PURE_ENV} is set"
    elif not compiled_present(folder):
        mode, reason = "pure", "not built (make native)"
        return mode  # nothing to shadow: the normal import finds the sources
    else:
        ok, why = build_matches(folder)
        if ok:
            mode, reason = "compiled", ""
            return mode
        mode, reason = "pure", why
        logger.warning("compiled SIP modules not used: %s", why)
    sys.meta_path.insert(0, _SourceFinder(folder))
    return mode

