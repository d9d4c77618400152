"""Request validation and loop detection of a proxy (RFC 3261 16.3, 16.6 step 8).

Pure functions over a request: each returns the status to answer with (and
the headers to add), or None when the request passes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

from centrex.sip.message import Request, encode_text
from centrex.sip.via import MAGIC_COOKIE

#: SHA-256's block size in bytes, the length HMAC pads its key to (RFC 2104 2).
_SHA256_BLOCK: Final = 64


class Sha256Mac:
    """HMAC-SHA256 (RFC 2104) under one key, the same bytes as ``hmac.digest(key,
    data, "sha256")``. The two padded key blocks are hashed once, here; each
    MAC copies those two states (``hmac.digest`` sets up the digest in OpenSSL
    again on every call, about 20,000 instructions)."""

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


#: Option tags this proxy supports (16.3 step 5: anything else in Proxy-Require is 420).
SUPPORTED: Final[tuple[str, ...]] = ("path",)


def loop_hash(request: Request) -> str:
    """The part of a branch that repeats when the same request comes back (16.6 step 8).

    Computed over what 16.3 step 4 compares, as the request was received
    (before our own Route values are removed): the Request-URI, the Route
    set, the From and To tags, Call-ID, CSeq number, Proxy-Require and
    Proxy-Authorization. The top Via is left out: it names whichever hop sent
    the request back, so including it would hide the very loop it is meant to
    find. A spiral differs in its Request-URI or its Route set: a BYE that
    passes this proxy twice on a route set it recorded twice (another
    record-routing element in between) comes back with fewer Route values,
    and is no loop (16.6 step 8: "any header fields affecting the request's
    admission or routing").
    """
    parts = (
        request.uri,
        "\x01".join(request.get_all("route")),
        request.from_tag or "",
        request.to_tag or "",
        request.call_id,
        str(request.cseq.number),
        request.get("proxy-require") or "",
        request.get("proxy-authorization") or "",
    )
    digest = hashlib.blake2s(encode_text("\x00".join(parts)), digest_size=6)
    return digest.hexdigest()


def branch_prefix(request: Request) -> str:
    """``z9hG4bK`` and the loop hash: what every branch of this request starts with."""
    return f"{MAGIC_COOKIE}cx{loop_hash(request)}"


def is_loop(
    request: Request, is_myself: Callable[[str, int | None], bool], prefix: str | None = None
) -> bool:
    """16.3 step 4: a Via of ours carrying this request's own loop hash means a loop.

    A Via of ours with another hash is a spiral (the request came back after a
    retargeting), which is fine. ``prefix`` is ``branch_prefix(request)`` when
    the caller has it.
    """
    for via in request.vias:
        branch = via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE + "cx"):
            continue
        if not is_myself(via.host, via.port):
            continue
        if prefix is None:
            prefix = branch_prefix(request)
        if branch.startswith(prefix):
            return True
    return False


def unsupported_proxy_require(request: Request) -> list[str]:
    """16.3 step 5: the Proxy-Require option tags this proxy does not support."""
    wanted = [tag.strip() for tag in request.get_all("proxy-require")]
    return [tag for tag in wanted if tag and tag.lower() not in SUPPORTED]
