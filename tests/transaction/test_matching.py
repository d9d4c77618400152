"""Transaction matching: RFC 3261 17.1.3, 17.2.3 (with the RFC 2543 fallback) and 9.2."""

from __future__ import annotations

from centrex.sip.build import make_cancel
from centrex.sip.message import Request
from centrex.transaction import invite_server, non_invite_server
from centrex.transaction.events import RequestEvent, ResponseEvent
from centrex.transaction.layer import TransactionLayer
from tests.transaction.helpers import (
    PEER,
    of_type,
    request,
    response,
    sent,
    sent_statuses,
    state_of,
)

# -- client side (17.1.3) ------------------------------------------------------------


def test_response_matched_by_top_via_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS", branch="z9hG4bK-a")
    tx = layer.start_client(options, 0.0, reliable=False, peer=PEER)
    other = layer.start_client(
        request("OPTIONS", branch="z9hG4bK-b"), 0.0, reliable=False, peer=PEER
    )
    layer.take_outputs()
    assert layer.find_client(response(options, 200)) is tx
    assert layer.receive_response(response(options, 200), 0.1) is tx
    events = of_type(layer.take_outputs(), ResponseEvent)
    assert [e.transaction for e in events] == [tx]
    assert other.state is not tx.state


def test_response_with_same_branch_but_other_cseq_method_does_not_match() -> None:
    layer = TransactionLayer()
    invite = request("INVITE", branch="z9hG4bK-a")
    layer.start_client(invite, 0.0, reliable=False, peer=PEER)
    layer.take_outputs()
    stray = response(request("INFO", branch="z9hG4bK-a"), 200)
    assert layer.receive_response(stray, 0.1) is None
    outputs = layer.take_outputs()
    assert len(outputs) == 1
    assert isinstance(outputs[0], ResponseEvent) and outputs[0].transaction is None


def test_unmatched_response_goes_to_tu_without_transaction() -> None:
    layer = TransactionLayer()
    stray = response(request("INVITE", branch="z9hG4bK-unknown"), 200)
    assert layer.receive_response(stray, 0.0) is None
    outputs = layer.take_outputs()
    assert len(outputs) == 1
    assert isinstance(outputs[0], ResponseEvent)
    assert outputs[0].transaction is None and outputs[0].response is stray


def test_response_with_malformed_cseq_is_dropped() -> None:
    layer = TransactionLayer()
    broken = response(request("OPTIONS"), 200)
    broken.set("CSeq", "not a cseq")
    assert layer.receive_response(broken, 0.0) is None
    assert layer.take_outputs() == []


# -- server side, RFC 3261 branches (17.2.3) --------------------------------------------


def test_request_with_same_branch_from_other_sent_by_is_a_new_transaction() -> None:
    layer = TransactionLayer()
    first = layer.receive_request(
        request("OPTIONS", sent_by="a.example.com"), 0.0, reliable=False, peer=PEER
    )
    second = layer.receive_request(
        request("OPTIONS", sent_by="b.example.com"), 0.0, reliable=False, peer=PEER
    )
    assert first is not None and second is not None and first is not second
    assert len(layer) == 2


def test_sent_by_host_matches_case_insensitively() -> None:
    layer = TransactionLayer()
    layer.receive_request(
        request("OPTIONS", sent_by="Client.Example.COM"), 0.0, reliable=False, peer=PEER
    )
    again = request("OPTIONS", sent_by="client.example.com")
    assert layer.receive_request(again, 0.1, reliable=False, peer=PEER) is None
    assert len(layer) == 1


def test_request_with_same_branch_other_method_is_a_new_transaction() -> None:
    layer = TransactionLayer()
    invite_tx = layer.receive_request(request("INVITE"), 0.0, reliable=False, peer=PEER)
    info_tx = layer.receive_request(request("INFO", cseq=2), 0.0, reliable=False, peer=PEER)
    assert invite_tx is not None and info_tx is not None
    assert invite_tx.machine is invite_server.MACHINE
    assert info_tx.machine is non_invite_server.MACHINE


def test_request_without_via_is_dropped() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", branch=None)
    req.remove("Via")
    assert layer.receive_request(req, 0.0, reliable=False, peer=PEER) is None
    assert layer.take_outputs() == []
    assert len(layer) == 0


# -- server side, RFC 2543 fallback (17.2.3) -------------------------------------------


def old_invite(**overrides: object) -> Request:
    fields: dict[str, object] = {"branch": None, "sent_by": "old.example.com:5060"}
    fields.update(overrides)
    return request("INVITE", **fields)  # type: ignore[arg-type]


def test_rfc2543_fallback_matching() -> None:
    layer = TransactionLayer()
    tx = layer.receive_request(old_invite(), 0.0, reliable=False, peer=PEER)
    assert tx is not None and tx.rfc2543
    layer.take_outputs()
    # The same INVITE again is a retransmission: the 100 is resent.
    assert layer.receive_request(old_invite(), 0.5, reliable=False, peer=PEER) is None
    assert sent_statuses(layer.take_outputs()) == [100]
    # Any differing field makes another transaction.
    for changed in (
        {"uri": "sip:carol@example.com"},
        {"from_tag": "other"},
        {"call_id": "other-call"},
        {"cseq": 2},
        {"sent_by": "old.example.com:5070"},
        {"to_tag": "some-tag"},
        {"branch": "1234-not-a-cookie"},
    ):
        assert layer.receive_request(old_invite(**changed), 1.0, reliable=False, peer=PEER), changed
    assert len(layer) == 8


def test_rfc2543_ack_matched_by_to_tag_of_response_sent() -> None:
    layer = TransactionLayer()
    tx = layer.receive_request(old_invite(), 0.0, reliable=False, peer=PEER)
    assert tx is not None
    layer.respond(tx, response(tx.request, 486, to_tag="server-tag"), 0.1)
    layer.take_outputs()
    wrong = request("ACK", branch=None, sent_by="old.example.com:5060", to_tag="other-tag")
    layer.receive_request(wrong, 0.2, reliable=False, peer=PEER)
    assert [type(o) for o in layer.take_outputs()] == [RequestEvent]  # no match: to the TU
    assert tx.state is invite_server.State.COMPLETED
    right = request("ACK", branch=None, sent_by="old.example.com:5060", to_tag="server-tag")
    layer.receive_request(right, 0.3, reliable=False, peer=PEER)
    assert layer.take_outputs() == []
    assert state_of(tx) is invite_server.State.CONFIRMED


def test_rfc2543_non_invite_retransmission_resends_final() -> None:
    layer = TransactionLayer()
    bye = request("BYE", branch=None, to_tag="dialog-tag", cseq=5)
    tx = layer.receive_request(bye, 0.0, reliable=False, peer=PEER)
    assert tx is not None
    ok = response(bye, 200)
    layer.respond(tx, ok, 0.1)
    layer.take_outputs()
    again = request("BYE", branch=None, to_tag="dialog-tag", cseq=5)
    assert layer.receive_request(again, 0.5, reliable=False, peer=PEER) is None
    assert sent(layer.take_outputs()) == [ok]


def test_rfc2543_transaction_leaves_tables_when_terminated() -> None:
    layer = TransactionLayer()
    tx = layer.receive_request(request("OPTIONS", branch=None), 0.0, reliable=True, peer=PEER)
    assert tx is not None and len(layer) == 1
    layer.respond(tx, response(tx.request, 200), 0.1)  # Timer J is 0 on TCP
    assert len(layer) == 0
    assert layer.find_server(request("OPTIONS", branch=None)) is None


# -- CANCEL (9.2) -------------------------------------------------------------------------


def test_cancel_finds_invite_server_transaction() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    invite_tx = layer.receive_request(invite, 0.0, reliable=False, peer=PEER)
    cancel = make_cancel(invite)
    cancel_tx = layer.receive_request(cancel, 1.0, reliable=False, peer=PEER)
    # The CANCEL is a non-INVITE server transaction of its own...
    assert cancel_tx is not None and cancel_tx is not invite_tx
    assert cancel_tx.machine is non_invite_server.MACHINE
    assert len(layer) == 2
    # ...and it finds the INVITE it targets.
    assert layer.find_invite_for_cancel(cancel) is invite_tx


def test_cancel_finds_rfc2543_invite_server_transaction() -> None:
    layer = TransactionLayer()
    invite = old_invite()
    invite_tx = layer.receive_request(invite, 0.0, reliable=False, peer=PEER)
    cancel = make_cancel(invite)
    assert layer.find_invite_for_cancel(cancel) is invite_tx


def test_cancel_for_unknown_invite_finds_nothing() -> None:
    layer = TransactionLayer()
    layer.receive_request(request("INVITE", branch="z9hG4bK-1"), 0.0, reliable=False, peer=PEER)
    cancel = make_cancel(request("INVITE", branch="z9hG4bK-2"))
    assert layer.find_invite_for_cancel(cancel) is None
    other_host = make_cancel(request("INVITE", branch="z9hG4bK-1", sent_by="elsewhere"))
    assert layer.find_invite_for_cancel(other_host) is None


def test_cancel_retransmission_absorbed_by_cancel_transaction() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive_request(invite, 0.0, reliable=False, peer=PEER)
    cancel_tx = layer.receive_request(make_cancel(invite), 1.0, reliable=False, peer=PEER)
    assert cancel_tx is not None
    ok = response(cancel_tx.request, 200)
    layer.respond(cancel_tx, ok, 1.1)
    layer.take_outputs()
    assert layer.receive_request(make_cancel(invite), 1.5, reliable=False, peer=PEER) is None
    assert sent(layer.take_outputs()) == [ok]
