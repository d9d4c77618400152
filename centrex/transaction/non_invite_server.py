"""The non-INVITE server transaction (RFC 3261 17.2.2, Figure 8).

A retransmitted request is discarded while Trying, answered with the last
provisional response while Proceeding and with the final response while
Completed. Timer J keeps the transaction for the request retransmissions an
unreliable transport may still bring (zero on reliable transports). Further
responses from the TU once Completed are discarded.

A CANCEL is one of these (9.2): the layer finds the INVITE it targets with
``TransactionLayer.find_invite_for_cancel``.
"""

from __future__ import annotations

from centrex.records import IdentityEnum
from centrex.transaction.machine import Actions, Do, Machine, Start
from centrex.transaction.timers import Timer


class State(IdentityEnum):
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class Input(IdentityEnum):
    START = "request received"
    REQUEST = "request retransmission received"
    TU_PROVISIONAL = "1xx from TU"
    TU_FINAL = "200-699 from TU"
    TIMER_J = "Timer J fires"
    TRANSPORT_ERROR = "transport error"


def classify(status: int) -> Input | None:
    """The input a response with ``status`` from the TU feeds (17.2.2)."""
    if 100 <= status <= 199:
        return Input.TU_PROVISIONAL
    if 200 <= status <= 699:
        return Input.TU_FINAL
    return None


_S, _I = State, Input

TABLE: dict[tuple[State, Input], tuple[State, Actions]] = {
    (_S.TRYING, _I.START): (_S.TRYING, (Do.PASS_REQUEST,)),
    (_S.TRYING, _I.REQUEST): (_S.TRYING, ()),
    (_S.TRYING, _I.TU_PROVISIONAL): (_S.PROCEEDING, (Do.SEND_RESPONSE,)),
    (_S.TRYING, _I.TU_FINAL): (_S.COMPLETED, (Do.SEND_RESPONSE, Start(Timer.J))),
    (_S.PROCEEDING, _I.REQUEST): (_S.PROCEEDING, (Do.RESEND_RESPONSE,)),
    (_S.PROCEEDING, _I.TU_PROVISIONAL): (_S.PROCEEDING, (Do.SEND_RESPONSE,)),
    (_S.PROCEEDING, _I.TU_FINAL): (_S.COMPLETED, (Do.SEND_RESPONSE, Start(Timer.J))),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, (Do.TRANSPORT_ERROR,)),
    (_S.COMPLETED, _I.REQUEST): (_S.COMPLETED, (Do.RESEND_RESPONSE,)),
    (_S.COMPLETED, _I.TU_PROVISIONAL): (_S.COMPLETED, ()),
    (_S.COMPLETED, _I.TU_FINAL): (_S.COMPLETED, ()),
    (_S.COMPLETED, _I.TIMER_J): (_S.TERMINATED, ()),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): (_S.TERMINATED, (Do.TRANSPORT_ERROR,)),
}

MACHINE = Machine(
    "non-INVITE server",
    invite=False,
    table=TABLE,
    initial=State.TRYING,
    terminated=State.TERMINATED,
    start=Input.START,
    timer_inputs={Timer.J: Input.TIMER_J},
    transport_error=Input.TRANSPORT_ERROR,
    classify=classify,
    retransmission=Input.REQUEST,
)
