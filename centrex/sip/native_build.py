"""Build or remove the compiled SIP modules (``make native``; see ``native``).

    python -m centrex.sip.native_build build    # compile with mypyc, in place
    python -m centrex.sip.native_build clean    # back to pure Python
    python -m centrex.sip.native_build status   # which build this process runs
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from centrex.sip import native
from centrex.sip.native import HERE, MANIFEST, NATIVE_MODULES, build_matches, manifest_text


def build(folder: Path = HERE) -> None:
    """Compile ``NATIVE_MODULES`` in place with mypyc and write the manifest.

    Needs mypy (it brings mypyc), setuptools, a C compiler and the Python
    headers. The old build is removed first, so a failed build leaves none.
    """
    from mypyc.build import mypycify  # only here: a dependency of the build alone
    from setuptools import Distribution  # type: ignore[import-untyped,unused-ignore]

    clean(folder)
    root = folder.parent.parent
    previous = Path.cwd()
    os.chdir(root)  # --inplace puts each module by its dotted name, from here
    try:
        extensions = mypycify(
            [str(folder / f"{name}.py") for name in NATIVE_MODULES],
            opt_level="3",
            debug_level="0",
            group_name="centrex.sip.native",
        )
        dist = Distribution({"name": "centrex-native", "ext_modules": extensions})
        dist.script_args = ["build_ext", "--inplace", "--build-temp", "build/native"]
        dist.parse_command_line()
        dist.run_commands()
    finally:
        os.chdir(previous)
    (folder / MANIFEST).write_text(manifest_text(folder), encoding="utf-8")


def clean(folder: Path = HERE) -> None:
    """Remove the compiled build (the pure-Python modules run from then on)."""
    (folder / MANIFEST).unlink(missing_ok=True)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for name in (*NATIVE_MODULES, "native__mypyc"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m centrex.sip.native_build build|clean|status``."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "status"
    if command == "build":
        build()
        ok, why = build_matches()
        print(f"compiled SIP modules built: {'in use' if ok else why}")
        return 0 if ok else 1
    if command == "clean":
        clean()
        return 0
    if command == "status":
        print(f"{native.mode}{f' ({native.reason})' if native.reason else ''}")
        return 0
    print("usage: python -m centrex.sip.native_build build|clean|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
