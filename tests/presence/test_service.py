"""PresenceService: SUBSCRIBE in, NOTIFYs out through a real transaction layer.

The transaction layer runs on a fake clock; what would go to the transport is
read from ``take_outputs()`` as ``Send``, and responses to the NOTIFYs are fed
back through ``receive_response`` with the resulting events routed to the
service as the server's ``_drain`` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from centrex.config.settings import User
from centrex.directory import Directory
from centrex.presence import PresenceSettings, parse_event_list
from centrex.presence.recovery import SAVE_AFTER_NOTIFIES
from centrex.presence.service import (
    BATCH,
    BRANCH_PREFIX,
    PresenceService,
    load_watchers,
    peer_of,
)
from centrex.sip.build import make_response
from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message
from centrex.sip.uri import SipURI
from centrex.transaction.events import RequestEvent, Send, Terminated
from centrex.transaction.layer import TransactionLayer
from centrex.transaction.transaction import ClientTransaction, ServerTransaction
from centrex.transport.address import Peer

from .helpers import (
    DOMAIN,
    PHONE,
    PHONE_CONTACT,
    SUBSCRIBER,
    T0,
    USERS,
    binding,
    came,
    left,
    subscribe,
    within,
)

OUR_ADDRESS = "192.168.1.1"
SENT_BY = f"{OUR_ADDRESS}:5060"
PHONE_PEER = peer_of(PHONE)
EDGE = Peer("udp", "10.0.0.9", 5070)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


class Harness:
    """A service on a real TransactionLayer, a fake clock and no sockets."""

    def __init__(
        self,
        data_dir: Path,
        *,
        users: tuple[tuple[str, str], ...] | list[tuple[str, str]] = USERS,
        directory: Directory | None = None,
        batch: int = BATCH,
        **settings: Any,
    ) -> None:
        self.t = 0.0
        self.data_dir = data_dir
        self.layer = TransactionLayer()
        self.hosts = {"edge.example.net": EDGE}
        self.resolved: list[str] = []
        self.directory = directory or Directory(
            [User(user=name, description=text) for name, text in users], False
        )
        self.service = PresenceService(
            PresenceSettings(**settings),
            self.directory,
            transactions=self.layer,
            data_dir=data_dir,
            clock=lambda: self.t,
            wall_clock=self.wall,
            flush=lambda: None,
            sent_by=lambda peer: SENT_BY,
            resolve=self.resolve,
            domain_of=self.domain_of,
            batch=batch,
        )

    def wall(self) -> float:
        return T0 + self.t

    @staticmethod
    def domain_of(host: str, port: int | None) -> str | None:
        return DOMAIN if host.lower() in (DOMAIN, OUR_ADDRESS) else None

    async def resolve(self, uri: SipURI) -> Peer | None:
        self.resolved.append(uri.host)
        return self.hosts.get(uri.host)

    def advance(self, seconds: float) -> list[Send]:
        self.t += seconds
        self.layer.handle_timer(self.t)
        return self.outputs()

    def outputs(self) -> list[Send]:
        """What the server's drain would do: Sends out, NOTIFY events to the service."""
        sends: list[Send] = []
        while outputs := self.layer.take_outputs():
            for out in outputs:
                if isinstance(out, Send):
                    sends.append(out)
                elif not self.service.route_output(out):
                    # Only the SUBSCRIBEs' server transactions are not the service's.
                    assert isinstance(out, RequestEvent | Terminated), out
                    assert isinstance(out.transaction, ServerTransaction | None), out
        return sends

    def receive(self, request: Request, peer: Peer = PHONE_PEER) -> ServerTransaction:
        tx = self.layer.receive_request(request, self.t, reliable=peer.reliable, peer="inbound")
        assert tx is not None
        self.outputs()
        return tx

    def subscribe(
        self, request: Request, peer: Peer = PHONE_PEER, subscriber: str = SUBSCRIBER
    ) -> tuple[Response, list[Send]]:
        """Feed a SUBSCRIBE; the response sent and the NOTIFY Sends after it."""
        tx = self.receive(request, peer)
        self.service.handle_subscribe(tx, request, peer, subscriber, self.wall())
        return split(self.outputs())

    def answer(self, send: Send, status: int = 200) -> list[Send]:
        """The phone answers a NOTIFY; what the service sends next."""
        received = reparse(send.message)
        response = make_response(received, status, to_tag="phone")
        parsed = parse_message(response.to_bytes())
        assert isinstance(parsed, Response)
        tx = self.layer.receive_response(parsed, self.t)
        assert tx is send.transaction
        return self.outputs()

    def answer_all(self, sends: list[Send]) -> list[Send]:
        """Answer every NOTIFY 200, and those that follow; all NOTIFYs sent."""
        seen: list[Send] = []
        todo = list(sends)
        while todo:
            send = todo.pop(0)
            seen.append(send)
            todo += self.answer(send)
        return seen


def reparse(message: object) -> Request:
    assert isinstance(message, Request)
    parsed = parse_message(message.to_bytes())
    assert isinstance(parsed, Request)
    return parsed


def split(sends: list[Send]) -> tuple[Response, list[Send]]:
    (first, *rest) = sends
    assert isinstance(first.message, Response)
    assert isinstance(first.transaction, ServerTransaction)
    assert all(isinstance(s.message, Request) for s in rest)
    return first.message, rest


def listed(sends: list[Send]) -> list[str]:
    out: list[str] = []
    for send in sends:
        _, _, entries = parse_event_list(reparse(send.message).get("Event") or "")
        out += [entry.name for entry in entries]
    return out


def registered(harness: Harness, *users: str) -> None:
    for user in users:
        harness.service.on_aor_event(came(user, harness.wall()))
    assert harness.outputs() == []


# -- SUBSCRIBE, the 200 and the first NOTIFY -------------------------------------------------


@pytest.mark.parametrize("compat", ["", "lanscape"])
def test_subscribe_gets_200_then_a_notify_with_our_via_to_where_it_came_from(
    tmp_path: Path, compat: str
) -> None:
    h = Harness(tmp_path, compat=compat)
    registered(h, "1234", "1235")
    request = subscribe()
    ok, notifies = h.subscribe(request)
    assert ok.status == 200
    assert ok.expires == 3600
    (send,) = notifies
    assert send.peer == PHONE_PEER
    assert isinstance(send.transaction, ClientTransaction)
    assert not send.transaction.reliable
    notify = reparse(send.message)
    assert notify.method == "NOTIFY"
    assert notify.uri == PHONE_CONTACT
    assert len(notify.vias) == 1
    via = notify.get("Via") or ""
    assert via.startswith(f"SIP/2.0/UDP {SENT_BY};branch={BRANCH_PREFIX}")
    assert via.endswith(";rport")
    assert notify.get("Event") == "user-available;param=1234|Engineering Lab|1235|Ted McGraw"
    if compat == "lanscape":
        assert notify.call_id != request.call_id
        assert "Subscription-State" not in notify
    else:
        assert notify.call_id == request.call_id
        assert notify.from_tag == ok.to_tag
        assert notify.get("Subscription-State") == "active;expires=3600"
    assert h.service.owns(send.transaction)
    assert h.answer(send) == []
    assert [w.event for w in h.service.watchers(h.wall())] == ["user-available"]


def test_a_notify_over_tcp_goes_back_over_the_subscribers_connection(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    peer = Peer("tcp", "192.168.1.2", 49152, connection_id=7)
    _, (send,) = h.subscribe(subscribe(), peer)
    assert send.peer == peer
    assert isinstance(send.transaction, ClientTransaction)
    assert send.transaction.reliable
    assert (reparse(send.message).get("Via") or "").startswith(f"SIP/2.0/TCP {SENT_BY};")


def test_one_notify_in_flight_the_200_releases_the_next(tmp_path: Path) -> None:
    users = [(f"{1000 + i}", f"Desk phone number {i} on the second floor") for i in range(80)]
    h = Harness(tmp_path, users=users)
    registered(h, *(name for name, _ in users))
    _, first = h.subscribe(subscribe())
    assert len(first) == 1  # the rest wait for its answer (CSeq order over UDP)
    sent = h.answer_all(first)
    assert len(sent) > 1
    assert listed(sent) == [name for name, _ in users]
    cseqs = [reparse(s.message).cseq.number for s in sent]
    assert cseqs == list(range(1, len(sent) + 1))
    assert all(len(s.message.to_bytes()) <= 1300 for s in sent)
    assert len({s.transaction for s in sent}) == len(sent)


def test_subscribe_refused_by_the_table_sends_no_notify(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    response, notifies = h.subscribe(subscribe("dialog"))
    assert response.status == 489
    assert notifies == []


# -- NOTIFY outcomes ------------------------------------------------------------------------


def test_notify_answered_481_ends_the_subscription(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    _, (send,) = h.subscribe(subscribe())
    assert h.answer(send, 481) == []
    assert h.service.watchers(h.wall()) == []
    h.service.on_aor_event(came("1234", h.wall()))
    assert h.outputs() == []


def test_timer_f_timeouts_end_the_subscription_after_the_configured_failures(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, notify_failures_before_drop=2)
    _, (send,) = h.subscribe(subscribe())
    retransmitted = h.advance(0.5)  # Timer E: the same NOTIFY again
    assert [s.message for s in retransmitted] == [send.message]
    h.advance(40.0)  # past Timer F (64*T1 = 32 s): first failure
    assert h.service.notifies_failed == 1
    assert len(h.service.watchers(h.wall())) == 1

    h.service.on_aor_event(came("1234", h.wall()))
    (second,) = h.outputs()
    assert listed([second]) == ["1234"]
    h.advance(40.0)  # second failure in a row: dropped
    assert h.service.watchers(h.wall()) == []


def test_an_answered_notify_waits_out_timer_k_as_its_branch_alone(tmp_path: Path) -> None:
    """Once answered over UDP, the NOTIFY's transaction is let go (request,
    response, timers) and only its branch waits out the 5 s of Timer K: a
    retransmitted 200 is absorbed there, neither a failure nor a stray
    response for the proxy."""
    h = Harness(tmp_path)
    _, (send,) = h.subscribe(subscribe())
    tx = send.transaction
    assert isinstance(tx, ClientTransaction)
    assert h.answer(send) == []
    assert tx.terminated and h.layer.client_count == 1
    # The phone's 200 again: absorbed, nothing sent, nothing for the proxy.
    again = parse_message(make_response(reparse(send.message), 200, to_tag="phone").to_bytes())
    assert isinstance(again, Response)
    assert h.layer.receive_response(again, h.t) is None
    assert h.layer.take_outputs() == []
    assert h.service.notifies_failed == 0 and h.service.notifies_sent == 1
    h.advance(6.0)  # Timer K
    assert h.layer.client_count == 0


def test_a_transport_error_counts_as_a_failure(tmp_path: Path) -> None:
    h = Harness(tmp_path, notify_failures_before_drop=1)
    _, (send,) = h.subscribe(subscribe())
    h.layer.transport_error(send.transaction, h.t)
    h.outputs()
    assert h.service.watchers(h.wall()) == []


def test_the_service_owns_only_its_own_notify_transactions(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    _, (send,) = h.subscribe(subscribe())
    assert h.service.owns(send.transaction)
    forwarded = reparse(send.message)
    forwarded.set_top_via("SIP/2.0/UDP 192.168.1.1:5060;branch=z9hG4bKcx1234.1;rport")
    proxied = h.layer.start_client(forwarded, h.t, reliable=False, peer=EDGE)
    assert not h.service.owns(proxied)
    assert not h.service.owns(None)


# -- registration changes --------------------------------------------------------------------


@pytest.mark.parametrize("compat", ["", "lanscape"])
def test_aor_events_notify_the_watchers_of_each_event(tmp_path: Path, compat: str) -> None:
    h = Harness(tmp_path, compat=compat)
    registered(h, "1234")
    _, avail = h.subscribe(subscribe("user-available"))
    _, gone = h.subscribe(subscribe("user-unavailable", call_id="sub-2", from_tag="ph2"))
    h.answer_all(avail + gone)

    h.service.on_aor_event(came("1235", h.wall()))
    (send,) = h.outputs()
    assert reparse(send.message).get("Event") == "user-available;param=1235|Ted McGraw"
    assert send.peer == PHONE_PEER
    h.answer_all([send])

    h.service.on_aor_event(left("1234", h.wall()))
    (send,) = h.outputs()
    assert reparse(send.message).get("Event") == "user-unavailable;param=1234|Engineering Lab"


def test_a_big_fan_out_is_sent_in_batches_across_loop_turns(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, compat="lanscape", batch=3)
        for i in range(7):
            h.subscribe(
                subscribe(call_id=f"sub-{i}", contact=f"<sip:1244@192.168.1.2:{10000 + i}>"),
            )
        h.service.on_aor_event(came("1234", h.wall()))
        assert len(h.outputs()) == 3  # the first batch, in this turn
        assert h.service.backlog == 4
        await asyncio.sleep(0)
        assert len(h.outputs()) == 3
        await h.service.idle()
        assert len(h.outputs()) == 1
        assert h.service.backlog == 0

    run(scenario)


def test_fan_out_never_blocks_the_event_turn_that_delivers_it(tmp_path: Path) -> None:
    """While a backlog is being sent, newer NOTIFYs queue behind it, in order."""

    async def scenario() -> None:
        h = Harness(tmp_path, compat="lanscape", batch=2)
        for i in range(3):
            h.subscribe(subscribe(call_id=f"sub-{i}", contact=f"<sip:1244@10.1.1.{i}:5060>"))
        h.service.on_aor_event(came("1234", h.wall()))
        h.service.on_aor_event(came("1235", h.wall()))
        first = h.outputs()
        await h.service.idle()
        rest = h.outputs()
        assert len(first) == 2
        assert listed(first + rest) == ["1234"] * 3 + ["1235"] * 3

    run(scenario)


def test_other_work_runs_between_the_batches_of_a_fan_out(tmp_path: Path) -> None:
    """A REGISTER arriving while a hundred subscribers are told waits for one
    small batch of NOTIFYs, not for all of them."""

    async def scenario() -> None:
        h = Harness(tmp_path)  # the service's own batch
        for i in range(3 * BATCH):
            _, sends = h.subscribe(
                subscribe(call_id=f"sub-{i}", contact=f"<sip:1244@10.1.1.{i}:5060>")
            )
            h.answer_all(sends)
        sent: list[Send] = []
        seen_by_other_work: list[int] = []
        h.service.on_aor_event(came("1234", h.wall()))
        asyncio.get_running_loop().call_soon(lambda: seen_by_other_work.append(len(sent)))
        sent += h.outputs()
        assert len(sent) == BATCH
        while h.service.backlog:
            await asyncio.sleep(0)
            sent += h.outputs()
        assert seen_by_other_work and seen_by_other_work[0] < 3 * BATCH
        assert listed(sent) == ["1234"] * 3 * BATCH

    run(scenario)


def test_held_notifies_all_due_at_once_all_go(tmp_path: Path) -> None:
    """When the loop comes late to the throttle's releases, every held
    subscription is still told, a batch per turn of the loop."""

    async def scenario() -> None:
        h = Harness(tmp_path, notify_min_interval_s=0.05)
        for i in range(3 * BATCH):
            _, sends = h.subscribe(
                subscribe(call_id=f"sub-{i}", contact=f"<sip:1244@10.1.1.{i}:5060>")
            )
            h.answer_all(sends)
        h.service.on_aor_event(came("1234", h.wall()))
        await h.service.idle()
        h.answer_all(h.outputs())
        h.t += 0.01
        h.service.on_aor_event(came("1235", h.wall()))
        assert h.outputs() == []  # held
        h.t += 10  # every release is overdue when the timer fires
        sent: list[Send] = []
        for _ in range(100):
            await asyncio.sleep(0.01)
            sent += h.outputs()
            if len(sent) == 3 * BATCH:
                break
        assert listed(sent) == ["1235"] * 3 * BATCH

    run(scenario)


def test_no_notify_follows_the_200_to_an_unsubscribe_even_from_the_backlog(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, compat="lanscape", batch=2, notify_min_interval_s=0)
        subscribed = []
        for i in range(3):
            request = subscribe(call_id=f"sub-{i}", contact=f"<sip:1244@10.1.1.{i}:5060>")
            ok, sends = h.subscribe(request)
            h.answer_all(sends)
            subscribed.append((ok, request))
        h.service.on_aor_event(came("1234", h.wall()))
        assert len(h.outputs()) == 2
        assert h.service.backlog == 1  # the third subscriber's NOTIFY waits
        ok, request = subscribed[2]
        answer, after = h.subscribe(within(ok, request, expires=0))
        assert answer.status == 200 and after == []
        await h.service.idle()
        assert [s for s in h.outputs() if isinstance(s.message, Request)] == []

    run(scenario)


# -- route sets -------------------------------------------------------------------------------


def test_a_dialog_with_a_route_set_sends_to_the_resolved_first_route(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        request = subscribe(extra=["Record-Route: <sip:edge.example.net;lr>"])
        ok, sends = h.subscribe(request)
        assert ok.status == 200
        assert sends == []  # resolving first
        await h.service.idle()
        (send,) = h.outputs()
        assert h.resolved == ["edge.example.net"]
        assert send.peer == EDGE
        notify = reparse(send.message)
        assert notify.get("Route") == "<sip:edge.example.net;lr>"
        assert notify.uri == PHONE_CONTACT

    run(scenario)


def test_an_unresolvable_first_route_counts_as_a_failure(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, notify_failures_before_drop=1)
        h.subscribe(subscribe(extra=["Record-Route: <sip:nowhere.invalid;lr>"]))
        await h.service.idle()
        assert h.outputs() == []
        assert h.service.watchers(h.wall()) == []

    run(scenario)


# -- time and the recovery file -----------------------------------------------------------


def test_tick_expires_subscriptions_with_a_final_notify_and_saves(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        _, sends = h.subscribe(subscribe(expires=60))
        h.answer_all(sends)
        await h.service.tick(h.wall())
        path = tmp_path / "subscriptions.json"
        assert len(json.loads(path.read_bytes())["subscriptions"]) == 1

        h.t += 61
        await h.service.tick(h.wall())
        (final,) = h.outputs()
        assert reparse(final.message).get("Subscription-State") == "terminated;reason=timeout"
        assert h.service.watchers(h.wall()) == []
        assert json.loads(path.read_bytes())["subscriptions"] == []
        assert h.answer(final) == []

    run(scenario)


def test_tick_saves_only_when_the_table_changed(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        await h.service.start([], h.wall())
        await h.service.tick(h.wall() + 5)
        path = tmp_path / "subscriptions.json"
        assert not path.exists()
        h.subscribe(subscribe())
        await h.service.tick(h.wall() + 10)
        assert path.exists()
        path.unlink()
        await h.service.tick(h.wall() + 20)
        assert not path.exists()

    run(scenario)


def test_notifies_alone_make_the_file_due_only_well_within_the_cseq_gap(tmp_path: Path) -> None:
    """The file is not rewritten for every NOTIFY (a write a second under a
    steady fan-out), but before any dialog's CSeq could outrun the restart gap:
    after a crash, the next NOTIFY's CSeq is still above every one sent."""

    async def scenario() -> None:
        h = Harness(tmp_path, notify_min_interval_s=0)
        await h.service.start([], h.wall())
        path = tmp_path / "subscriptions.json"
        _, sends = h.subscribe(subscribe())
        h.answer_all(sends)
        await h.service.tick(h.wall() + 1)
        saved = path.read_bytes()
        last = 0
        for i in range(SAVE_AFTER_NOTIFIES):
            h.service.on_aor_event(came(f"u{i}", h.wall()))
            (send,) = h.outputs()
            last = reparse(send.message).cseq.number
            h.answer(send)
            if i == SAVE_AFTER_NOTIFIES // 2:
                await h.service.tick(h.wall() + 2)
                assert path.read_bytes() == saved  # a few NOTIFYs: not due
        crashed_at = path.read_bytes()
        await h.service.tick(h.wall() + 3)
        assert path.read_bytes() != crashed_at  # due now

        again = Harness(tmp_path)  # a crash: the file as last saved
        path.write_bytes(crashed_at)
        await again.service.start([], again.wall())
        again.service.on_aor_event(came("late", again.wall()))
        (send,) = again.outputs()
        assert reparse(send.message).cseq.number > last

    run(scenario)


def test_stop_and_start_keep_the_dialog_and_its_cseq(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        registered(h, "1234")
        request = subscribe()
        ok, sends = h.subscribe(request)
        sent = h.answer_all(sends)
        h.service.on_aor_event(came("1235", h.wall()))
        sent += h.answer_all(h.outputs())
        last = reparse(sent[-1].message).cseq.number
        await h.service.stop(h.wall())

        again = Harness(tmp_path)
        again.t = h.t + 5
        await again.service.start([binding("1234", again.wall())], again.wall())
        assert [w.subscriber for w in again.service.watchers(again.wall())] == [SUBSCRIBER]
        again.service.on_aor_event(came("1236", again.wall()))
        (send,) = again.outputs()
        notify = reparse(send.message)
        assert notify.call_id == request.call_id
        assert notify.from_tag == ok.to_tag
        assert notify.cseq.number > last
        assert send.peer == PHONE_PEER

        # The subscriber's refresh still finds its dialog.
        refresh = within(ok, request)
        response, _ = again.subscribe(refresh)
        assert response.status == 200

    run(scenario)


def test_an_unreadable_recovery_file_is_set_aside(tmp_path: Path) -> None:
    async def scenario() -> None:
        (tmp_path / "subscriptions.json").write_bytes(b"{not json")
        h = Harness(tmp_path)
        await h.service.start([], h.wall())
        assert h.service.watchers(h.wall()) == []
        (kept,) = tmp_path.iterdir()
        assert kept.name.startswith("subscriptions.json.bad-")

    run(scenario)


def test_load_watchers_reads_the_file_for_the_cli(tmp_path: Path) -> None:
    async def scenario() -> None:
        assert load_watchers(tmp_path, T0) == []
        h = Harness(tmp_path)
        h.subscribe(subscribe())
        h.subscribe(subscribe("user-unavailable", call_id="sub-2", from_tag="ph2"))
        await h.service.save(h.wall())
        rows = load_watchers(tmp_path, h.wall() + 100)
        assert [(r.event, r.subscriber, r.contact) for r in rows] == [
            ("user-available", SUBSCRIBER, PHONE_CONTACT),
            ("user-unavailable", SUBSCRIBER, PHONE_CONTACT),
        ]
        assert rows[0].expires_in == 3500
        assert rows[0].as_row()["source"] == "udp:192.168.1.2:10000"
        assert load_watchers(tmp_path, h.wall() + 4000) == []

    run(scenario)


# -- which SUBSCRIBEs are ours, and who may subscribe -------------------------------------


@pytest.mark.parametrize(
    ("event", "ruri", "ours"),
    [
        ("user-available", f"sip:Registrar@{DOMAIN}", True),
        ("user-unavailable", f"sip:registrar@{DOMAIN}", True),
        ("dialog", f"sip:Registrar@{DOMAIN}", True),  # answered 489 by us
        ("user-available", f"sip:Registrar@{OUR_ADDRESS}", True),
        ("reg", f"sip:1234@{DOMAIN}", True),
        ("presence", f"sip:1234@{DOMAIN}", True),
        ("Presence;id=1", f"sip:1234@{DOMAIN}", True),
        ("presence.winfo", f"sip:1234@{DOMAIN}", False),
        ("dialog", f"sip:1234@{DOMAIN}", False),
        ("message-summary", f"sip:1234@{DOMAIN}", False),
        ("user-available", f"sip:1234@{DOMAIN}", False),
        ("presence", "sip:1234@elsewhere.example.org", False),
        ("user-available", "sip:Registrar@elsewhere.example.org", False),
        ("presence", f"sip:{DOMAIN}", False),
    ],
)
def test_is_for_registrar(tmp_path: Path, event: str, ruri: str, ours: bool) -> None:
    h = Harness(tmp_path)
    assert h.service.is_for_registrar(subscribe(event, ruri=ruri)) is ours


def test_standard_packages_off_leaves_reg_and_presence_to_the_phones(tmp_path: Path) -> None:
    h = Harness(tmp_path, standard_packages=False)
    assert not h.service.is_for_registrar(subscribe("presence", ruri=f"sip:1234@{DOMAIN}"))
    assert h.service.is_for_registrar(subscribe("user-available"))
    text = subscribe("presence", ruri=f"sip:1234@{DOMAIN}").to_bytes()
    options = parse_message(text.replace(b"SUBSCRIBE", b"OPTIONS"))
    assert isinstance(options, Request)
    assert not h.service.is_for_registrar(options)


def test_may_subscribe_users_of_the_domain_only(tmp_path: Path) -> None:
    directory = Directory(
        [User(user="1234"), User(user="1235", enabled=False)],
        False,
    )
    service = Harness(tmp_path, directory=directory).service
    # Listed in the directory: a user of the domain, registered or not.
    aor = f"sip:1234@{DOMAIN}"
    assert service.may_subscribe(aor, has_bindings=False, authenticated=False)
    # Not listed (allow_unknown_users): a registration or credentials make one.
    unlisted = f"sip:1299@{DOMAIN}"
    assert service.may_subscribe(unlisted, has_bindings=True, authenticated=False)
    assert service.may_subscribe(unlisted, has_bindings=False, authenticated=True)
    assert not service.may_subscribe(unlisted, has_bindings=False, authenticated=False)
    disabled = f"sip:1235@{DOMAIN}"
    assert not service.may_subscribe(disabled, has_bindings=True, authenticated=True)
    assert not service.may_subscribe(f"sip:{DOMAIN}", has_bindings=True, authenticated=True)


def test_subscriber_of_maps_our_address_to_the_domain(tmp_path: Path) -> None:
    service = Harness(tmp_path).service
    request = subscribe()
    assert service.subscriber_of(request) == SUBSCRIBER
    text = request.to_bytes().replace(f"<sip:1244@{DOMAIN}>".encode(), b"<sip:1244@192.168.1.1>")
    by_address = parse_message(text)
    assert isinstance(by_address, Request)
    assert service.subscriber_of(by_address) == SUBSCRIBER
    foreign = parse_message(text.replace(b"192.168.1.1>", b"elsewhere.example.org>"))
    assert isinstance(foreign, Request)
    assert service.subscriber_of(foreign) is None


def _answer(
    h: Harness, request: Request, *, is_registered: bool, identity: str | None = None
) -> tuple[Response, list[Send]]:
    async def registered_(aor: str) -> bool:
        return is_registered

    lookup: Callable[[str], Awaitable[bool]] = registered_
    tx = h.receive(request)

    async def go() -> None:
        await h.service.answer_subscribe(
            tx, request, PHONE_PEER, registered=lookup, identity=identity
        )

    run(go)
    return split(h.outputs())


def test_answer_subscribe_refuses_a_subscriber_who_is_not_registered(tmp_path: Path) -> None:
    # Not in the directory either (allow_unknown_users): no registration, no user.
    h = Harness(tmp_path, users=())
    response, sends = _answer(h, subscribe(), is_registered=False)
    assert response.status == 403
    assert sends == []
    response, sends = _answer(h, subscribe(call_id="again"), is_registered=True)
    assert response.status == 200
    assert len(sends) == 1


def test_answer_subscribe_lets_a_listed_user_subscribe_before_registering(
    tmp_path: Path,
) -> None:
    # Authentication off: a user in the directory is a user of the domain
    # (it used to get "403 Only users of the domain may subscribe").
    response, sends = _answer(Harness(tmp_path), subscribe(), is_registered=False)
    assert response.status == 200
    assert response.get("Allow-Events") == "user-available, user-unavailable, reg, presence"
    assert len(sends) == 1


def test_answer_subscribe_with_credentials_of_another_user_is_403(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    response, _ = _answer(h, subscribe(), is_registered=True, identity="1234")
    assert response.status == 403
    response, sends = _answer(h, subscribe(call_id="x"), is_registered=False, identity="1244")
    assert response.status == 200
    assert len(sends) == 1


def test_presence_subscribe_to_our_address_watches_the_domain_user(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    request = subscribe("presence", ruri=f"sip:1234@{OUR_ADDRESS}")
    ok, (send,) = h.subscribe(request)
    assert ok.status == 200
    (watcher,) = h.service.watchers(h.wall())
    assert watcher.resource == f"sip:1234@{DOMAIN}"
    assert b"<basic>closed</basic>" in reparse(send.message).body
    h.answer(send)
    h.service.on_aor_event(came("1234", h.wall()))
    (send,) = h.outputs()
    assert b"<basic>open</basic>" in reparse(send.message).body


def test_a_refresh_in_the_dialog_needs_no_registration_but_the_same_subscriber(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path)
    request = subscribe()
    ok, sends = _answer(h, request, is_registered=False, identity="1244")
    assert ok.status == 200
    h.answer_all(sends)
    refresh, _ = _answer(h, within(ok, request, expires=600), is_registered=False)
    assert refresh.status == 200
    assert refresh.expires == 600
    unknown = within(ok, request, call_id="no-such-dialog")
    response, _ = _answer(h, unknown, is_registered=False)
    assert response.status == 481


def test_a_disabled_user_cannot_refresh(tmp_path: Path) -> None:
    directory = Directory([User(user="1244")], False)
    h = Harness(tmp_path, directory=directory)
    request = subscribe()
    ok, _ = _answer(h, request, is_registered=True)
    assert ok.status == 200
    directory.replace(Directory([User(user="1244", enabled=False)], False))
    response, _ = _answer(h, within(ok, request, expires=0), is_registered=True)
    assert response.status == 403
