"""The vocabulary of the transition tables (RFC 3261 17, RFC 6026 7).

Every machine module (``invite_client``, ``non_invite_client``,
``invite_server``, ``non_invite_server``) holds its ``State`` enum, its
``Input`` enum and one table ``{(state, input): (next_state, actions)}``. The
actions are the small closed set below; ``centrex.transaction.engine`` carries
them out. Nothing outside the tables decides a transition, so reading a table
is reading the figure of the RFC it implements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar, cast

from centrex.records import IdentityEnum
from centrex.transaction.timers import Timer


class Do(IdentityEnum):
    """Actions that send something or tell the TU something."""

    SEND_REQUEST = "send request"  # (re)transmit the request that made the client transaction
    SEND_ACK = "send ACK"  # ACK a non-2xx final, built once and resent as is (17.1.1.3)
    SEND_TRYING = "send 100 Trying"  # the INVITE server transaction's own 100 (17.2.1)
    SEND_RESPONSE = "send response"  # send the TU's response and remember it as the last one
    RESEND_RESPONSE = "resend last response"  # the last response again, if any
    PASS_RESPONSE = "pass response to TU"
    PASS_REQUEST = "pass request to TU"
    TIMEOUT = "inform TU of timeout"  # Timers B, F, H: a 408 for clients (8.1.3.1)
    TRANSPORT_ERROR = "inform TU of transport error"  # 17.1.4, 17.2.4
    TIMER_C = "inform TU that Timer C fired"  # the proxy decides: CANCEL or 408 (16.8)


@dataclass(frozen=True, slots=True)
class Start:
    """Arm ``timer`` with its initial duration for this transport.

    A timer the RFC does not run on this transport (A, E, G on reliable ones;
    C unless the TU asked for it) is not armed; a zero duration fires at once.
    """

    timer: Timer


@dataclass(frozen=True, slots=True)
class Backoff:
    """Re-arm ``timer`` with twice its last interval, capped at T2 when ``cap_at_t2``."""

    timer: Timer
    cap_at_t2: bool


@dataclass(frozen=True, slots=True)
class RestartAtT2:
    """Re-arm ``timer`` with T2 (Timer E in the non-INVITE Proceeding state, 17.1.2.2)."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class Stop:
    """Disarm ``timer``."""

    timer: Timer


Action = Do | Start | Backoff | RestartAtT2 | Stop
Actions = tuple[Action, ...]

S = TypeVar("S", bound=Enum)
I = TypeVar("I", bound=Enum)  # noqa: E741


class Machine:
    """One transaction state machine, as the engine sees it.

    ``table`` maps (state, input) to (next state, actions); ``start`` is the
    input fed once when the transaction is created; ``timer_inputs`` names the
    input each of its timers feeds when it fires; ``classify`` turns a response
    status code (received, for a client; from the TU, for a server) into an
    input, or None for a code outside 100-699.
    """

    __slots__ = (
        "ack",
        "classify",
        "initial",
        "invite",
        "name",
        "retransmission",
        "start",
        "table",
        "terminated",
        "timer_inputs",
        "transport_error",
    )

    def __init__(
        self,
        name: str,
        *,
        invite: bool,
        table: Mapping[tuple[S, I], tuple[S, Actions]],
        initial: S,
        terminated: S,
        start: I,
        timer_inputs: Mapping[Timer, I],
        transport_error: I,
        classify: Callable[[int], I | None],
        retransmission: I | None = None,
        ack: I | None = None,
    ) -> None:
        self.name = name
        self.invite = invite
        # The engine only compares and looks up: it needs no more than Enum.
        self.table = cast(Mapping[tuple[Enum, Enum], tuple[Enum, Actions]], table)
        self.initial: Enum = initial
        self.terminated: Enum = terminated
        self.start: Enum = start
        self.timer_inputs = cast(Mapping[Timer, Enum], timer_inputs)
        self.transport_error: Enum = transport_error
        self.classify = cast(Callable[[int], Enum | None], classify)
        self.retransmission: Enum | None = retransmission
        self.ack: Enum | None = ack

    def __repr__(self) -> str:
        return f"<Machine {self.name}>"
