"""The transaction layer (RFC 3261 17, updated by RFC 6026): tables, matching, one timer heap.

Sans-IO, in the manner of aioquic: every entry point takes the current time
``now`` (plain float seconds on any monotonic clock the caller picks), and what
the layer wants done is appended to an output list drained with
``take_outputs()`` (see ``centrex.transaction.events``). The caller sleeps until
``next_deadline()`` and then calls ``handle_timer(now)``. All timers of all
transactions live in a single ``TimerQueue``, so ten thousand transactions cost
one queue, not ten thousand event-loop handles.

What the layer does with a message, by RFC section:

* 17.2.3: a request that matches a server transaction is a retransmission, fed
  to it (a resend of the last response, or absorbed); otherwise a new server
  transaction is made and the request passed to the TU in a ``RequestEvent``.
* 17.2.1 / RFC 6026 7.1: an ACK that matches an INVITE server transaction is
  absorbed by it (non-2xx: Confirmed) or passed to the TU (Accepted); an ACK
  that matches none (the ACK of a 2xx, 17, 13.2.2.4) goes to the TU as a
  ``RequestEvent`` without a transaction, never making one.
* 17.1.3 / 18.1.2: a response that matches a client transaction is fed to it;
  one that matches none goes to the TU as a ``ResponseEvent`` without one.
* 9.1, 9.2: ``start_cancel`` starts the CANCEL client transaction for an INVITE
  one; ``find_invite_for_cancel`` finds the INVITE server transaction a
  received CANCEL (itself a non-INVITE server transaction) targets.

An adapter's loop, in outline::

    layer.receive_request(request, loop.time(), reliable=False, peer=addr)
    for out in layer.take_outputs():
        ...  # Send -> transport.send(out.peer, out.message.to_bytes()); events -> TU
    # sleep until layer.next_deadline(), then layer.handle_timer(loop.time())
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, Final

from centrex.sip.build import make_cancel
from centrex.sip.errors import ParseError
from centrex.sip.message import Request, Response, encode_text
from centrex.transaction import invite_client, invite_server, non_invite_client, non_invite_server
from centrex.transaction.engine import Engine
from centrex.transaction.events import Output, RequestEvent, Resend, ResponseEvent
from centrex.transaction.machine import Do
from centrex.transaction.matching import (
    ServerKey,
    client_key_of_request,
    client_key_of_response,
    is_rfc2543_key,
    server_key,
    to_tag_matches,
)
from centrex.transaction.timer_queue import TimerQueue
from centrex.transaction.timers import Timer, TimerConfig
from centrex.transaction.transaction import ClientTransaction, ServerTransaction, Transaction

ClientKey = tuple[object, ...]

logger: Final = logging.getLogger(__name__)


# Bound once: compiled, an enumeration's member is looked up by name at every use.
_TIMER_J: Final = Timer.J
_TIMER_K: Final = Timer.K
_SERVER_COMPLETED: Final = non_invite_server.State.COMPLETED
_CLIENT_COMPLETED: Final = non_invite_client.State.COMPLETED

#: Retired server transactions share a chunk when retired within this many
#: seconds (their Timer J then ends with the chunk's, at most this much later)
#: and while their records fit in ``RETIRED_CHUNK`` bytes; a closed chunk is
#: compressed.
RETIRED_WINDOW_S: Final = 0.5
RETIRED_CHUNK: Final = 128 * 1024

#: A record: the key's length and the response's, then both.
_RECORD: Final = struct.Struct("!II")
#: How many inflated chunks are kept for the retransmissions that follow.
INFLATED_CHUNKS: Final = 8


class _Chunk:
    """The records of retired server transactions of one short window,
    compressed once the chunk is closed; ``count`` keys of the key queue."""

    __slots__ = ("blob", "count", "deadline", "open_until")

    def __init__(self, deadline: float) -> None:
        #: Timer J of the latest transaction in it: the chunk's.
        self.deadline = deadline
        #: Transactions whose Timer J ends by then may join it.
        self.open_until = deadline + RETIRED_WINDOW_S
        self.count = 0
        self.blob: bytes | None = None


class _RetiredResponses:
    """Completed non-INVITE server transactions reduced to what a
    retransmission needs (``TransactionLayer.retire``), until Timer J.

    Over UDP a registrar holds one for every REGISTER of the last 32 s:
    32,000 at 1,000 a second. Each is the hash of its key in ``entries``
    (an int: a third of the key's text, ~50 bytes less per transaction) and a
    record (key and response) written into one reused buffer; when the buffer
    is full or its window has passed, its records are compressed into one
    blob (~10x smaller: responses differ little) and the buffer is reused.
    A record is found by walking the records by their lengths, never by
    searching the bytes (a response echoes its request's bytes), and only
    when its whole key matches: two keys of the same hash (one in 2**64,
    per pair) leave the older unfound, answered as a new request, as it is
    once its Timer J has passed.
    The transactions kept a dozen small objects each before, about a
    kilobyte, and once they ended CPython's allocator kept their pools among
    the registrations' (30 MB of RSS after 100,000 REGISTERs at 1,000/s); a
    chunk of its own per batch fragmented the C heap instead. A
    retransmission that reaches a closed chunk inflates it (a fraction of a
    millisecond) unless one of the last ``INFLATED_CHUNKS`` chunks asked
    for: retransmissions are the rare case, but those of one moment come
    from a few chunks (requests first sent 0.5, 1.5, 3.5 s before).
    """

    __slots__ = ("buffer", "chunks", "compressor", "entries", "inflated", "keys", "used")

    def __init__(self) -> None:
        #: The hash of a retired transaction's key -> the chunk of its record.
        self.entries: dict[int, _Chunk] = {}
        #: Every hash in ``entries``, oldest first (``_Chunk.count`` per chunk).
        self.keys: deque[int] = deque()
        self.chunks: deque[_Chunk] = deque()
        self.buffer = bytearray(RETIRED_CHUNK)
        self.used = 0
        # One raw deflate stream, fully flushed after each chunk: each blob
        # then inflates on its own, and no compressor state (a quarter of a
        # megabyte) is made and freed per chunk.
        self.compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        #: The closed chunks inflated last (at most ``INFLATED_CHUNKS``, the
        #: latest asked for last): their data and where each key's response
        #: lies. Inflating the whole chunk again for every retransmission
        #: cost more than answering a new request, and an overloaded
        #: server's clients retransmit everything.
        self.inflated: dict[_Chunk, tuple[bytes, dict[bytes, tuple[int, int]]]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    @staticmethod
    def flat(key: ServerKey) -> str:
        # An RFC 3261 key ("3261", branch, host, port, method); RFC 2543
        # transactions are never retired.
        return f"{key[1]}\x00{key[2]}\x00{key[3]}\x00{key[4]}"

    def add(self, key: ServerKey, resend: bytes, deadline: float) -> None:
        encoded = encode_text(self.flat(key))
        record = b"".join((_RECORD.pack(len(encoded), len(resend)), encoded, resend))
        chunks = self.chunks
        chunk = chunks[-1] if chunks else None
        if (
            chunk is None
            or chunk.blob is not None
            or deadline > chunk.open_until
            or self.used + len(record) > len(self.buffer)
        ):
            self._close()
            chunk = _Chunk(deadline)
            chunks.append(chunk)
        if len(record) > len(self.buffer):
            self.buffer = bytearray(len(record))
        self.buffer[self.used : self.used + len(record)] = record
        self.used += len(record)
        chunk.deadline = max(chunk.deadline, deadline)
        chunk.count += 1
        index = hash(key)
        self.keys.append(index)
        self.entries[index] = chunk

    def _close(self) -> None:
        """Compress the open chunk's records; the buffer is free again."""
        if self.chunks and self.chunks[-1].blob is None:
            data = memoryview(self.buffer)[: self.used]
            compressor = self.compressor
            self.chunks[-1].blob = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
            self.used = 0

    def get(self, key: ServerKey) -> bytes | None:
        chunk = self.entries.get(hash(key))
        if chunk is None:
            return None
        wanted = encode_text(self.flat(key))
        if chunk.blob is None:
            return _find_record(self.buffer, self.used, wanted)
        inflated = self.inflated
        found = inflated.pop(chunk, None)
        if found is None:
            data = zlib.decompressobj(-15).decompress(chunk.blob)
            found = (data, _records_by_key(data))
            if len(inflated) >= INFLATED_CHUNKS:
                del inflated[next(iter(inflated))]  # the one asked for longest ago
        inflated[chunk] = found
        data, starts = found
        place = starts.get(wanted)
        if place is None:
            return None
        at, length = place
        return data[at : at + length]

    def next_deadline(self) -> float | None:
        return self.chunks[0].deadline if self.chunks else None

    def expire(self, now: float) -> None:
        chunks, entries, keys = self.chunks, self.entries, self.keys
        while chunks and chunks[0].deadline <= now:
            chunk = chunks.popleft()
            if not chunks:
                self.used = 0  # it was the open chunk
            self.inflated.pop(chunk, None)
            for _ in range(chunk.count):
                key = keys.popleft()
                if entries.get(key) is chunk:
                    del entries[key]


# From record to record by their lengths, never by searching the bytes: a
# response echoes what its request carried (a Call-ID can hold any byte), so
# a search could match a record forged inside one.


def _records(data: bytes | bytearray, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Each record of ``data[:end]``: its key, where its response starts and
    the response's length."""
    at, size = 0, _RECORD.size
    while at + size <= end:
        key_length, length = _RECORD.unpack_from(data, at)
        at += size + key_length
        if at + length > end:
            return  # (never written so; a record cut short is not one)
        yield bytes(data[at - key_length : at]), at, length
        at += length


def _find_record(data: bytes | bytearray, end: int, wanted: bytes) -> bytes | None:
    """The response of the first record of key ``wanted`` in ``data[:end]``."""
    for key, at, length in _records(data, end):
        if key == wanted:
            return bytes(data[at : at + length])
    return None


def _records_by_key(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Where the response of every record of ``data`` (a whole chunk)
    starts and its length, by key, the first record of a key kept."""
    starts: dict[bytes, tuple[int, int]] = {}
    for key, at, length in _records(data, len(data)):
        starts.setdefault(key, (at, length))
    return starts


class _RetiredClients:
    """Completed non-INVITE client transactions reduced to their keys
    (``TransactionLayer.retire_client``) until Timer K, which is the same for
    all of them, so the deadlines come in order."""

    __slots__ = ("keys", "until")

    def __init__(self) -> None:
        self.keys: set[ClientKey] = set()
        self.until: deque[tuple[float, ClientKey]] = deque()

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: ClientKey) -> bool:
        return key in self.keys

    def add(self, key: ClientKey, deadline: float) -> None:
        self.keys.add(key)
        self.until.append((deadline, key))

    def next_deadline(self) -> float | None:
        return self.until[0][0] if self.until else None

    def expire(self, now: float) -> None:
        until, keys = self.until, self.keys
        while until and until[0][0] <= now:
            keys.discard(until.popleft()[1])


def _sent_by_is_ours(request: Request, response: Response) -> bool:
    """Whether ``response``'s top Via has the sent-by of ``request``'s, the
    one we sent (the UAS copies it unchanged, 8.2.6.2)."""
    try:
        theirs = response.top_via
    except ParseError:
        return False
    ours = request.top_via
    if theirs.port != ours.port:
        return False
    if theirs.host.lower() == ours.host.lower():
        return True
    # The same address written otherwise ([2001:db8:0::1] for [2001:db8::1]).
    try:
        return ipaddress.ip_address(theirs.host.strip("[]")) == ipaddress.ip_address(
            ours.host.strip("[]")
        )
    except ValueError:
        return False


def _retirable(
    tx: Transaction, timer: Timer, completed: object, table: dict[Any, Any]
) -> float | None:
    """The deadline of ``timer`` when ``tx`` is a Completed (``completed``)
    non-INVITE transaction on an unreliable transport, still the one in
    ``table`` under its key: what ``retire`` and ``retire_client`` may
    reduce. None otherwise."""
    armed = tx._timers.get(timer)
    if (
        tx.is_invite
        or tx.reliable
        or armed is None
        or tx.state is not completed
        or table.get(tx.key) is not tx
    ):
        return None
    return armed[0]


#: Live RFC 2543 (no magic cookie) server transactions sharing one key, at most.
MAX_RFC2543_SIBLINGS: Final = 32


class TransactionLayer:
    """Every live client and server transaction of one SIP element (RFC 3261 17).

    ``timers`` gives every duration. With ``send_trying`` (the default) an INVITE
    server transaction answers a new INVITE with 100 (Trying) itself (17.2.1);
    without it the TU must answer within 200 ms.
    """

    def __init__(self, timers: TimerConfig | None = None, *, send_trying: bool = True) -> None:
        self.timers = timers if timers is not None else TimerConfig()
        self._engine = Engine(self.timers, send_trying=send_trying, on_terminated=self._forget)
        self._clients: dict[ClientKey, ClientTransaction] = {}
        self._servers: dict[ServerKey, ServerTransaction] = {}
        # RFC 2543 keys leave out the To tag, checked on the few candidates.
        self._rfc2543: dict[ServerKey, list[ServerTransaction]] = {}
        self._rfc2543_count = 0
        # Completed non-INVITE server transactions reduced to their final
        # response until Timer J (``retire``), and client ones to their key
        # until Timer K (``retire_client``).
        self._retired = _RetiredResponses()
        self._retired_clients = _RetiredClients()

    # -- size and inspection --------------------------------------------------------

    def __len__(self) -> int:
        """How many transactions are alive."""
        return self.client_count + self.server_count

    @property
    def client_count(self) -> int:
        return len(self._clients) + len(self._retired_clients)

    @property
    def server_count(self) -> int:
        return len(self._servers) + self._rfc2543_count + len(self._retired)

    @property
    def timer_queue(self) -> TimerQueue[tuple[Transaction, Timer]]:
        """The one timer structure every transaction's timers live in."""
        return self._engine.queue

    @property
    def ignored_inputs(self) -> int:
        """How many inputs the tables ignored (late retransmissions and the like)."""
        return self._engine.ignored

    # -- outputs and time -------------------------------------------------------------

    def take_outputs(self) -> list[Output]:
        """Everything the layer asked for since the last call, in order."""
        outputs = self._engine.outputs
        self._engine.outputs = []
        return outputs

    def next_deadline(self) -> float | None:
        """The earliest armed timer of any transaction, or None (amortised O(1))."""
        deadline = self._engine.queue.peek()
        for retired in (self._retired, self._retired_clients):
            due = retired.next_deadline()
            if due is not None and (deadline is None or due < deadline):
                deadline = due
        return deadline

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        self._retired.expire(now)  # Timer J of retired server transactions
        self._retired_clients.expire(now)  # Timer K of retired client ones
        queue = self._engine.queue
        while (due := queue.pop_due(now)) is not None:
            token, (tx, timer) = due
            self._engine.fire(tx, timer, now, token=token)

    # -- server side (17.2) -------------------------------------------------------------

    def receive_request(
        self, request: Request, now: float, *, reliable: bool, peer: object
    ) -> ServerTransaction | None:
        """A request from the transport (17.2.3, 17.2.1, 17.2.2).

        Returns the server transaction it created, or None when the request was
        a retransmission, an ACK, or could not be matched at all (no usable Via,
        CSeq or Call-ID: no response could reach its sender, so it is dropped).
        """
        try:
            key = server_key(request)
            tx = self._find_server(key, request)
        except ParseError as exc:
            logger.debug("request dropped, no transaction key: %s", exc.reason)
            return None
        engine = self._engine
        if request.method == "ACK":
            if tx is None or tx.machine.ack is None:
                engine.outputs.append(RequestEvent(None, request, peer))
            else:
                engine.feed(tx, tx.machine.ack, now, message=request, peer=peer)
            return None
        if tx is not None:
            retransmission = tx.machine.retransmission
            if retransmission is not None:
                engine.feed(tx, retransmission, now, message=request, peer=peer)
            return None
        if self._retired:
            resend = self._retired.get(key)
            if resend is not None:
                engine.outputs.append(Resend(resend))  # 17.2.2: Completed, a retransmission
                return None
        if is_rfc2543_key(key) and len(self._rfc2543.get(key, ())) >= MAX_RFC2543_SIBLINGS:
            # Matching among same-key RFC 2543 transactions compares To tags one
            # by one; a flood of them must not make every lookup slower.
            logger.debug("request dropped: too many RFC 2543 transactions with one key")
            return None
        machine = invite_server.MACHINE if request.method == "INVITE" else non_invite_server.MACHINE
        tx = ServerTransaction(engine, machine, request, reliable=reliable, peer=peer, key=key)
        if is_rfc2543_key(key):
            self._rfc2543.setdefault(key, []).append(tx)
            self._rfc2543_count += 1
        else:
            self._servers[key] = tx
        engine.feed(tx, machine.start, now, message=request, peer=peer)
        return tx

    def respond(self, server_tx: ServerTransaction, response: Response, now: float) -> bool:
        """Send the TU's ``response`` on ``server_tx`` (17.2.1, 17.2.2).

        Returns True when the response was passed to the transport, False when
        the transaction discarded it (a response after a final one, 17.2.2) or is
        gone (a proxy then forwards a 2xx statelessly, 16.7 step 10).
        """
        event = server_tx.machine.classify(response.status)
        if event is None:
            raise ValueError(f"a response status must be 100-699, not {response.status}")
        actions = self._engine.feed(server_tx, event, now, message=response)
        return actions is not None and Do.SEND_RESPONSE in actions

    def abandon(self, tx: ServerTransaction) -> None:
        """End a non-INVITE server transaction that will get no final response
        (RFC 4320 4.2: a proxy whose branches all timed out sends no 408, as
        the client's own Timer F has fired too). Its ``Terminated`` is
        reported now; a later retransmission of the request is a new one."""
        if tx.is_invite:
            raise ValueError("an INVITE server transaction always gets a final response")
        if not tx.terminated:
            self._engine.end(tx)

    def retire(self, tx: ServerTransaction, resend: bytes) -> bool:
        """Reduce a Completed non-INVITE server transaction on an unreliable
        transport to what that state still does (17.2.2): answer a retransmitted
        request with the final response again, until Timer J.

        ``resend`` is the bytes the adapter needs to send that response again
        (the response and where it goes); a retransmission then comes out as
        ``Resend(resend)``. The transaction itself is let go at once: its
        ``Terminated`` is reported now, and the request, the response and
        their parsed views are freed 32 s early (a REGISTER's transaction kept
        about 4 KB for Timer J; the retired form keeps a key and ``resend``,
        compressed with others, ``_RetiredResponses``).
        False, and nothing changes, for any other transaction.
        """
        if is_rfc2543_key(tx.key):
            return False
        deadline = _retirable(tx, _TIMER_J, _SERVER_COMPLETED, self._servers)
        if deadline is None:
            return False
        self._engine.end(tx)  # cancels Timer J, reports Terminated, forgets tx
        self._retired.add(tx.key, resend, deadline)
        return True

    def retire_client(self, tx: ClientTransaction) -> bool:
        """Reduce a Completed non-INVITE client transaction on an unreliable
        transport to what that state still does (17.1.2.2): absorb
        retransmissions of the final response, until Timer K (T4, 5 s).

        The transaction is let go at once (its ``Terminated`` is reported now),
        with its request, response and timers: a notifier fanning NOTIFYs out
        at hundreds a second otherwise kept thousands of them for Timer K,
        which every young garbage collection walked. Its branch stays taken
        until Timer K. False, and nothing changes, for any other transaction.
        """
        deadline = _retirable(tx, _TIMER_K, _CLIENT_COMPLETED, self._clients)
        if deadline is None:
            return False
        self._engine.end(tx)  # cancels Timer K, reports Terminated, forgets tx
        self._retired_clients.add(tx.key, deadline)
        return True

    def find_server(self, request: Request) -> ServerTransaction | None:
        """The live server transaction ``request`` matches (17.2.3), if any."""
        try:
            return self._find_server(server_key(request), request)
        except ParseError:
            return None

    def find_invite_for_cancel(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (9.2), if it is alive.

        9.2: the CANCEL is matched by 17.2.3 as if its method were not CANCEL.
        """
        if cancel.method != "CANCEL":
            raise ValueError(f"find_invite_for_cancel needs a CANCEL, not {cancel.method}")
        try:
            tx = self._find_server(server_key(cancel, method="INVITE"), cancel)
        except ParseError:
            return None
        if tx is None or not tx.is_invite:
            return None
        return tx

    # -- client side (17.1) ---------------------------------------------------------------

    def start_client(
        self,
        request: Request,
        now: float,
        *,
        reliable: bool,
        peer: object,
        timer_c: bool = False,
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` and send it (17.1.1.2, 17.1.2.2).

        The request must carry its top Via with a branch (8.1.1.7). ``timer_c``
        arms the proxy's Timer C on an INVITE (16.6 step 11). An ACK has no
        client transaction (17.1.1.3, 13.2.2.4): send it directly.
        """
        if request.method == "ACK":
            raise ValueError("an ACK is not sent in a client transaction (17, 13.2.2.4)")
        key = client_key_of_request(request)
        if key is None:
            raise ValueError("the request needs a top Via with a branch (8.1.1.7)")
        if key in self._clients or key in self._retired_clients:
            raise ValueError(f"a client transaction for branch {key[0]} {key[1]} is alive")
        machine = invite_client.MACHINE if request.method == "INVITE" else non_invite_client.MACHINE
        tx = ClientTransaction(
            self._engine, machine, request, reliable=reliable, peer=peer, key=key, timer_c=timer_c
        )
        self._clients[key] = tx
        self._engine.feed(tx, machine.start, now)
        return tx

    def start_cancel(
        self, invite_tx: ClientTransaction, now: float, reasons: Sequence[str] = ()
    ) -> ClientTransaction:
        """Cancel an INVITE client transaction: start and send its CANCEL (9.1).

        The CANCEL is built from the INVITE (same branch, Request-URI, Call-ID,
        From, To, CSeq number, Route), with a Reason header for each of
        ``reasons`` (RFC 3326), and goes to the same peer on the same
        transport. 9.1 forbids it before a provisional response and makes it
        pointless after a final one, so in any state but Proceeding this raises
        ValueError; the TU retries once a provisional arrives. When a CANCEL
        for this INVITE is already running, that one is returned. Once sent,
        the INVITE transaction gives up after 64*T1 without a final (9.1).
        """
        if not invite_tx.is_invite:
            raise ValueError("only an INVITE transaction can be cancelled (9.1)")
        if invite_tx.cancel is not None and not invite_tx.cancel.terminated:
            return invite_tx.cancel
        if not self._engine.accepts(invite_tx, invite_client.Input.CANCEL_SENT):
            raise ValueError(
                f"no CANCEL in state {invite_tx.state.value} (9.1: only after a provisional "
                "response and before a final one)"
            )
        request = make_cancel(invite_tx.request)
        for reason in reasons:
            request.add("Reason", reason)
        cancel = self.start_client(request, now, reliable=invite_tx.reliable, peer=invite_tx.peer)
        cancel.cancels = invite_tx
        invite_tx.cancel = cancel
        self._engine.feed(invite_tx, invite_client.Input.CANCEL_SENT, now)
        return cancel

    def receive_response(self, response: Response, now: float) -> ClientTransaction | None:
        """A response from the transport (17.1.3, 18.1.2).

        Returns the client transaction it was fed to, or None when it matched
        none and went to the TU in a ``ResponseEvent`` without a transaction (or
        was dropped because its CSeq is malformed, 18.1.2, or absorbed by a
        retired transaction, ``retire_client``).
        """
        try:
            key = client_key_of_response(response)
        except ParseError as exc:
            logger.debug("response dropped: %s", exc.reason)
            return None
        tx = self._clients.get(key) if key is not None else None
        if tx is None:
            if key is not None and key in self._retired_clients:
                self._engine.ignored += 1  # Completed: a retransmission, absorbed (17.1.2.2)
                return None
            self._engine.outputs.append(ResponseEvent(None, response))
            return None
        if not _sent_by_is_ours(tx.request, response):
            # 18.1.2: a sent-by we did not write is not an answer to our
            # request, whatever its branch says: discarded silently.
            logger.debug("response dropped: its top Via's sent-by is not the one we sent")
            return None
        event = tx.machine.classify(response.status)
        if event is not None:
            self._engine.feed(tx, event, now, message=response)
        return tx

    def find_client(self, response: Response) -> ClientTransaction | None:
        """The live client transaction ``response`` matches (17.1.3), if any."""
        try:
            key = client_key_of_response(response)
        except ParseError:
            return None
        return self._clients.get(key) if key is not None else None

    # -- both sides -----------------------------------------------------------------------

    def transport_error(self, tx: Transaction, now: float) -> None:
        """The transport failed to send for ``tx`` (17.1.4, 17.2.4)."""
        self._engine.feed(tx, tx.machine.transport_error, now)

    # -- tables ----------------------------------------------------------------------------

    def _find_server(self, key: ServerKey, request: Request) -> ServerTransaction | None:
        if not is_rfc2543_key(key):
            return self._servers.get(key)
        for tx in self._rfc2543.get(key, ()):
            if to_tag_matches(tx, request):
                return tx
        return None

    def _forget(self, tx: Transaction) -> None:
        """Remove a terminated transaction from the tables (17.1.1.2: destroyed at once)."""
        if isinstance(tx, ClientTransaction):
            if self._clients.get(tx.key) is tx:
                del self._clients[tx.key]
            return
        if not is_rfc2543_key(tx.key):
            if self._servers.get(tx.key) is tx:
                del self._servers[tx.key]
            return
        candidates = self._rfc2543.get(tx.key)
        if candidates is not None and tx in candidates:
            candidates.remove(tx)
            self._rfc2543_count -= 1
            if not candidates:
                del self._rfc2543[tx.key]
