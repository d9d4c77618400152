"""Build or remove the compiled modules (``make native``; see ``centrex.native``).

python -m centrex.native_build build    # compile with mypyc
python -m centrex.native_build clean    # back to pure Python
python -m centrex.native_build status   # which build this process runs
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from centrex import native
from centrex.native import (
    COMPILED,
    HERE,
    MANIFEST,
    NATIVE_MODULES,
    SHARED_LIBRARY,
    build_matches,
    is_extension,
    manifest_text,
    packages,
    source_digests,
    source_of,
)


class BuildError(Exception):
    """The build did not produce a usable set of modules."""


def build(folder: Path = COMPILED, sources: Path = HERE) -> None:
    """Compile ``NATIVE_MODULES`` with mypyc into ``folder`` and write its manifest.

    The sources are copied first and that copy is compiled and hashed, so the
    manifest names exactly the text that was compiled; a source changed
    while compiling fails the build (``make`` then builds again next time).
    Needs mypy (it brings mypyc), setuptools, a C compiler and the Python
    headers. The old build is removed first, so a failed build leaves none.
    """
    from mypyc.build import mypycify  # only here: a dependency of the build alone
    from setuptools import Distribution  # type: ignore[import-untyped,unused-ignore]

    clean(folder, sources)
    with tempfile.TemporaryDirectory(prefix="centrex-native-") as work:
        stage = Path(work) / "src"
        root = stage / "centrex"
        # the whole package's sources: mypyc reads the types of what the
        # compiled modules import (the package's __init__ is left empty, as
        # importing it would run choose())
        shutil.copytree(
            sources, root, ignore=shutil.ignore_patterns("_compiled", "__pycache__", "*.so")
        )
        (root / "__init__.py").write_text("", encoding="utf-8")
        compiled = source_digests(root)
        previous = Path.cwd()
        os.chdir(stage)  # module names come from the paths, from here
        try:
            extensions = mypycify(
                [str(source_of(name, Path("centrex"))) for name in NATIVE_MODULES],
                opt_level="3",
                debug_level="0",
                group_name=f"centrex.{SHARED_LIBRARY.removesuffix('__mypyc')}",
            )
            dist = Distribution({"name": "centrex-native", "ext_modules": extensions})
            dist.script_args = [
                "build_ext",
                f"--build-lib={Path(work) / 'lib'}",
                f"--build-temp={Path(work) / 'tmp'}",
            ]
            dist.parse_command_line()
            dist.run_commands()
        finally:
            os.chdir(previous)
        if source_digests(sources) != compiled:
            raise BuildError("a source changed while it was compiled; build again")
        built = Path(work) / "lib" / "centrex"
        files: dict[str, str] = {}
        for name in (*NATIVE_MODULES, SHARED_LIBRARY):
            where = source_of(name, built).parent
            matches = [f for f in where.glob(f"{name.rpartition('.')[2]}.*") if is_extension(f)]
            if len(matches) != 1:
                raise BuildError(f"the build made {len(matches)} extension files for {name}")
            file = matches[0].relative_to(built)
            (folder / file.parent).mkdir(parents=True, exist_ok=True)
            shutil.copy2(matches[0], folder / file)
            files[name] = file.as_posix()
    (folder / MANIFEST).write_text(manifest_text(compiled, files, folder), encoding="utf-8")


def clean(folder: Path = COMPILED, sources: Path = HERE) -> None:
    """Remove the compiled build, and what earlier layouts left (extension
    modules beside the sources, ``centrex/sip/_compiled``): the pure-Python
    modules run from then on."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(sources / "sip" / "_compiled", ignore_errors=True)
    (sources / "sip" / MANIFEST).unlink(missing_ok=True)
    for package in packages():
        for file in sources.joinpath(*package.split(".")).iterdir():
            if is_extension(file):
                file.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m centrex.native_build build|clean|status``."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "status"
    if command == "build":
        try:
            build()
        except BuildError as exc:
            clean()
            print(f"compiled modules not built: {exc}", file=sys.stderr)
            return 1
        files, why = build_matches()
        print(f"compiled modules built: {'in use' if files else why}")
        return 0 if files else 1
    if command == "clean":
        clean()
        return 0
    if command == "status":
        print(f"{native.mode}{f' ({native.reason})' if native.reason else ''}")
        return 0
    print("usage: python -m centrex.native_build build|clean|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
