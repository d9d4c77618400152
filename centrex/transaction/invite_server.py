"""The INVITE server transaction (RFC 3261 17.2.1, Figure 7; RFC 6026 7.1, Figure 7).

The transaction answers the INVITE with its own 100 (Trying) at once (17.2.1
allows skipping it only when the TU answers within 200 ms, which the layer
cannot know; ``TransactionLayer(send_trying=False)`` leaves it to the TU).
A retransmitted INVITE gets the last provisional response again while
Proceeding and the final response while Completed.

A 300-699 is retransmitted on Timer G (unreliable transports, doubling up to
T2) until the ACK arrives or Timer H gives up (a failure reported to the TU).
The ACK moves to Confirmed, where Timer I absorbs ACK retransmissions.

RFC 6026 7.1: a 2xx moves to Accepted for Timer L instead of ending the
transaction. INVITE retransmissions are absorbed there (the TU retransmits its
2xx, 13.3.1.4), every 2xx from the TU is sent, and an ACK that matches is
passed to the TU rather than absorbed.
"""

from __future__ import annotations

from centrex.records import IdentityEnum
from centrex.transaction.machine import Actions, Backoff, Do, Machine, Start, Stop
from centrex.transaction.timers import Timer


class State(IdentityEnum):
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(IdentityEnum):
    START = "INVITE received"
    REQUEST = "INVITE retransmission received"
    ACK = "ACK received"
    TU_PROVISIONAL = "101-199 from TU"
    TU_SUCCESS = "2xx from TU"
    TU_FAILURE = "300-699 from TU"
    TIMER_G = "Timer G fires"
    TIMER_H = "Timer H fires"
    TIMER_I = "Timer I fires"
    TIMER_L = "Timer L fires"
    TRANSPORT_ERROR = "transport error"


def classify(status: int) -> Input | None:
    """The input a response with ``status`` from the TU feeds (17.2.1)."""
    if 100 <= status <= 199:
        return Input.TU_PROVISIONAL
    if 200 <= status <= 299:
        return Input.TU_SUCCESS
    if 300 <= status <= 699:
        return Input.TU_FAILURE
    return None


_S, _I = State, Input

TABLE: dict[tuple[State, Input], tuple[State, Actions]] = {
    (_S.PROCEEDING, _I.START): (_S.PROCEEDING, (Do.SEND_TRYING, Do.PASS_REQUEST)),
    (_S.PROCEEDING, _I.REQUEST): (_S.PROCEEDING, (Do.RESEND_RESPONSE,)),
    (_S.PROCEEDING, _I.TU_PROVISIONAL): (_S.PROCEEDING, (Do.SEND_RESPONSE,)),
    (_S.PROCEEDING, _I.TU_SUCCESS): (_S.ACCEPTED, (Do.SEND_RESPONSE, Start(Timer.L))),
    (_S.PROCEEDING, _I.TU_FAILURE): (
        _S.COMPLETED,
        (Do.SEND_RESPONSE, Start(Timer.G), Start(Timer.H)),
    ),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, (Do.TRANSPORT_ERROR,)),
    # Completed: resend the final on a retransmitted INVITE and on Timer G.
    (_S.COMPLETED, _I.REQUEST): (_S.COMPLETED, (Do.RESEND_RESPONSE,)),
    (_S.COMPLETED, _I.TIMER_G): (
        _S.COMPLETED,
        (Do.RESEND_RESPONSE, Backoff(Timer.G, cap_at_t2=True)),
    ),
    (_S.COMPLETED, _I.ACK): (_S.CONFIRMED, (Stop(Timer.G), Stop(Timer.H), Start(Timer.I))),
    (_S.COMPLETED, _I.TIMER_H): (_S.TERMINATED, (Do.TIMEOUT,)),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): (_S.TERMINATED, (Do.TRANSPORT_ERROR,)),
    # Confirmed: absorb ACK retransmissions (and late INVITE ones) until Timer I.
    (_S.CONFIRMED, _I.ACK): (_S.CONFIRMED, ()),
    (_S.CONFIRMED, _I.REQUEST): (_S.CONFIRMED, ()),
    (_S.CONFIRMED, _I.TIMER_I): (_S.TERMINATED, ()),
    # RFC 6026 7.1: Accepted.
    (_S.ACCEPTED, _I.REQUEST): (_S.ACCEPTED, ()),
    (_S.ACCEPTED, _I.ACK): (_S.ACCEPTED, (Do.PASS_REQUEST,)),
    (_S.ACCEPTED, _I.TU_SUCCESS): (_S.ACCEPTED, (Do.SEND_RESPONSE,)),
    (_S.ACCEPTED, _I.TRANSPORT_ERROR): (_S.ACCEPTED, (Do.TRANSPORT_ERROR,)),
    (_S.ACCEPTED, _I.TIMER_L): (_S.TERMINATED, ()),
}

MACHINE = Machine(
    "INVITE server",
    invite=True,
    table=TABLE,
    initial=State.PROCEEDING,
    terminated=State.TERMINATED,
    start=Input.START,
    timer_inputs={
        Timer.G: Input.TIMER_G,
        Timer.H: Input.TIMER_H,
        Timer.I: Input.TIMER_I,
        Timer.L: Input.TIMER_L,
    },
    transport_error=Input.TRANSPORT_ERROR,
    classify=classify,
    retransmission=Input.REQUEST,
    ack=Input.ACK,
)
