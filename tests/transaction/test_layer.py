"""The layer as a whole: one timer heap, tables, entry points, a fake clock."""

from __future__ import annotations

import gc

import pytest

from centrex.transaction.events import ResponseEvent, Send, Terminated
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.timer_queue import TimerQueue
from centrex.transaction.timers import Timer, TimerConfig
from centrex.transaction.transaction import Transaction
from tests.transaction.helpers import PEER, request, response, run_clock


def _timer_queues() -> int:
    gc.collect()
    return sum(isinstance(obj, TimerQueue) for obj in gc.get_objects())


def test_10000_transactions_one_heap() -> None:
    before = _timer_queues()
    layer = TransactionLayer()
    transactions: list[Transaction] = []
    for n in range(5000):
        now = n * 0.001
        client = layer.start_client(
            request("OPTIONS", branch=f"z9hG4bK-c{n}"), now, reliable=n % 2 == 0, peer=PEER
        )
        server = layer.receive_request(
            request("INVITE", branch=f"z9hG4bK-s{n}"), now, reliable=n % 3 == 0, peer=PEER
        )
        assert server is not None
        layer.respond(server, response(server.request, 486), now)
        transactions += [client, server]
    layer.take_outputs()
    assert len(layer) == 10_000
    # One timer structure for all of them, not one per transaction or per timer.
    assert _timer_queues() == before + 1
    armed = sum(len(tx.armed_timers()) for tx in transactions)
    assert len(layer.timer_queue) == armed
    deadlines = [d for tx in transactions if (d := tx.next_deadline()) is not None]
    assert layer.next_deadline() == min(deadlines)
    # Advancing the clock keeps the global peek equal to the per-transaction minimum.
    layer.handle_timer(3.0)
    layer.take_outputs()
    live = [d for tx in transactions if (d := tx.next_deadline()) is not None]
    assert layer.next_deadline() == min(live)
    layer.handle_timer(1000.0)
    assert len(layer) == 0 and len(layer.timer_queue) == 0
    assert layer.next_deadline() is None


def test_heap_does_not_keep_growing_with_disarmed_timers() -> None:
    layer = TransactionLayer()
    for n in range(3000):
        req = request("OPTIONS", branch=f"z9hG4bK-{n}")
        layer.start_client(req, 0.0, reliable=False, peer=PEER)
        # The final response disarms E and F and arms K: nothing of E and F stays.
        layer.receive_response(response(req, 200), 0.1)
    layer.take_outputs()
    queue = layer.timer_queue
    assert len(queue) == 3000
    assert queue.entries == len(queue)


def test_next_deadline_is_none_when_no_transaction_is_alive() -> None:
    layer = TransactionLayer()
    assert layer.next_deadline() is None
    layer.handle_timer(10.0)
    assert layer.take_outputs() == []
    assert len(layer) == 0


def test_handle_timer_fires_due_timers_in_deadline_order_across_transactions() -> None:
    layer = TransactionLayer()
    late = layer.start_client(
        request("OPTIONS", branch="z9hG4bK-late"), 0.3, reliable=False, peer=PEER
    )
    early = layer.start_client(
        request("OPTIONS", branch="z9hG4bK-early"), 0.1, reliable=False, peer=PEER
    )
    layer.take_outputs()
    layer.handle_timer(1.0)
    sends = [out.transaction for out in layer.take_outputs() if isinstance(out, Send)]
    assert sends == [early, late]


def test_handle_timer_called_late_fires_each_due_timer_once() -> None:
    layer = TransactionLayer()
    tx = layer.start_client(request("OPTIONS"), 0.0, reliable=False, peer=PEER)
    layer.take_outputs()
    layer.handle_timer(100.0)  # E (0.5) and F (32) are both overdue
    outputs = layer.take_outputs()
    assert [type(o).__name__ for o in outputs] == ["Send", "TimeoutEvent", "Terminated"]
    assert tx.terminated


def test_transaction_tells_its_deadline_and_handles_its_own_timers() -> None:
    layer = TransactionLayer()
    tx = layer.start_client(request("OPTIONS"), 0.0, reliable=False, peer=PEER)
    other = layer.start_client(
        request("OPTIONS", branch="z9hG4bK-2"), 0.0, reliable=False, peer=PEER
    )
    layer.take_outputs()
    assert tx.next_deadline() == 0.5
    tx.handle_timer(0.4)
    assert layer.take_outputs() == []
    tx.handle_timer(0.5)
    assert [o.transaction for o in layer.take_outputs() if isinstance(o, Send)] == [tx]
    assert tx.armed_timers()[Timer.E] == 1.5
    # The layer's heap agrees: only `other` is due at 0.5 now.
    layer.handle_timer(0.5)
    assert [o.transaction for o in layer.take_outputs() if isinstance(o, Send)] == [other]


def test_terminated_transactions_are_removed_from_tables() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS")
    tx = layer.start_client(req, 0.0, reliable=True, peer=PEER)
    assert layer.client_count == 1
    layer.receive_response(response(req, 200), 0.1)
    outputs = layer.take_outputs()
    assert isinstance(outputs[-1], Terminated) and outputs[-1].transaction is tx
    assert layer.client_count == 0 and len(layer) == 0
    assert layer.find_client(response(req, 200)) is None
    # The same branch may start a new transaction now.
    assert layer.start_client(req, 1.0, reliable=True, peer=PEER) is not tx


def test_server_and_client_counts() -> None:
    layer = TransactionLayer()
    layer.start_client(request("OPTIONS"), 0.0, reliable=False, peer=PEER)
    layer.receive_request(request("OPTIONS"), 0.0, reliable=False, peer=PEER)
    layer.receive_request(request("OPTIONS", branch=None), 0.0, reliable=False, peer=PEER)
    assert (layer.client_count, layer.server_count, len(layer)) == (1, 2, 3)


def test_start_client_rejects_ack() -> None:
    layer = TransactionLayer()
    with pytest.raises(ValueError, match="ACK"):
        layer.start_client(request("ACK", to_tag="t"), 0.0, reliable=False, peer=PEER)
    assert len(layer) == 0 and layer.take_outputs() == []


def test_start_client_needs_a_via_branch() -> None:
    layer = TransactionLayer()
    with pytest.raises(ValueError, match="branch"):
        layer.start_client(request("OPTIONS", branch=None), 0.0, reliable=False, peer=PEER)


def test_start_client_rejects_a_second_live_transaction_with_same_key() -> None:
    layer = TransactionLayer()
    layer.start_client(request("OPTIONS"), 0.0, reliable=False, peer=PEER)
    with pytest.raises(ValueError, match="alive"):
        layer.start_client(request("OPTIONS"), 0.1, reliable=False, peer=PEER)


def test_outputs_are_drained_once_in_order() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS")
    layer.start_client(req, 0.0, reliable=True, peer=PEER)
    layer.receive_response(response(req, 200), 0.1)
    outputs = layer.take_outputs()
    assert [type(o) for o in outputs] == [Send, ResponseEvent, Terminated]
    assert layer.take_outputs() == []


def test_layer_uses_its_timer_config() -> None:
    config = TimerConfig(t1=0.1, t2=0.4, t4=1.0, timer_f=2.0)
    layer = TransactionLayer(config)
    assert layer.timers is config
    req = request("OPTIONS")
    tx = layer.start_client(req, 0.0, reliable=False, peer=PEER)
    assert tx.armed_timers() == {Timer.E: 0.1, Timer.F: 2.0}
    layer.receive_response(response(req, 200), 0.5)
    assert tx.armed_timers() == {Timer.K: 1.5}
    layer.take_outputs()
    log = run_clock(layer, 10.0)
    assert [(at, type(out)) for at, out in log] == [(1.5, Terminated)]
