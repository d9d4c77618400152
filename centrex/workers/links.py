"""The sockets between the workers of one instance, under asyncio.

Each pair of workers shares one Unix stream socket, made by the supervisor
before the fork (``supervisor``). A stream, not datagrams: what one worker
writes while another is busy waits in the kernel's buffer, then in the
writer's transport, and is never dropped (a dropped change of the location
table would leave the workers disagreeing for good).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import Any, cast

from centrex.workers.frames import MAX_FRAME, FrameError, WorkerInfo, encode, split

logger = logging.getLogger(__name__)

#: (from which worker, kind, fields) of every frame received.
FrameHandler = Callable[[int, int, tuple[Any, ...]], None]


class _Link(asyncio.Protocol):
    def __init__(self, links: WorkerLinks, peer: int) -> None:
        self.links = links
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            frames = split(self.buffer)
        except FrameError as exc:
            logger.error("link to worker %d: %s; closing it", self.peer, exc)
            if self.transport is not None:
                self.transport.close()
            return
        for kind, fields in frames:
            self.links.received(self.peer, kind, fields)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.links.lost(self.peer)


class WorkerLinks:
    """This worker's links to every other one: ``send`` to one, ``broadcast``."""

    def __init__(self, info: WorkerInfo, on_frame: FrameHandler) -> None:
        self.info = info
        self._on_frame = on_frame
        self._links: dict[int, _Link] = {}
        #: Set when this worker begins to stop (or closes its links): a link
        #: lost from then on is the other worker stopping too.
        self.stopping = False
        self._all_closed = asyncio.Event()

    @property
    def index(self) -> int:
        return self.info.index

    @property
    def count(self) -> int:
        return self.info.count

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for peer, sock in sorted(self.info.sockets.items()):
            sock.setblocking(False)
            _, link = await loop.create_unix_connection(
                lambda peer=peer: _Link(self, peer),  # type: ignore[misc]
                sock=sock,
            )
            self._links[peer] = link

    def send(self, worker: int, kind: int, fields: tuple[Any, ...]) -> bool:
        """Queue one frame for ``worker``; False when its link is gone or
        the frame is larger than a worker reads."""
        link = self._links.get(worker)
        frame = _frame(kind, fields)
        if link is None or link.transport is None or frame is None:
            return False
        link.transport.write(frame)
        return True

    def broadcast(self, kind: int, fields: tuple[Any, ...]) -> None:
        """Queue one frame for every other worker."""
        frame = _frame(kind, fields)
        if frame is None:
            return
        for link in self._links.values():
            if link.transport is not None:
                link.transport.write(frame)

    def received(self, peer: int, kind: int, fields: tuple[Any, ...]) -> None:
        try:
            self._on_frame(peer, kind, fields)
        except Exception:
            logger.exception("frame of kind %d from worker %d failed", kind, peer)

    def lost(self, peer: int) -> None:
        if all(link.transport is None for link in self._links.values()):
            self._all_closed.set()
        if self.stopping:
            return
        # The workers no longer share their changes: this one stops, and the
        # supervisor stops the others and exits with an error, so that the
        # instance starts again whole (from the recovery file).
        logger.error("link to worker %d lost: stopping", peer)
        self.stopping = True
        os.kill(os.getpid(), signal.SIGTERM)

    async def closed(self, timeout: float) -> bool:
        """Wait until every other worker has closed its link (it has stopped
        and sent all it had), at most ``timeout`` s; True if all did."""
        if not self._links:
            return True
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.stopping = True
        for link in self._links.values():
            if link.transport is not None:
                link.transport.close()


def _frame(kind: int, fields: tuple[Any, ...]) -> bytes | None:
    """The frame of ``kind`` with ``fields``; None, logged, when it is larger
    than a worker reads (``MAX_FRAME``: the link would be closed)."""
    frame = encode(kind, fields)
    if len(frame) > MAX_FRAME:
        logger.warning("frame of kind %d, %d bytes, not handed to another worker", kind, len(frame))
        return None
    return frame
