"""The INVITE client transaction (RFC 3261 17.1.1, Figure 5; RFC 6026 7.2, Figure 5).

RFC 6026 replaces the 2xx arrow into Terminated by the Accepted state: the
transaction lives on for Timer M, passing every 2xx (retransmissions, other
forks) to the TU, which alone ACKs a 2xx (13.2.2.4). The ACK for a non-2xx final
is the transaction's own (17.1.1.3): built once, resent for each retransmitted
final while Completed, never passed to the TU again.

Two additions the proxy core asks for, both stated by the RFC outside section 17:

* Timer C (16.6 step 11, 16.7 step 2, 16.8): armed only when the TU starts the
  transaction with ``timer_c=True``; reset by a provisional response other than
  100; its expiry is reported to the TU, which sends CANCEL or acts on a 408.
* After the TU sent a CANCEL for this INVITE, a transaction still without a
  final response is given up after 64*T1 (9.1). That wait runs on Timer B,
  whose duration it is, and ends like Timer B: a timeout to the TU.
"""

from __future__ import annotations

from typing import Final

from centrex.records import IdentityEnum
from centrex.transaction.machine import Actions, Backoff, Do, Machine, Start, Stop
from centrex.transaction.timers import Timer


class State(IdentityEnum):
    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(IdentityEnum):
    START = "INVITE from TU"
    TRYING = "100 received"
    PROVISIONAL = "101-199 received"
    SUCCESS = "2xx received"
    FAILURE = "300-699 received"
    CANCEL_SENT = "TU sent CANCEL"
    TIMER_A = "Timer A fires"
    TIMER_B = "Timer B fires"
    TIMER_C = "Timer C fires"
    TIMER_D = "Timer D fires"
    TIMER_M = "Timer M fires"
    TRANSPORT_ERROR = "transport error"


def classify(status: int) -> Input | None:
    """The input a received response with ``status`` feeds (17.1.1.2)."""
    if status == 100:
        return Input.TRYING
    if 101 <= status <= 199:
        return Input.PROVISIONAL
    if 200 <= status <= 299:
        return Input.SUCCESS
    if 300 <= status <= 699:
        return Input.FAILURE
    return None


_S, _I = State, Input
# Leaving Calling stops the retransmissions and Timer B (Figure 5: B only in Calling).
_LEAVE_CALLING: Final[Actions] = (Stop(Timer.A), Stop(Timer.B))
# 17.1.1.2: a 300-699 is ACKed by the transaction and passed up; Timer D absorbs
# its retransmissions (Stop B: it may run in Proceeding for the 9.1 wait).
_ON_FAILURE: Final[Actions] = (
    Stop(Timer.B),
    Stop(Timer.C),
    Do.SEND_ACK,
    Do.PASS_RESPONSE,
    Start(Timer.D),
)
# RFC 6026 7.2: a 2xx moves to Accepted for Timer M; the TU ACKs it.
_ON_SUCCESS: Final[Actions] = (Stop(Timer.B), Stop(Timer.C), Do.PASS_RESPONSE, Start(Timer.M))

TABLE: dict[tuple[State, Input], tuple[State, Actions]] = {
    # 17.1.1.2: send the INVITE; Timer A on unreliable transports, Timer B always.
    (_S.CALLING, _I.START): (
        _S.CALLING,
        (Do.SEND_REQUEST, Start(Timer.A), Start(Timer.B), Start(Timer.C)),
    ),
    # Timer A doubles without a cap; Timer B bounds it.
    (_S.CALLING, _I.TIMER_A): (_S.CALLING, (Do.SEND_REQUEST, Backoff(Timer.A, cap_at_t2=False))),
    (_S.CALLING, _I.TIMER_B): (_S.TERMINATED, (Do.TIMEOUT,)),
    (_S.CALLING, _I.TIMER_C): (_S.CALLING, (Do.TIMER_C,)),
    (_S.CALLING, _I.TRANSPORT_ERROR): (_S.TERMINATED, (Do.TRANSPORT_ERROR,)),
    (_S.CALLING, _I.TRYING): (_S.PROCEEDING, (*_LEAVE_CALLING, Do.PASS_RESPONSE)),
    (_S.CALLING, _I.PROVISIONAL): (
        _S.PROCEEDING,
        (*_LEAVE_CALLING, Start(Timer.C), Do.PASS_RESPONSE),
    ),
    (_S.CALLING, _I.SUCCESS): (_S.ACCEPTED, (Stop(Timer.A), *_ON_SUCCESS)),
    (_S.CALLING, _I.FAILURE): (_S.COMPLETED, (Stop(Timer.A), *_ON_FAILURE)),
    # Proceeding: no retransmissions; every provisional goes to the TU.
    (_S.PROCEEDING, _I.TRYING): (_S.PROCEEDING, (Do.PASS_RESPONSE,)),
    (_S.PROCEEDING, _I.PROVISIONAL): (_S.PROCEEDING, (Start(Timer.C), Do.PASS_RESPONSE)),
    (_S.PROCEEDING, _I.SUCCESS): (_S.ACCEPTED, _ON_SUCCESS),
    (_S.PROCEEDING, _I.FAILURE): (_S.COMPLETED, _ON_FAILURE),
    (_S.PROCEEDING, _I.TIMER_C): (_S.PROCEEDING, (Do.TIMER_C,)),
    # 9.1: 64*T1 after the CANCEL without a final response, give the INVITE up.
    (_S.PROCEEDING, _I.CANCEL_SENT): (_S.PROCEEDING, (Stop(Timer.C), Start(Timer.B))),
    (_S.PROCEEDING, _I.TIMER_B): (_S.TERMINATED, (Do.TIMEOUT,)),
    # Completed: a retransmitted final is ACKed again and not passed up.
    (_S.COMPLETED, _I.FAILURE): (_S.COMPLETED, (Do.SEND_ACK,)),
    (_S.COMPLETED, _I.TIMER_D): (_S.TERMINATED, ()),
    # RFC 6026 7.2: Accepted passes every 2xx to the TU and never ACKs one.
    (_S.ACCEPTED, _I.SUCCESS): (_S.ACCEPTED, (Do.PASS_RESPONSE,)),
    (_S.ACCEPTED, _I.TIMER_M): (_S.TERMINATED, ()),
}

MACHINE = Machine(
    "INVITE client",
    invite=True,
    table=TABLE,
    initial=State.CALLING,
    terminated=State.TERMINATED,
    start=Input.START,
    timer_inputs={
        Timer.A: Input.TIMER_A,
        Timer.B: Input.TIMER_B,
        Timer.C: Input.TIMER_C,
        Timer.D: Input.TIMER_D,
        Timer.M: Input.TIMER_M,
    },
    transport_error=Input.TRANSPORT_ERROR,
    classify=classify,
)
