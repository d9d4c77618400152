"""What the transaction layer asks of its users (RFC 3261 17, 17.1.4, 17.2.4).

The layer never does I/O. It appends these to its output list, which the
transport adapter and the transaction user (proxy, registrar, UA core) drain
with ``TransactionLayer.take_outputs()``:

* ``Send``: pass ``message`` to the transport for ``peer`` (the opaque object
  the adapter gave when the transaction was created). A retransmission is the
  very same message object again; the adapter serialises it with ``to_bytes()``.
* ``RequestEvent`` / ``ResponseEvent``: a message for the TU. ``transaction``
  is None when no transaction matched: a response the core handles itself
  (18.1.2; a proxy forwards a stray 2xx, 16.7) or an ACK for a 2xx, which is
  passed end to end outside any transaction (17, 13.2.2.4).
* ``TimeoutEvent``: Timer B or F (a client transaction timed out: 408
  semantics, 8.1.3.1) or Timer H (the ACK never came: a transaction failure,
  17.2.1).
* ``TransportErrorEvent``: the transport failed for this transaction
  (17.1.4, 17.2.4).
* ``TimerCEvent``: the proxy's Timer C fired (16.8); the transaction lives on.
* ``Terminated``: the transaction ended and left the layer's tables.
"""

from __future__ import annotations

from dataclasses import dataclass

# At run time, not only for the checker: a compiled dataclass reads its
# annotations when the module is set up.
from centrex.sip.message import Message, Request, Response
from centrex.transaction.timers import Timer
from centrex.transaction.transaction import (
    ClientTransaction,
    ServerTransaction,
    Transaction,
)

#: What the adapter gave for a message's peer; opaque to the layer. A name of
#: this module, as a compiled dataclass finds its annotations among these
#: (and not among the builtins).
PeerRef = object


@dataclass(frozen=True, slots=True, eq=False)
class Send:
    """Give ``message`` to the transport, addressed to ``peer``."""

    transaction: Transaction
    message: Message
    peer: PeerRef

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, transaction: Transaction, message: Message, peer: PeerRef) -> None:
        object.__setattr__(self, "transaction", transaction)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "peer", peer)


@dataclass(frozen=True, slots=True, eq=False)
class RequestEvent:
    """A request for the TU: a new server transaction's request, or an ACK."""

    transaction: ServerTransaction | None
    request: Request
    peer: PeerRef

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(
        self,
        transaction: ServerTransaction | None,
        request: Request,
        peer: PeerRef,
    ) -> None:
        object.__setattr__(self, "transaction", transaction)
        object.__setattr__(self, "request", request)
        object.__setattr__(self, "peer", peer)


@dataclass(frozen=True, slots=True, eq=False)
class ResponseEvent:
    """A response for the TU, from a client transaction or from none (18.1.2)."""

    transaction: ClientTransaction | None
    response: Response

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, transaction: ClientTransaction | None, response: Response) -> None:
        object.__setattr__(self, "transaction", transaction)
        object.__setattr__(self, "response", response)


@dataclass(frozen=True, slots=True, eq=False)
class TimeoutEvent:
    """The transaction timed out on ``timer`` (B, F or H)."""

    transaction: Transaction
    timer: Timer

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, transaction: Transaction, timer: Timer) -> None:
        object.__setattr__(self, "transaction", transaction)
        object.__setattr__(self, "timer", timer)


@dataclass(frozen=True, slots=True, eq=False)
class TransportErrorEvent:
    """The transport could not send for this transaction (17.1.4, 17.2.4)."""

    transaction: Transaction

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, transaction: Transaction) -> None:
        object.__setattr__(self, "transaction", transaction)


@dataclass(frozen=True, slots=True, eq=False)
class TimerCEvent:
    """Timer C fired for this INVITE client transaction (16.8)."""

    transaction: ClientTransaction

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, transaction: ClientTransaction) -> None:
        object.__setattr__(self, "transaction", transaction)


@dataclass(frozen=True, slots=True, eq=False)
class Resend:
    """A retransmitted request reached a retired transaction (``TransactionLayer.
    retire``): send its final response again, ``data`` being the bytes the
    adapter gave to ``retire``."""

    data: bytes

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, data: bytes) -> None:
        object.__setattr__(self, "data", data)


@dataclass(frozen=True, slots=True, eq=False)
class Terminated:
    """The transaction reached its Terminated state and was removed."""

    transaction: Transaction

    # Written out: a compiled build compiles it (the dataclass's own runs
    # interpreted, ~15x slower); object.__setattr__ as the class is frozen.
    def __init__(self, transaction: Transaction) -> None:
        object.__setattr__(self, "transaction", transaction)


Output = (
    Send
    | RequestEvent
    | ResponseEvent
    | TimeoutEvent
    | TransportErrorEvent
    | TimerCEvent
    | Resend
    | Terminated
)
