"""What the workers of one instance tell each other, as bytes (no I/O).

A frame is a 4-byte big-endian length, then one byte naming its kind, then
its fields in ``marshal`` form (the workers are forks of one program, so they
read each other's marshal; nothing from outside ever reaches these sockets).
"""

from __future__ import annotations

import marshal
from dataclasses import dataclass, field
from pathlib import Path
from socket import socket
from typing import Any

#: A message read by one worker that belongs to another (a response to the
#: other's client transaction, a CANCEL of the other's INVITE): (peer
#: transport, host, port, connection id, local transport, host, port,
#: stream?, the message's bytes, how many workers a CANCEL went through).
MESSAGE = 1
#: Bytes for a connection the receiving worker holds: (transport, host,
#: port, connection id, data).
SEND = 2
#: A change of one AOR's bindings: (aor, the bindings put as rows
#: (``packed.row``), the ids removed).
CHANGE = 3
#: The sender's location store is open (it has read the recovery file):
#: (worker index,). Worker 0 writes the file only once every worker has.
OPENED = 4
#: ``centrex bans clear`` reached worker 0: ([ip or "*", ...],).
CLEAR_BANS = 5
#: A TCP/TLS connection the sender held is gone: (connection id,). Its
#: bindings go from every table (those of that connection only: the phone
#: may have registered again meanwhile over a new one, kept).
CLOSED = 6
#: A TCP/TLS connection the sender holds opened or closed: (transport, host,
#: port, connection id, opened?). An in-dialog request for a phone on it
#: (its Contact is the connection's address, no binding names the
#: connection) is then handed to the sender by any worker.
CONNECTION = 7

KINDS = (MESSAGE, SEND, CHANGE, OPENED, CLEAR_BANS, CLOSED, CONNECTION)

_HEADER = 4
#: The largest frame a worker accepts: a SIP message (64 KiB at most, see
#: ``network.max_message_bytes``) or one AOR's bindings, with room to spare.
MAX_FRAME = 4 * 1024 * 1024


class FrameError(Exception):
    """A frame that no worker of ours sends (a fault of Centrex)."""


@dataclass(slots=True)
class WorkerInfo:
    """Which worker this process is, of how many, and its sockets to the others."""

    index: int
    count: int
    #: The other workers' indexes -> this worker's end of the socket to each.
    sockets: dict[int, socket] = field(default_factory=dict)
    #: This start's nonce epoch (``centrex.auth.nonce``), the same in every
    #: worker, so that each accepts the nonces of the others.
    nonce_epoch: bytes | None = None


def encode(kind: int, fields: tuple[Any, ...]) -> bytes:
    """One frame of ``kind`` carrying ``fields``."""
    body = marshal.dumps(fields)
    return (len(body) + 1).to_bytes(_HEADER, "big") + bytes((kind,)) + body


def split(buffer: bytearray) -> list[tuple[int, tuple[Any, ...]]]:
    """Take every whole frame off the front of ``buffer``: (kind, fields) each.

    What is left is the start of a frame still arriving. FrameError when a
    frame cannot be ours (the link is then closed: a bug, never input).
    """
    out: list[tuple[int, tuple[Any, ...]]] = []
    start = 0
    size = len(buffer)
    while size - start >= _HEADER:
        length = int.from_bytes(buffer[start : start + _HEADER], "big")
        if length < 1 or length > MAX_FRAME:
            raise FrameError(f"frame of {length} bytes")
        end = start + _HEADER + length
        if end > size:
            break
        kind = buffer[start + _HEADER]
        if kind not in KINDS:
            raise FrameError(f"frame of unknown kind {kind}")
        try:
            fields = marshal.loads(bytes(buffer[start + _HEADER + 1 : end]))
        except (ValueError, EOFError, TypeError) as exc:
            raise FrameError(f"frame of kind {kind} unreadable: {exc}") from exc
        if not isinstance(fields, tuple):
            raise FrameError(f"frame of kind {kind} holds {type(fields).__name__}")
        out.append((kind, fields))
        start = end
    del buffer[:start]
    return out


#: How the branches this server makes start (the proxy's, presence's NOTIFYs).
OUR_BRANCHES = ("z9hG4bKcx", "z9hG4bKpn")


def branch_tag(index: int, count: int) -> str:
    """What ends a branch made by worker ``index``: nothing with one worker
    (the branches are as they always were), else ``-<index>``."""
    return "" if count <= 1 else f"-{index}"


def owner_of_branch(branch: str | None, count: int) -> int | None:
    """The worker that made ``branch`` (``branch_tag``), None when it is not
    one of ours or names no worker of ``count``."""
    if branch is None or not branch.startswith(OUR_BRANCHES):
        return None
    _, dash, tail = branch.rpartition("-")
    if not dash or not tail.isdigit() or len(tail) > 3:
        return None
    index = int(tail)
    return index if index < count else None


def owner_of_connection(connection_id: int, count: int) -> int:
    """The worker holding connection ``connection_id`` (``first_connection_id``)."""
    return connection_id % count


def first_connection_id(index: int, count: int) -> tuple[int, int]:
    """(first id, step) of worker ``index``'s connections: ``id % count == index``,
    1, 2, 3... with one worker."""
    return (index or count, count)


def worker_path(path: Path, index: int) -> Path:
    """The file worker ``index`` keeps where one process keeps ``path``: worker
    0 keeps ``path`` itself (so a change of the worker count keeps its file),
    worker 2 of ``bans.json`` keeps ``bans.w2.json``."""
    if index == 0:
        return path
    return path.with_name(f"{path.stem}.w{index}{path.suffix}")


def worker_paths(path: Path) -> list[Path]:
    """``path`` and every other worker's version of it that exists, for the
    commands that read what a running server wrote."""
    found = sorted(path.parent.glob(f"{path.stem}.w*{path.suffix}"))
    return [path, *(p for p in found if p.stem.rpartition(".w")[2].isdigit())]
