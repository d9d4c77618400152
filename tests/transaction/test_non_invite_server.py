"""Non-INVITE server transaction: RFC 3261 17.2.2 (Figure 8)."""

from __future__ import annotations

import pytest

from centrex.sip.message import Request
from centrex.transaction.events import RequestEvent, Terminated, TransportErrorEvent
from centrex.transaction.layer import RETIRED_WINDOW_S, TransactionLayer
from centrex.transaction.non_invite_server import State
from centrex.transaction.timers import Timer
from centrex.transaction.transaction import ServerTransaction
from tests.transaction.helpers import PEER, request, response, run_clock, sent


def receive(
    layer: TransactionLayer, method: str = "REGISTER", *, reliable: bool = False
) -> tuple[Request, ServerTransaction]:
    req = request(method)
    tx = layer.receive_request(req, 0.0, reliable=reliable, peer=PEER)
    assert tx is not None
    layer.take_outputs()
    return req, tx


def test_non_invite_server_passes_request_to_tu_without_100() -> None:
    layer = TransactionLayer()
    register = request("REGISTER")
    tx = layer.receive_request(register, 0.0, reliable=False, peer=PEER)
    outputs = layer.take_outputs()
    assert len(outputs) == 1
    event = outputs[0]
    assert isinstance(event, RequestEvent)
    assert event.transaction is tx and event.request is register and event.peer == PEER
    assert tx is not None and tx.state is State.TRYING and not tx.is_invite
    assert tx.armed_timers() == {}


def test_non_invite_server_trying_discards_retransmitted_request() -> None:
    layer = TransactionLayer()
    _, tx = receive(layer)
    assert layer.receive_request(request("REGISTER"), 0.5, reliable=False, peer=PEER) is None
    assert layer.take_outputs() == []
    assert tx.state is State.TRYING
    assert len(layer) == 1


def test_non_invite_server_provisional_moves_to_proceeding() -> None:
    layer = TransactionLayer()
    req, tx = receive(layer)
    trying = response(req, 100)
    assert layer.respond(tx, trying, 0.1)
    assert sent(layer.take_outputs()) == [trying]
    assert tx.state is State.PROCEEDING
    progress = response(req, 183)
    assert layer.respond(tx, progress, 0.2)
    assert sent(layer.take_outputs()) == [progress]


def test_non_invite_server_proceeding_resends_provisional_on_retransmitted_request() -> None:
    layer = TransactionLayer()
    req, tx = receive(layer)
    trying = response(req, 100)
    layer.respond(tx, trying, 0.1)
    layer.take_outputs()
    layer.receive_request(request("REGISTER"), 0.5, reliable=False, peer=PEER)
    assert sent(layer.take_outputs()) == [trying]


@pytest.mark.parametrize("provisional", [False, True])
def test_non_invite_server_final_completes_and_starts_timer_j(provisional: bool) -> None:
    layer = TransactionLayer()
    req, tx = receive(layer)
    if provisional:
        layer.respond(tx, response(req, 100), 0.1)
        layer.take_outputs()
    ok = response(req, 200)
    assert layer.respond(tx, ok, 1.0)
    assert sent(layer.take_outputs()) == [ok]
    assert tx.state is State.COMPLETED
    assert tx.armed_timers() == {Timer.J: 33.0}  # 64*T1 on UDP


def test_non_invite_server_resends_final_on_retransmitted_request() -> None:
    layer = TransactionLayer()
    req, tx = receive(layer)
    unauthorized = response(req, 401)
    layer.respond(tx, unauthorized, 0.1)
    layer.take_outputs()
    for at in (0.6, 1.6, 3.6):
        layer.receive_request(request("REGISTER"), at, reliable=False, peer=PEER)
        assert sent(layer.take_outputs()) == [unauthorized]
    assert tx.state is State.COMPLETED


def test_non_invite_server_discards_tu_responses_after_final() -> None:
    layer = TransactionLayer()
    req, tx = receive(layer)
    layer.respond(tx, response(req, 200), 0.1)
    layer.take_outputs()
    assert not layer.respond(tx, response(req, 500), 0.2)
    assert not layer.respond(tx, response(req, 100), 0.3)
    assert layer.take_outputs() == []


def test_timer_j_terminates_completed_non_invite_server() -> None:
    layer = TransactionLayer()
    req, tx = receive(layer)
    layer.respond(tx, response(req, 200), 1.0)
    layer.take_outputs()
    log = run_clock(layer, 100.0)
    assert [(at, type(out)) for at, out in log] == [(33.0, Terminated)]
    assert len(layer) == 0


def test_timer_j_is_zero_on_reliable_transport() -> None:
    layer = TransactionLayer()
    req, tx = receive(layer, reliable=True)
    ok = response(req, 200)
    layer.respond(tx, ok, 1.0)
    outputs = layer.take_outputs()
    assert sent(outputs) == [ok]
    assert isinstance(outputs[-1], Terminated)
    assert len(layer) == 0


def test_non_invite_server_transport_error_in_proceeding_terminates() -> None:
    layer = TransactionLayer()
    req, tx = receive(layer)
    layer.respond(tx, response(req, 100), 0.1)
    layer.take_outputs()
    layer.transport_error(tx, 0.2)
    assert [type(o) for o in layer.take_outputs()] == [TransportErrorEvent, Terminated]
    assert len(layer) == 0


def test_non_invite_server_transport_error_in_completed_terminates() -> None:
    layer = TransactionLayer()
    req, tx = receive(layer)
    layer.respond(tx, response(req, 200), 0.1)
    layer.take_outputs()
    layer.transport_error(tx, 0.2)
    assert [type(o) for o in layer.take_outputs()] == [TransportErrorEvent, Terminated]
    assert layer.next_deadline() is None


def test_non_invite_server_transport_error_in_trying_is_ignored() -> None:
    layer = TransactionLayer()
    _, tx = receive(layer)
    layer.transport_error(tx, 0.2)
    assert layer.take_outputs() == []
    assert tx.state is State.TRYING


# -- retire: Completed kept as the final response's bytes alone -----------------------


def _completed(layer: TransactionLayer, *, reliable: bool = False) -> ServerTransaction:
    req, tx = receive(layer, reliable=reliable)
    assert layer.respond(tx, response(req, 200), 1.0)
    layer.take_outputs()
    return tx


def test_a_retired_transaction_answers_retransmissions_until_timer_j() -> None:
    from centrex.transaction.events import Resend

    layer = TransactionLayer()
    tx = _completed(layer)
    assert layer.retire(tx, b"the 200 again")
    (ended,) = layer.take_outputs()
    assert isinstance(ended, Terminated) and ended.transaction is tx
    assert len(layer) == 1  # Completed still, as far as the network can tell
    assert layer.next_deadline() == pytest.approx(1.0 + 32.0)
    # Each retransmission of the request: the final response again, no new transaction.
    for at in (2.0, 20.0, 32.9):
        assert layer.receive_request(request("REGISTER"), at, reliable=False, peer=PEER) is None
        (out,) = layer.take_outputs()
        assert isinstance(out, Resend) and out.data == b"the 200 again"
    run_clock(layer, 33.0)
    assert len(layer) == 0 and layer.next_deadline() is None
    # After Timer J the same request is a new one (17.2.2: Terminated).
    again = layer.receive_request(request("REGISTER"), 34.0, reliable=False, peer=PEER)
    assert again is not None and again is not tx
    assert [type(o) for o in layer.take_outputs()] == [RequestEvent]


def test_only_a_completed_non_invite_on_udp_is_retired() -> None:
    layer = TransactionLayer()
    _, trying = receive(layer, "OPTIONS")
    assert not layer.retire(trying, b"")  # no final response yet
    reliable = _completed(TransactionLayer(), reliable=True)
    assert not layer.retire(reliable, b"")  # Timer J is zero on TCP: already gone
    invite_layer = TransactionLayer()
    invite = invite_layer.receive_request(request("INVITE"), 0.0, reliable=False, peer=PEER)
    assert invite is not None and invite_layer.respond(invite, response(invite.request, 486), 1)
    assert not invite_layer.retire(invite, b"")
    assert len(invite_layer) == 1 and not invite.terminated
    assert layer.take_outputs() == [] and len(layer) == 1


def test_retired_transactions_answer_from_a_compressed_chunk_until_timer_j() -> None:
    """Many retired at once (a registration storm) are kept compressed in
    chunks; each still answers its own retransmissions with its own
    response, and none is forgotten before its Timer J."""
    from centrex.transaction.events import Resend
    from centrex.transaction.layer import RETIRED_CHUNK, RETIRED_WINDOW_S

    layer = TransactionLayer()
    count = 3 * RETIRED_CHUNK // 300 + 5  # records of 300+ bytes: several full chunks
    requests = []
    for i in range(count):
        req = request("REGISTER", branch=f"z9hG4bKstorm{i}")
        at = 1.0 + i * 0.001
        tx = layer.receive_request(req, at, reliable=False, peer=PEER)
        assert tx is not None and layer.respond(tx, response(req, 200), at)
        assert layer.retire(tx, f"the 200 of {i}".encode().ljust(300, b"."))
        requests.append(req)
    layer.take_outputs()
    assert len(layer) == count
    last_j = 1.0 + (count - 1) * 0.001 + 32.0
    # Every one, closed chunks and the open one, in order, back again, and
    # from chunks far apart in turn (inflated chunks are kept, a few of them).
    halves = zip(range(count // 2), range(count // 2, count), strict=False)
    far_apart = [i for pair in halves for i in pair]
    for i in [*range(count), *reversed(range(count)), *far_apart]:
        assert layer.receive_request(requests[i], 20.0, reliable=False, peer=PEER) is None
        (out,) = layer.take_outputs()
        assert isinstance(out, Resend) and out.data == f"the 200 of {i}".encode().ljust(300, b".")
    run_clock(layer, 33.0 - 0.0001)  # before the first one's Timer J: all kept
    assert len(layer) == count
    run_clock(layer, last_j + RETIRED_WINDOW_S)
    assert len(layer) == 0 and layer.next_deadline() is None


def test_a_response_that_echoes_another_records_bytes_is_never_taken_for_it() -> None:
    """A response echoes its request (a Call-ID may hold any byte): what an
    attacker writes there must never be found as another transaction's
    retired response, however it is framed."""
    import struct

    from centrex.transaction.events import Resend

    layer = TransactionLayer()
    from centrex.transaction.layer import _RetiredResponses

    # The key the second transaction is kept under, as the layer writes it.
    key = _RetiredResponses.flat(("3261", "z9hG4bKtwo", "client.example.com", 5060, "REGISTER"))
    evil = b"EVIL!"
    forged = b"".join(  # the key of the second, framed as a record could be, then bytes
        (
            struct.pack("!II", len(key), len(evil)) + key.encode() + evil,
            b"\x01" + key.encode() + b"\x02" + struct.pack("!I", len(evil)) + evil,
        )
    )
    for at, (branch, data) in enumerate((("z9hG4bKone", b"one:" + forged), ("z9hG4bKtwo", b"two"))):
        req = request("REGISTER", branch=branch)
        tx = layer.receive_request(req, at * 0.1, reliable=False, peer=PEER)
        assert tx is not None and layer.respond(tx, response(req, 200), at * 0.1)
        assert layer.retire(tx, data)
    layer.take_outputs()
    again = request("REGISTER", branch="z9hG4bKtwo")
    assert layer.receive_request(again, 1.0, reliable=False, peer=PEER) is None
    (out,) = layer.take_outputs()
    assert isinstance(out, Resend) and out.data == b"two"


class _SameHash:
    """A key part whose hash is the same as every other's (as two keys of
    the same 64-bit hash would be): its text tells them apart."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SameHash) and other.text == self.text

    def __str__(self) -> str:
        return self.text


def test_two_retired_keys_of_the_same_hash_never_get_each_others_response() -> None:
    """Retired transactions are indexed by the hash of their key, and a
    record is taken only when its whole key matches: when two keys collide,
    each gets its own response while both records are in one chunk, and once
    they are in different chunks the older is not found at all (answered as
    a new request, as after its Timer J), never given the newer's bytes."""
    from centrex.transaction.layer import _RetiredResponses

    def key(branch: str) -> tuple[object, ...]:
        return ("3261", _SameHash(branch), "client.example.com", 5060, "REGISTER")

    retired = _RetiredResponses()
    assert hash(key("z9hG4bKa")) == hash(key("z9hG4bKb")) and key("z9hG4bKa") != key("z9hG4bKb")
    retired.add(key("z9hG4bKa"), b"the 200 of a", 32.0)
    retired.add(key("z9hG4bKb"), b"the 200 of b", 32.1)  # the same chunk
    assert retired.get(key("z9hG4bKa")) == b"the 200 of a"
    assert retired.get(key("z9hG4bKb")) == b"the 200 of b"
    later = 32.1 + 2 * RETIRED_WINDOW_S  # past the open chunk's window: a chunk of its own
    retired.add(key("z9hG4bKc"), b"the 200 of c", later)
    assert retired.get(key("z9hG4bKc")) == b"the 200 of c"
    assert retired.get(key("z9hG4bKa")) is None and retired.get(key("z9hG4bKb")) is None
    retired.expire(32.1)  # the first chunk's Timer J: the newer entry stays
    assert retired.get(key("z9hG4bKc")) == b"the 200 of c" and len(retired) == 1
    retired.expire(later)
    assert retired.get(key("z9hG4bKc")) is None and len(retired) == 0
