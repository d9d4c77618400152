"""The ``centrex`` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("centrex: placeholder", file=sys.stderr)
    return 0
