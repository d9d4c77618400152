"""Non-INVITE client transaction: RFC 3261 17.1.2 (Figure 6)."""

from __future__ import annotations

import pytest

from centrex.sip.message import Request
from centrex.transaction.events import (
    ResponseEvent,
    Send,
    Terminated,
    TimeoutEvent,
    TransportErrorEvent,
)
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.non_invite_client import State
from centrex.transaction.timers import Timer, TimerConfig
from centrex.transaction.transaction import ClientTransaction
from tests.transaction.helpers import PEER, request, response, run_clock, send_times


def start(layer: TransactionLayer, *, reliable: bool = False) -> tuple[Request, ClientTransaction]:
    options = request("OPTIONS")
    tx = layer.start_client(options, 0.0, reliable=reliable, peer=PEER)
    layer.take_outputs()
    return options, tx


def test_non_invite_client_sends_request_and_starts_e_and_f() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS")
    tx = layer.start_client(options, 0.0, reliable=False, peer=PEER)
    outputs = layer.take_outputs()
    assert [(type(o), o.message) for o in outputs if isinstance(o, Send)] == [(Send, options)]
    assert tx.state is State.TRYING
    assert tx.armed_timers() == {Timer.E: 0.5, Timer.F: 32.0}


def test_timer_e_caps_at_t2() -> None:
    layer = TransactionLayer()
    _, tx = start(layer)
    log = run_clock(layer, 100.0)
    # Timer E: 0.5, 1, 2, then T2 = 4 (17.1.2.2); Timer F at 64*T1 = 32.
    assert send_times(log) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(at, type(out)) for at, out in log if not isinstance(out, Send)] == [
        (32.0, TimeoutEvent),
        (32.0, Terminated),
    ]
    assert tx.state is State.TERMINATED


def test_timer_e_cap_follows_configured_t2() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.5, t2=1.0))
    start(layer)
    log = run_clock(layer, 5.0)
    assert send_times(log) == [0.5, 1.5, 2.5, 3.5, 4.5]


def test_timer_e_not_used_on_reliable_transport() -> None:
    layer = TransactionLayer()
    _, tx = start(layer, reliable=True)
    assert tx.armed_timers() == {Timer.F: 32.0}
    log = run_clock(layer, 100.0)
    assert send_times(log) == []
    assert [(at, type(out)) for at, out in log] == [(32.0, TimeoutEvent), (32.0, Terminated)]


def test_non_invite_client_provisional_moves_to_proceeding() -> None:
    layer = TransactionLayer()
    options, tx = start(layer)
    layer.receive_response(response(options, 100), 0.2)
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [ResponseEvent]
    assert tx.state is State.PROCEEDING
    layer.receive_response(response(options, 183), 0.3)
    assert [type(o) for o in layer.take_outputs()] == [ResponseEvent]


def test_non_invite_client_proceeding_retransmits_at_t2() -> None:
    layer = TransactionLayer()
    options, tx = start(layer)
    run_clock(layer, 0.5)  # first retransmission; E now 1.0 away, at 1.5
    layer.receive_response(response(options, 100), 1.0)
    layer.take_outputs()
    log = run_clock(layer, 14.0)
    # 17.1.2.2: in Proceeding, Timer E fires and is reset to T2 each time.
    assert send_times(log) == [1.5, 5.5, 9.5, 13.5]
    assert tx.state is State.PROCEEDING


def test_timer_f_times_out_proceeding_non_invite_client() -> None:
    layer = TransactionLayer()
    options, _ = start(layer)
    layer.receive_response(response(options, 100), 1.0)
    layer.take_outputs()
    log = run_clock(layer, 100.0)
    timeouts = [(at, out.timer) for at, out in log if isinstance(out, TimeoutEvent)]
    assert timeouts == [(32.0, Timer.F)]
    assert len(layer) == 0


@pytest.mark.parametrize("status", [200, 404, 503])
@pytest.mark.parametrize("provisional", [False, True])
def test_non_invite_client_final_completes_and_starts_timer_k(
    status: int, provisional: bool
) -> None:
    layer = TransactionLayer()
    options, tx = start(layer)
    if provisional:
        layer.receive_response(response(options, 100), 0.1)
        layer.take_outputs()
    final = response(options, status)
    layer.receive_response(final, 1.0)
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [ResponseEvent]
    assert outputs[0].response is final  # type: ignore[union-attr]
    assert tx.state is State.COMPLETED
    assert tx.armed_timers() == {Timer.K: 6.0}  # T4 = 5; E and F stopped


def test_non_invite_client_completed_absorbs_response_retransmissions() -> None:
    layer = TransactionLayer()
    options, tx = start(layer)
    layer.receive_response(response(options, 200), 1.0)
    layer.take_outputs()
    assert layer.receive_response(response(options, 200), 2.0) is tx
    assert layer.receive_response(response(options, 100), 2.1) is tx
    assert layer.take_outputs() == []
    assert tx.state is State.COMPLETED


def test_timer_k_terminates_completed_non_invite_client() -> None:
    layer = TransactionLayer()
    options, _ = start(layer)
    layer.receive_response(response(options, 200), 1.0)
    layer.take_outputs()
    log = run_clock(layer, 100.0)
    assert [(at, type(out)) for at, out in log] == [(6.0, Terminated)]
    assert len(layer) == 0


def test_timer_k_is_zero_on_reliable_transport() -> None:
    layer = TransactionLayer()
    options, tx = start(layer, reliable=True)
    layer.receive_response(response(options, 200), 1.0)
    assert [type(o) for o in layer.take_outputs()] == [ResponseEvent, Terminated]
    assert tx.state is State.TERMINATED


@pytest.mark.parametrize("provisional", [False, True])
def test_non_invite_client_transport_error_informs_tu_and_terminates(provisional: bool) -> None:
    layer = TransactionLayer()
    options, tx = start(layer)
    if provisional:
        layer.receive_response(response(options, 100), 0.1)
        layer.take_outputs()
    layer.transport_error(tx, 0.2)
    assert [type(o) for o in layer.take_outputs()] == [TransportErrorEvent, Terminated]
    assert len(layer) == 0
    assert layer.next_deadline() is None


def test_non_invite_client_transport_error_after_final_is_ignored() -> None:
    layer = TransactionLayer()
    options, tx = start(layer)
    layer.receive_response(response(options, 200), 0.1)
    layer.take_outputs()
    layer.transport_error(tx, 0.2)
    assert layer.take_outputs() == []
    assert tx.state is State.COMPLETED


# -- retire_client: Completed kept as the branch alone ------------------------------------


def test_a_retired_client_transaction_absorbs_retransmissions_until_timer_k() -> None:
    layer = TransactionLayer()
    options, tx = start(layer)
    layer.receive_response(response(options, 200), 1.0)
    layer.take_outputs()
    assert layer.retire_client(tx)
    (ended,) = layer.take_outputs()
    assert isinstance(ended, Terminated) and ended.transaction is tx
    assert tx.state is State.TERMINATED
    assert len(layer) == 1 and layer.next_deadline() == pytest.approx(6.0)
    # The 200 again, and a late 100: absorbed (17.1.2.2), not handed to the TU
    # as a stray response (which a proxy would try to forward).
    for at, status in ((2.0, 200), (5.9, 100)):
        assert layer.receive_response(response(options, status), at) is None
        assert layer.take_outputs() == []
    # The branch is taken until Timer K.
    with pytest.raises(ValueError, match="alive"):
        layer.start_client(request("OPTIONS"), 3.0, reliable=False, peer=PEER)
    assert run_clock(layer, 6.0) == []
    assert len(layer) == 0 and layer.next_deadline() is None
    # After Timer K a response matches nothing: the TU sees it (17.1.3).
    layer.receive_response(response(options, 200), 7.0)
    (stray,) = layer.take_outputs()
    assert isinstance(stray, ResponseEvent) and stray.transaction is None


def test_only_a_completed_non_invite_client_on_udp_is_retired() -> None:
    layer = TransactionLayer()
    _, trying = start(layer)
    assert not layer.retire_client(trying)  # no final response yet
    reliable_layer = TransactionLayer()
    _, reliable = start(reliable_layer, reliable=True)
    assert not reliable_layer.retire_client(reliable)
    invite_layer = TransactionLayer()
    invite = request("INVITE")
    invite_tx = invite_layer.start_client(invite, 0.0, reliable=False, peer=PEER)
    invite_layer.receive_response(response(invite, 486), 1.0)
    invite_layer.take_outputs()
    assert not invite_layer.retire_client(invite_tx)  # Completed, but it sends ACKs (17.1.1.2)
    assert not invite_tx.terminated and len(invite_layer) == 1
    assert layer.take_outputs() == [] and trying.state is State.TRYING
