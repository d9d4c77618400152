"""The RFC 3261 section 17 transaction layer (updated by RFC 6026), sans-IO.

``TransactionLayer`` is the entry point; ``TimerConfig`` gives every timer; the
outputs a caller drains are in ``centrex.transaction.events``. One table-driven
module per state machine: ``invite_client``, ``non_invite_client``,
``invite_server``, ``non_invite_server``.
"""

from centrex.transaction.events import (
    Output,
    RequestEvent,
    Resend,
    ResponseEvent,
    Send,
    Terminated,
    TimeoutEvent,
    TimerCEvent,
    TransportErrorEvent,
)
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.timers import Timer, TimerConfig
from centrex.transaction.transaction import ClientTransaction, ServerTransaction, Transaction

__all__ = [
    "ClientTransaction",
    "Output",
    "RequestEvent",
    "Resend",
    "ResponseEvent",
    "Send",
    "ServerTransaction",
    "Terminated",
    "TimeoutEvent",
    "Timer",
    "TimerCEvent",
    "TimerConfig",
    "Transaction",
    "TransactionLayer",
    "TransportErrorEvent",
]
