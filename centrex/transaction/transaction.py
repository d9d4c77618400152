"""Client and server transactions (RFC 3261 17.1, 17.2): the state a machine runs on.

A transaction is plain data plus the machine it follows: its current state, the
request that created it, the last response, its armed timers and the peer the
transport adapter named. Every transition is decided by the machine's table
and carried out by ``centrex.transaction.engine.Engine``; the timers live in
the layer's single ``TimerQueue``, a transaction only remembers the deadlines
and tokens of its own.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from centrex.transaction.machine import Machine
from centrex.transaction.timers import Timer

if TYPE_CHECKING:
    from centrex.sip.message import Request, Response
    from centrex.transaction.engine import Engine


class Transaction:
    """What client and server transactions share."""

    __slots__ = (
        "__weakref__",
        "_engine",
        "_intervals",
        "_timers",
        "key",
        "last_response",
        "machine",
        "peer",
        "reliable",
        "request",
        "state",
    )

    def __init__(
        self,
        engine: Engine,
        machine: Machine,
        request: Request,
        *,
        reliable: bool,
        peer: object,
        key: tuple[object, ...],
    ) -> None:
        self._engine = engine
        self.machine = machine
        self.state: Enum = machine.initial
        self.request = request
        self.reliable = reliable
        self.peer = peer
        self.key = key
        self.last_response: Response | None = None
        # timer -> (deadline, token in the layer's TimerQueue)
        self._timers: dict[Timer, tuple[float, int]] = {}
        # timer -> the interval it was last armed with (for the doubling of A, E, G)
        self._intervals: dict[Timer, float] = {}

    @property
    def is_invite(self) -> bool:
        """True for an INVITE transaction (17.1.1, 17.2.1)."""
        return self.machine.invite

    @property
    def terminated(self) -> bool:
        return self.state is self.machine.terminated

    @property
    def method(self) -> str:
        return self.request.method

    def armed_timers(self) -> dict[Timer, float]:
        """The armed timers and their deadlines."""
        return {timer: deadline for timer, (deadline, _) in self._timers.items()}

    def next_deadline(self) -> float | None:
        """The earliest deadline among this transaction's timers, or None."""
        if not self._timers:
            return None
        return min(deadline for deadline, _ in self._timers.values())

    def handle_timer(self, now: float) -> None:
        """Fire every timer of this transaction that is due at ``now``, earliest first."""
        self._engine.fire_due(self, now)

    def __repr__(self) -> str:
        kind = type(self).__name__
        return f"<{kind} {self.request.method} {self.state.value} {self.key!r}>"


class ClientTransaction(Transaction):
    """A client transaction (17.1): sends a request, passes its responses up.

    ``ack`` is the ACK the INVITE transaction built for a non-2xx final
    (17.1.1.3). ``cancel`` is the CANCEL client transaction started for this
    INVITE, and ``cancels`` the INVITE transaction a CANCEL transaction targets
    (9.1). ``timer_c`` tells whether the proxy's Timer C runs (16.6 step 11).
    """

    __slots__ = ("ack", "cancel", "cancels", "timer_c")

    def __init__(
        self,
        engine: Engine,
        machine: Machine,
        request: Request,
        *,
        reliable: bool,
        peer: object,
        key: tuple[object, ...],
        timer_c: bool = False,
    ) -> None:
        super().__init__(engine, machine, request, reliable=reliable, peer=peer, key=key)
        self.timer_c = timer_c
        self.ack: Request | None = None
        self.cancel: ClientTransaction | None = None
        self.cancels: ClientTransaction | None = None


class ServerTransaction(Transaction):
    """A server transaction (17.2): receives a request, sends the TU's responses."""

    __slots__ = ()

    @property
    def rfc2543(self) -> bool:
        """True when matched by the RFC 2543 rules (the branch lacked the cookie, 17.2.3)."""
        return self.key[0] == "2543"
