"""The non-INVITE client transaction (RFC 3261 17.1.2, Figure 6).

Timer E retransmits on unreliable transports, doubling up to T2 while Trying
and every T2 once a provisional response arrived; Timer F bounds the whole
transaction; Timer K absorbs response retransmissions once Completed (zero on
reliable transports, so the transaction ends with its final response).
"""

from __future__ import annotations

from typing import Final

from centrex.records import IdentityEnum
from centrex.transaction.machine import Actions, Backoff, Do, Machine, RestartAtT2, Start, Stop
from centrex.transaction.timers import Timer


class State(IdentityEnum):
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class Input(IdentityEnum):
    START = "request from TU"
    PROVISIONAL = "1xx received"
    FINAL = "200-699 received"
    TIMER_E = "Timer E fires"
    TIMER_F = "Timer F fires"
    TIMER_K = "Timer K fires"
    TRANSPORT_ERROR = "transport error"


def classify(status: int) -> Input | None:
    """The input a received response with ``status`` feeds (17.1.2.2)."""
    if 100 <= status <= 199:
        return Input.PROVISIONAL
    if 200 <= status <= 699:
        return Input.FINAL
    return None


_S, _I = State, Input
_ON_FINAL: Final[Actions] = (Stop(Timer.E), Stop(Timer.F), Do.PASS_RESPONSE, Start(Timer.K))

TABLE: dict[tuple[State, Input], tuple[State, Actions]] = {
    # 17.1.2.2: send the request; Timer E on unreliable transports, Timer F always.
    (_S.TRYING, _I.START): (_S.TRYING, (Do.SEND_REQUEST, Start(Timer.E), Start(Timer.F))),
    (_S.TRYING, _I.TIMER_E): (_S.TRYING, (Do.SEND_REQUEST, Backoff(Timer.E, cap_at_t2=True))),
    (_S.TRYING, _I.TIMER_F): (_S.TERMINATED, (Do.TIMEOUT,)),
    (_S.TRYING, _I.TRANSPORT_ERROR): (_S.TERMINATED, (Do.TRANSPORT_ERROR,)),
    (_S.TRYING, _I.PROVISIONAL): (_S.PROCEEDING, (Do.PASS_RESPONSE,)),
    (_S.TRYING, _I.FINAL): (_S.COMPLETED, _ON_FINAL),
    # Proceeding: Timer E keeps firing, now every T2.
    (_S.PROCEEDING, _I.TIMER_E): (_S.PROCEEDING, (Do.SEND_REQUEST, RestartAtT2(Timer.E))),
    (_S.PROCEEDING, _I.TIMER_F): (_S.TERMINATED, (Do.TIMEOUT,)),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, (Do.TRANSPORT_ERROR,)),
    (_S.PROCEEDING, _I.PROVISIONAL): (_S.PROCEEDING, (Do.PASS_RESPONSE,)),
    (_S.PROCEEDING, _I.FINAL): (_S.COMPLETED, _ON_FINAL),
    # Completed: retransmitted responses are absorbed until Timer K.
    (_S.COMPLETED, _I.PROVISIONAL): (_S.COMPLETED, ()),
    (_S.COMPLETED, _I.FINAL): (_S.COMPLETED, ()),
    (_S.COMPLETED, _I.TIMER_K): (_S.TERMINATED, ()),
}

MACHINE = Machine(
    "non-INVITE client",
    invite=False,
    table=TABLE,
    initial=State.TRYING,
    terminated=State.TERMINATED,
    start=Input.START,
    timer_inputs={Timer.E: Input.TIMER_E, Timer.F: Input.TIMER_F, Timer.K: Input.TIMER_K},
    transport_error=Input.TRANSPORT_ERROR,
    classify=classify,
)
