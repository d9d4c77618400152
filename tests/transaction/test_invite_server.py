"""INVITE server transaction: RFC 3261 17.2.1 (Figure 7) with RFC 6026 7.1."""

from __future__ import annotations

import pytest

from centrex.sip.message import Request
from centrex.transaction.events import (
    RequestEvent,
    Send,
    Terminated,
    TimeoutEvent,
    TransportErrorEvent,
)
from centrex.transaction.invite_server import State
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.timers import Timer
from centrex.transaction.transaction import ServerTransaction
from tests.transaction.helpers import (
    PEER,
    request,
    response,
    run_clock,
    send_times,
    sent,
    sent_statuses,
)


def receive(
    layer: TransactionLayer, *, reliable: bool = False
) -> tuple[Request, ServerTransaction]:
    invite = request("INVITE")
    tx = layer.receive_request(invite, 0.0, reliable=reliable, peer=PEER)
    assert tx is not None
    layer.take_outputs()
    return invite, tx


def ack_for(invite: Request, *, to_tag: str = "to-1", branch: str | None = None) -> Request:
    """The ACK of a non-2xx (same branch, 17.1.1.3) or, with ``branch``, of a 2xx."""
    return request(
        "ACK",
        branch=branch or invite.branch,
        to_tag=to_tag,
        cseq=invite.cseq.number,
    )


def test_invite_server_sends_100_trying_and_passes_invite_to_tu() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    tx = layer.receive_request(invite, 0.0, reliable=False, peer=PEER)
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [Send, RequestEvent]
    trying = outputs[0].message  # type: ignore[union-attr]
    assert trying.status == 100 and trying.to_tag is None  # type: ignore[union-attr]
    assert outputs[0].peer == PEER  # type: ignore[union-attr]
    event = outputs[1]
    assert isinstance(event, RequestEvent)
    assert event.transaction is tx and event.request is invite and event.peer == PEER
    assert tx is not None and tx.state is State.PROCEEDING and tx.is_invite


def test_invite_server_without_automatic_100_leaves_it_to_tu() -> None:
    layer = TransactionLayer(send_trying=False)
    layer.receive_request(request("INVITE"), 0.0, reliable=False, peer=PEER)
    assert [type(o) for o in layer.take_outputs()] == [RequestEvent]


def test_invite_server_resends_last_provisional_on_retransmitted_invite() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    assert layer.receive_request(request("INVITE"), 0.4, reliable=False, peer=PEER) is None
    assert sent_statuses(layer.take_outputs()) == [100]
    ringing = response(invite, 180)
    assert layer.respond(tx, ringing, 1.0)
    assert sent(layer.take_outputs()) == [ringing]
    layer.receive_request(request("INVITE"), 1.5, reliable=False, peer=PEER)
    assert sent(layer.take_outputs()) == [ringing]
    assert tx.state is State.PROCEEDING
    assert len(layer) == 1


def test_invite_server_non_2xx_completes_and_retransmits_on_timer_g() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    busy = response(invite, 486)
    assert layer.respond(tx, busy, 0.0)
    assert sent(layer.take_outputs()) == [busy]
    assert tx.state is State.COMPLETED
    assert tx.armed_timers() == {Timer.G: 0.5, Timer.H: 32.0}
    log = run_clock(layer, 8.0)
    assert send_times(log) == [0.5, 1.5, 3.5, 7.5]
    assert all(out.message is busy for _, out in log if isinstance(out, Send))


def test_timer_g_caps_at_t2() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.respond(tx, response(invite, 486), 0.0)
    layer.take_outputs()
    log = run_clock(layer, 20.0)
    # 17.2.1: MIN(2*T1, T2), doubling, then every T2 = 4.
    assert send_times(log) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]


def test_timer_g_not_used_on_reliable_transport() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer, reliable=True)
    layer.respond(tx, response(invite, 486), 0.0)
    layer.take_outputs()
    assert tx.armed_timers() == {Timer.H: 32.0}


def test_invite_server_completed_resends_final_on_retransmitted_invite() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer, reliable=True)
    busy = response(invite, 486)
    layer.respond(tx, busy, 0.0)
    layer.take_outputs()
    layer.receive_request(request("INVITE"), 2.0, reliable=True, peer=PEER)
    assert sent(layer.take_outputs()) == [busy]
    assert tx.state is State.COMPLETED


def test_timer_h_reports_failure_when_ack_never_comes() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.respond(tx, response(invite, 486), 1.0)
    layer.take_outputs()
    log = run_clock(layer, 100.0)
    ends = [(at, type(out)) for at, out in log if not isinstance(out, Send)]
    assert ends == [(33.0, TimeoutEvent), (33.0, Terminated)]
    timeout = next(out for _, out in log if isinstance(out, TimeoutEvent))
    assert timeout.timer is Timer.H and timeout.transaction is tx
    assert len(layer) == 0


def test_ack_for_non_2xx_absorbed_in_confirmed_state() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.respond(tx, response(invite, 486), 0.0)
    layer.take_outputs()
    assert layer.receive_request(ack_for(invite), 0.7, reliable=False, peer=PEER) is None
    assert layer.take_outputs() == []  # not passed to the TU
    assert tx.state is State.CONFIRMED
    # Timer G and H stop: no more retransmissions of the final response.
    assert tx.armed_timers() == {Timer.I: 5.7}
    log = run_clock(layer, 100.0)
    assert [(at, type(out)) for at, out in log] == [(5.7, Terminated)]


def test_ack_retransmissions_absorbed_in_confirmed_state() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.respond(tx, response(invite, 486), 0.0)
    layer.receive_request(ack_for(invite), 0.7, reliable=False, peer=PEER)
    layer.take_outputs()
    layer.receive_request(ack_for(invite), 1.0, reliable=False, peer=PEER)
    layer.receive_request(request("INVITE"), 1.1, reliable=False, peer=PEER)
    assert layer.take_outputs() == []
    assert tx.state is State.CONFIRMED
    assert len(layer) == 1


def test_timer_i_is_zero_on_reliable_transport() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer, reliable=True)
    layer.respond(tx, response(invite, 486), 0.0)
    layer.take_outputs()
    layer.receive_request(ack_for(invite), 0.7, reliable=True, peer=PEER)
    assert [type(o) for o in layer.take_outputs()] == [Terminated]
    assert tx.state is State.TERMINATED


def test_invite_server_2xx_moves_to_accepted_and_starts_timer_l() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    ok = response(invite, 200)
    assert layer.respond(tx, ok, 1.0)
    assert sent(layer.take_outputs()) == [ok]
    assert tx.state is State.ACCEPTED
    assert tx.armed_timers() == {Timer.L: 33.0}  # no Timer G: the TU retransmits a 2xx


def test_invite_server_accepted_absorbs_invite_retransmission() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.respond(tx, response(invite, 200), 1.0)
    layer.take_outputs()
    assert layer.receive_request(request("INVITE"), 1.5, reliable=False, peer=PEER) is None
    assert layer.take_outputs() == []
    assert len(layer) == 1


def test_invite_server_accepted_sends_every_2xx_from_tu() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    first = response(invite, 200, to_tag="a")
    layer.respond(tx, first, 1.0)
    layer.take_outputs()
    assert layer.respond(tx, first, 1.5)  # the TU's retransmission (13.3.1.4)
    other_fork = response(invite, 200, to_tag="b")
    assert layer.respond(tx, other_fork, 2.0)
    assert sent(layer.take_outputs()) == [first, other_fork]
    assert not layer.respond(tx, response(invite, 486), 2.5)
    assert layer.take_outputs() == []
    assert tx.state is State.ACCEPTED


def test_2xx_ack_passed_to_tu_not_matched() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.respond(tx, response(invite, 200), 1.0)
    layer.take_outputs()
    # 17 / 13.2.2.4: the ACK of a 2xx has a branch of its own and is no
    # part of the INVITE transaction; it goes to the TU, making no transaction.
    ack = ack_for(invite, branch="z9hG4bK-ack-of-2xx")
    assert layer.receive_request(ack, 1.2, reliable=False, peer=PEER) is None
    outputs = layer.take_outputs()
    assert len(outputs) == 1
    event = outputs[0]
    assert isinstance(event, RequestEvent)
    assert event.transaction is None and event.request is ack and event.peer == PEER
    assert len(layer) == 1
    assert tx.state is State.ACCEPTED


def test_2xx_ack_passed_to_tu_when_no_transaction_exists_at_all() -> None:
    layer = TransactionLayer()
    ack = request("ACK", branch="z9hG4bK-ack", to_tag="t")
    layer.receive_request(ack, 0.0, reliable=True, peer=PEER)
    outputs = layer.take_outputs()
    assert len(outputs) == 1 and isinstance(outputs[0], RequestEvent)
    assert outputs[0].transaction is None
    assert len(layer) == 0


def test_ack_matching_accepted_transaction_passed_to_tu() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.respond(tx, response(invite, 200), 1.0)
    layer.take_outputs()
    ack = ack_for(invite)  # same branch: RFC 6026 7.1 passes it up, not absorbed
    other_peer = ("192.0.2.99", 5062)
    layer.receive_request(ack, 1.2, reliable=False, peer=other_peer)
    outputs = layer.take_outputs()
    assert len(outputs) == 1 and isinstance(outputs[0], RequestEvent)
    assert outputs[0].transaction is tx and outputs[0].request is ack
    assert outputs[0].peer == other_peer
    assert tx.state is State.ACCEPTED


def test_ack_before_any_final_is_ignored() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.receive_request(ack_for(invite), 0.5, reliable=False, peer=PEER)
    assert layer.take_outputs() == []
    assert tx.state is State.PROCEEDING
    assert layer.ignored_inputs == 1


def test_timer_l_terminates_accepted_invite_server() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer, reliable=True)
    layer.respond(tx, response(invite, 200), 1.0)
    layer.take_outputs()
    log = run_clock(layer, 100.0)
    assert [(at, type(out)) for at, out in log] == [(33.0, Terminated)]
    assert len(layer) == 0
    # A retransmission after Timer L is a new request again.
    assert layer.receive_request(request("INVITE"), 40.0, reliable=True, peer=PEER) is not None


def test_invite_server_transport_error_in_proceeding_terminates() -> None:
    layer = TransactionLayer()
    _, tx = receive(layer)
    layer.transport_error(tx, 0.1)
    assert [type(o) for o in layer.take_outputs()] == [TransportErrorEvent, Terminated]
    assert len(layer) == 0


def test_invite_server_transport_error_in_completed_terminates() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.respond(tx, response(invite, 500), 0.0)
    layer.take_outputs()
    layer.transport_error(tx, 0.1)
    assert [type(o) for o in layer.take_outputs()] == [TransportErrorEvent, Terminated]
    assert layer.next_deadline() is None


def test_invite_server_transport_error_in_accepted_informs_tu_and_waits_for_timer_l() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    layer.respond(tx, response(invite, 200), 0.0)
    layer.take_outputs()
    layer.transport_error(tx, 0.1)
    assert [type(o) for o in layer.take_outputs()] == [TransportErrorEvent]
    assert tx.state is State.ACCEPTED


def test_respond_on_terminated_server_transaction_returns_false() -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer, reliable=True)
    layer.respond(tx, response(invite, 200), 0.0)
    run_clock(layer, 100.0)
    assert not layer.respond(tx, response(invite, 200), 101.0)
    assert layer.take_outputs() == []


@pytest.mark.parametrize("status", [99, 700, 0])
def test_respond_rejects_status_outside_100_699(status: int) -> None:
    layer = TransactionLayer()
    invite, tx = receive(layer)
    bad = response(invite, 200)
    bad.status = status
    with pytest.raises(ValueError, match="100-699"):
        layer.respond(tx, bad, 0.1)
