"""Random tokens for tags, branches and Call-IDs, without a system call each.

RFC 3261 asks for globally unique, cryptographically random tags (19.3) and
branches (8.1.1.7). ``secrets.token_hex`` gives that, but each call is an
``os.urandom`` system call, and system calls are what a busy server can least
afford (72 µs each on the sandboxed build machine, against under 1 µs for
the rest of a token). ``token_hex`` here reads the kernel's random bytes 4 KiB
at a time and hands them out in slices: the same randomness, one system call
per few hundred tokens. A forked child starts with a fresh pool, so parent and
child never hand out the same bytes. For the event loop's thread (the
callers); a thread of its own would need its own pool.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["token_hex"]

_POOL_BYTES: Final = 4096
_pool = b""
_pos = 0


def token_hex(nbytes: int = 8) -> str:
    """``nbytes`` random bytes as lower-case hex (like ``secrets.token_hex``)."""
    global _pool, _pos
    end = _pos + nbytes
    if end > len(_pool):
        _pool = os.urandom(max(_POOL_BYTES, nbytes))
        _pos, end = 0, nbytes
    token = _pool[_pos:end].hex()
    _pos = end
    return token


def _forget() -> None:
    global _pool, _pos
    _pool, _pos = b"", 0


os.register_at_fork(after_in_child=_forget)
