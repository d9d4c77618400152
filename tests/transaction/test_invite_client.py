"""INVITE client transaction: RFC 3261 17.1.1 (Figure 5) with RFC 6026 7.2."""

from __future__ import annotations

import pytest

from centrex.sip.message import Request
from centrex.transaction.events import (
    ResponseEvent,
    Send,
    Terminated,
    TimeoutEvent,
    TimerCEvent,
    TransportErrorEvent,
)
from centrex.transaction.invite_client import State
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.timers import Timer, TimerConfig
from centrex.transaction.transaction import ClientTransaction
from tests.transaction.helpers import (
    PEER,
    of_type,
    request,
    response,
    run_clock,
    send_times,
    sent,
    state_of,
)


def start(
    layer: TransactionLayer, *, reliable: bool = False, timer_c: bool = False
) -> tuple[Request, ClientTransaction]:
    invite = request("INVITE")
    tx = layer.start_client(invite, 0.0, reliable=reliable, peer=PEER, timer_c=timer_c)
    return invite, tx


def test_invite_client_sends_request_to_peer_on_start() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    outputs = layer.take_outputs()
    assert len(outputs) == 1
    send = outputs[0]
    assert isinstance(send, Send)
    assert send.message is invite and send.peer == PEER and send.transaction is tx
    assert tx.state is State.CALLING
    assert len(layer) == 1


def test_invite_client_retransmits_at_t1_doubling_until_timer_b() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    layer.take_outputs()
    log = run_clock(layer, 100.0)
    # Timer A: 0.5, 1, 2, 4, 8, 16 (no T2 cap); Timer B at 64*T1 = 32.
    assert send_times(log) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(out.message is invite for _, out in log if isinstance(out, Send))
    timeouts = [(at, out) for at, out in log if isinstance(out, TimeoutEvent)]
    assert [(at, out.timer) for at, out in timeouts] == [(32.0, Timer.B)]
    assert isinstance(log[-1][1], Terminated)
    assert tx.state is State.TERMINATED
    assert len(layer) == 0


def test_timer_a_not_used_on_reliable_transport() -> None:
    layer = TransactionLayer()
    _, tx = start(layer, reliable=True)
    layer.take_outputs()
    assert Timer.A not in tx.armed_timers()
    log = run_clock(layer, 100.0)
    assert send_times(log) == []
    assert [(at, type(out)) for at, out in log] == [(32.0, TimeoutEvent), (32.0, Terminated)]


def test_timer_b_follows_configured_t1() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=4.0))
    _, tx = start(layer)
    assert tx.armed_timers()[Timer.B] == pytest.approx(6.4)


def test_invite_client_provisional_moves_to_proceeding_and_stops_retransmissions() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    layer.take_outputs()
    ringing = response(invite, 180)
    assert layer.receive_response(ringing, 0.2) is tx
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [ResponseEvent]
    assert outputs[0].transaction is tx and outputs[0].response is ringing  # type: ignore[union-attr]
    assert tx.state is State.PROCEEDING
    assert tx.armed_timers() == {}  # neither A nor B in Proceeding (Figure 5)
    assert run_clock(layer, 1000.0) == []
    assert len(layer) == 1


def test_invite_client_proceeding_passes_every_provisional_to_tu() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    layer.receive_response(response(invite, 100), 0.1)
    layer.receive_response(response(invite, 180), 0.2)
    layer.receive_response(response(invite, 183), 0.3)
    events = of_type(layer.take_outputs(), ResponseEvent)
    assert [e.response.status for e in events] == [100, 180, 183]
    assert tx.state is State.PROCEEDING


@pytest.mark.parametrize("first", [None, 180])
def test_invite_client_non_2xx_final_sends_ack_and_passes_response(first: int | None) -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    if first is not None:
        layer.receive_response(response(invite, first), 0.1)
    layer.take_outputs()
    busy = response(invite, 486, to_tag="callee-tag")
    layer.receive_response(busy, 0.2)
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [Send, ResponseEvent]
    ack = outputs[0].message  # type: ignore[union-attr]
    assert isinstance(ack, Request) and ack.method == "ACK"
    # 17.1.1.3: same Request-URI, Call-ID, From, CSeq number and top Via; To of the response.
    assert ack.uri == invite.uri and ack.call_id == invite.call_id
    assert ack.branch == invite.branch and ack.cseq.number == invite.cseq.number
    assert ack.cseq.method == "ACK" and ack.to_tag == "callee-tag"
    assert outputs[0].peer == PEER  # type: ignore[union-attr]
    assert tx.ack is ack
    assert tx.state is State.COMPLETED
    assert set(tx.armed_timers()) == {Timer.D}


def test_invite_client_completed_resends_same_ack_and_absorbs_retransmitted_final() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    layer.take_outputs()
    layer.receive_response(response(invite, 486), 0.2)
    first_ack = sent(layer.take_outputs())[0]
    layer.receive_response(response(invite, 486), 1.0)
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [Send]
    assert outputs[0].message is first_ack  # type: ignore[union-attr]
    assert tx.state is State.COMPLETED


def test_timer_d_terminates_completed_invite_client_after_32s() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    layer.receive_response(response(invite, 404), 1.0)
    layer.take_outputs()
    assert tx.armed_timers() == {Timer.D: 33.0}
    log = run_clock(layer, 100.0)
    assert [(at, type(out)) for at, out in log] == [(33.0, Terminated)]
    assert len(layer) == 0


def test_timer_d_is_zero_on_reliable_transport() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer, reliable=True)
    layer.take_outputs()
    layer.receive_response(response(invite, 603), 1.0)
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [Send, ResponseEvent, Terminated]
    assert tx.state is State.TERMINATED
    assert len(layer) == 0


@pytest.mark.parametrize("first", [None, 180])
def test_invite_client_2xx_moves_to_accepted_without_ack(first: int | None) -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    if first is not None:
        layer.receive_response(response(invite, first), 0.1)
    layer.take_outputs()
    ok = response(invite, 200)
    layer.receive_response(ok, 0.5)
    outputs = layer.take_outputs()
    # RFC 6026 7.2: passed up, no ACK from the transaction (the TU ACKs a 2xx).
    assert [type(o) for o in outputs] == [ResponseEvent]
    assert tx.state is State.ACCEPTED
    assert tx.armed_timers() == {Timer.M: 32.5}


def test_invite_client_accepted_passes_2xx_retransmissions_and_forks_to_tu() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    layer.receive_response(response(invite, 200, to_tag="a"), 0.5)
    layer.take_outputs()
    layer.receive_response(response(invite, 200, to_tag="a"), 1.0)
    layer.receive_response(response(invite, 200, to_tag="b"), 1.5)
    events = layer.take_outputs()
    assert [type(o) for o in events] == [ResponseEvent, ResponseEvent]
    assert [e.response.to_tag for e in of_type(events, ResponseEvent)] == ["a", "b"]
    assert tx.state is State.ACCEPTED


def test_invite_client_accepted_ignores_non_2xx_final() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    layer.receive_response(response(invite, 200), 0.5)
    layer.take_outputs()
    layer.receive_response(response(invite, 486), 1.0)
    assert layer.take_outputs() == []
    assert tx.state is State.ACCEPTED
    assert layer.ignored_inputs == 1


def test_timer_m_terminates_accepted_invite_client() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer, reliable=True)
    layer.receive_response(response(invite, 200), 2.0)
    layer.take_outputs()
    log = run_clock(layer, 100.0)
    assert [(at, type(out)) for at, out in log] == [(34.0, Terminated)]
    assert tx.state is State.TERMINATED


def test_invite_client_transport_error_in_calling_informs_tu_and_terminates() -> None:
    layer = TransactionLayer()
    _, tx = start(layer)
    layer.take_outputs()
    layer.transport_error(tx, 0.1)
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [TransportErrorEvent, Terminated]
    assert len(layer) == 0
    assert layer.next_deadline() is None


def test_invite_client_response_after_termination_goes_to_tu_without_transaction() -> None:
    layer = TransactionLayer()
    invite, _ = start(layer, reliable=True)
    layer.receive_response(response(invite, 486), 1.0)
    layer.take_outputs()
    late = response(invite, 486)
    assert layer.receive_response(late, 2.0) is None
    outputs = layer.take_outputs()
    assert len(outputs) == 1
    assert isinstance(outputs[0], ResponseEvent) and outputs[0].transaction is None


# -- Timer C (16.6 step 11, 16.7 step 2, 16.8) ---------------------------------------


def test_timer_c_runs_only_when_asked() -> None:
    layer = TransactionLayer()
    _, plain = start(layer)
    assert Timer.C not in plain.armed_timers()
    layer2 = TransactionLayer()
    _, proxied = start(layer2, timer_c=True)
    assert proxied.armed_timers()[Timer.C] == 180.0


def test_timer_c_reset_by_provisional_other_than_100() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer, timer_c=True)
    layer.receive_response(response(invite, 100), 10.0)
    assert tx.armed_timers()[Timer.C] == 180.0
    layer.receive_response(response(invite, 180), 20.0)
    assert tx.armed_timers()[Timer.C] == 200.0


def test_timer_c_expiry_reported_to_tu_transaction_lives_on() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer, timer_c=True)
    layer.receive_response(response(invite, 180), 1.0)
    layer.take_outputs()
    log = run_clock(layer, 500.0)
    assert [(at, type(out)) for at, out in log] == [(181.0, TimerCEvent)]
    assert tx.state is State.PROCEEDING


def test_timer_c_stopped_by_final_response() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer, timer_c=True, reliable=True)
    layer.receive_response(response(invite, 180), 1.0)
    layer.receive_response(response(invite, 200), 2.0)
    assert set(tx.armed_timers()) == {Timer.M}


# -- CANCEL (9.1) ---------------------------------------------------------------------


def test_start_cancel_sends_cancel_with_invite_branch_to_same_peer() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    layer.receive_response(response(invite, 180), 0.2)
    layer.take_outputs()
    cancel_tx = layer.start_cancel(tx, 1.0)
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [Send]
    cancel = outputs[0].message  # type: ignore[union-attr]
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.branch == invite.branch and cancel.cseq.number == invite.cseq.number
    assert cancel.cseq.method == "CANCEL" and cancel.uri == invite.uri
    assert outputs[0].peer == PEER  # type: ignore[union-attr]
    assert cancel_tx.cancels is tx and tx.cancel is cancel_tx
    assert not cancel_tx.is_invite
    assert len(layer) == 2
    # A second request returns the running CANCEL transaction.
    assert layer.start_cancel(tx, 1.1) is cancel_tx


def test_cancel_responses_match_cancel_transaction_not_invite() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    layer.receive_response(response(invite, 180), 0.2)
    cancel_tx = layer.start_cancel(tx, 1.0)
    layer.take_outputs()
    ok = response(cancel_tx.request, 200)
    assert layer.receive_response(ok, 1.1) is cancel_tx
    assert tx.state is State.PROCEEDING
    terminated = response(invite, 487)
    assert layer.receive_response(terminated, 1.2) is tx
    assert state_of(tx) is State.COMPLETED


@pytest.mark.parametrize("final", [200, 486])
def test_start_cancel_refused_before_provisional_and_after_final(final: int) -> None:
    layer = TransactionLayer()
    invite, tx = start(layer)
    with pytest.raises(ValueError, match=r"9\.1"):
        layer.start_cancel(tx, 0.1)
    layer.receive_response(response(invite, final), 0.2)
    with pytest.raises(ValueError, match=r"9\.1"):
        layer.start_cancel(tx, 0.3)
    assert layer.client_count == 1


def test_cancelled_invite_without_final_given_up_after_64_t1() -> None:
    layer = TransactionLayer()
    invite, tx = start(layer, timer_c=True)
    layer.receive_response(response(invite, 180), 0.2)
    cancel_tx = layer.start_cancel(tx, 10.0)
    layer.receive_response(response(cancel_tx.request, 200), 10.1)
    layer.take_outputs()
    assert tx.armed_timers() == {Timer.B: 42.0}  # Timer C stopped, 9.1 wait armed
    log = run_clock(layer, 100.0)
    timeouts = [(at, out.transaction) for at, out in log if isinstance(out, TimeoutEvent)]
    assert timeouts == [(42.0, tx)]
    assert tx.state is State.TERMINATED
