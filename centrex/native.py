"""Which build of the hot modules runs: compiled (mypyc) or pure Python.

The modules on every message's path (``NATIVE_MODULES``: the SIP message
core -- parsing, header views, URIs, Vias, addresses, building responses --,
the transaction layer, its state machines, matching and timer queue, the
registrar's service, memory store, rules, request reading, packed table and
recovery file, the proxy's core, checks, local-address and owner modules, the
transport's addresses, rules, layer and UDP endpoint, and the glue around
them: the server, the authentication gate, the directory, the SIP trace and
presence's service) can be compiled to C extensions with mypyc (``make
native``, which ``make run`` and ``make test`` do first; DESIGN.md:
"compiling the typed hot modules with mypyc while keeping the pure-Python
path working"). The compiled build is the same source, faster on it
(docs/benchmarks.md).

The build lives in ``centrex/_compiled/`` (a folder per package), not beside
the sources: Python would import an extension found there in preference to
the ``.py``, so a build left behind by other source (an edit, a checkout of
another commit) would run instead of the code as it is. The build is bound to
every source of the package, not only the compiled ones: a compiled module
checks at run time the types it was compiled against, those of the modules
it imports too (a field of ``Binding`` that became a float would be refused
by the old build).
``centrex/__init__.py`` calls ``choose()`` before any of the modules can be
imported: the build is used only when its manifest (``_compiled/native.json``)
names this Python and its ABI, the SHA-256 of every source of the package as
it is now and of every extension file, and every one of those files is
there; a finder placed first on ``sys.meta_path`` then loads each compiled
module from that folder.
Otherwise (or whenever ``CENTREX_PURE_PYTHON=1``) all of them run from
source, never a mix: the compiled modules call each other directly, so one
compiled against another's older source must not run.

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
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

logger = logging.getLogger(__name__)

#: The modules compiled by ``make native``, by name under ``centrex``.
NATIVE_MODULES = (
    "sip.address",
    "sip.build",
    "sip.errors",
    "sip.fields",
    "sip.framing",
    "sip.headers",
    "sip.ids",
    "sip.message",
    "sip.parser",
    "sip.status",
    "sip.uri",
    "sip.via",
    "transaction.engine",
    "transaction.events",
    "transaction.invite_client",
    "transaction.invite_server",
    "transaction.non_invite_client",
    "transaction.non_invite_server",
    "transaction.layer",
    "transaction.machine",
    "transaction.matching",
    "transaction.timer_queue",
    "transaction.transaction",
    "registrar.aor",
    "registrar.binding",
    "registrar.events",
    "registrar.memory",
    "registrar.registrar",
    "registrar.packed",
    "registrar.recovery",
    "registrar.request",
    "registrar.rules",
    "proxy.checks",
    "proxy.core",
    "proxy.local",
    "proxy.owner",
    "transport.address",
    "transport.rules",
    "directory",
    "auth.gate",
    "auth.abuse",
    "auth.identity",
    "auth.challenge",
    "logs.sip_trace",
    "presence.roster",
    "presence.subscriptions",
    "presence.service",
    "transport.layer",
    "transport.udp",
    "server",
)

#: mypyc's shared library of the build (``centrex.native__mypyc``).
SHARED_LIBRARY = "native__mypyc"

#: The package's folder (the sources), where the build and its manifest go.
HERE = Path(__file__).resolve().parent
COMPILED = HERE / "_compiled"
MANIFEST = "native.json"

#: Set to 1 to run the pure-Python modules even where a compiled build is present.
PURE_ENV = "CENTREX_PURE_PYTHON"

_PACKAGE = "centrex"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_of(name: str, sources: Path = HERE) -> Path:
    """The source file of the compiled module ``name`` ("sip.uri")."""
    return sources.joinpath(*name.split(".")).with_suffix(".py")


def packages() -> tuple[str, ...]:
    """The packages some module of the build is in ("sip", "transaction"...)."""
    return tuple(dict.fromkeys(name.rpartition(".")[0] for name in NATIVE_MODULES))


#: Sources the build does not depend on (as path parts): this module and the
#: build's own, and the package's ``__init__`` (which only calls ``choose``).
_NOT_BUILT_ON = {("__init__",), ("native",), ("native_build",)}


def source_digests(sources: Path = HERE) -> dict[str, str]:
    """SHA-256 of every source of the package the build depends on (each
    compiled module and whatever it may import), by module name."""
    digests: dict[str, str] = {}
    for path in sorted(sources.rglob("*.py")):
        parts = path.relative_to(sources).with_suffix("").parts
        if (
            parts[0] == COMPILED.name
            or "__pycache__" in parts
            or parts in _NOT_BUILT_ON
            or any(part.startswith(".") for part in parts)  # an editor's lock file
        ):
            continue
        digests[".".join(parts)] = _sha256(path)
    return digests


def python_tag() -> str:
    """What the compiled build is bound to: the interpreter, its version and
    its ABI (a free-threaded or debug build of the same version differs)."""
    abi = sysconfig.get_config_var("SOABI") or ""
    return f"{sys.implementation.cache_tag}-{sys.version_info.releaselevel}-{abi}"


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
    stale = sorted(name for name in {*digests, *built} if built.get(name) != digests.get(name))
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        return {}, f"older than the source of {shown} (make native)"
    files = doc.get("files")
    if not isinstance(files, dict) or set(files) != {*NATIVE_MODULES, SHARED_LIBRARY}:
        return {}, f"{path} does not list the modules of this build (make native)"
    found: dict[str, Path] = {}
    for name, entry in files.items():
        try:
            file, digest = entry
            extension = folder / str(file)
            # in the build folder, in the package's own subfolder when it has one
            where = name.rpartition(".")[0].split(".") if name != SHARED_LIBRARY else []
            ok = (
                Path(str(file)).parts == (*[p for p in where if p], extension.name)
                and extension.name.startswith(name.rpartition(".")[2] + ".")
                and is_extension(extension)
                and _sha256(extension) == digest
            )
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
    """Finds every module of the packages in ``folders`` (name -> folder) in
    its ``.py`` file, never in an extension module left beside it (by a build
    of an earlier layout)."""

    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = folders

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        folder = self.folders.get(package)
        if folder is None:
            return None
        source = folder / f"{name}.py"
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


def _files(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def choose(folder: Path = COMPILED, sources: Path = HERE) -> str:
    """Decide, once, which build of ``NATIVE_MODULES`` this process imports."""
    global mode, reason
    if any(isinstance(f, _ExtensionFinder | _SourceFinder) for f in sys.meta_path):
        return mode
    folders = {f"{_PACKAGE}.{p}": sources.joinpath(*p.split(".")) for p in packages()}
    if any(is_extension(f) for folder in folders.values() for f in _files(folder)):
        sys.meta_path.insert(0, _SourceFinder(folders))  # an earlier layout's build
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        mode, reason = "pure", f"{PURE_ENV} is set"
        return mode
    files, why = build_matches(folder, sources)
    if not files:
        mode, reason = "pure", why
        if (folder / MANIFEST).exists():
            logger.warning("compiled modules not used: %s", why)
        return mode
    sys.meta_path.insert(0, _ExtensionFinder(files))
    mode, reason = "compiled", ""
    return mode
