"""The registrar end to end: REGISTER bytes in, response out (RFC 3261 10.3)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from centrex.registrar.binding import Binding, Changes, Source
from centrex.registrar.events import AorEvent
from centrex.registrar.memory import MemoryLocationStore
from centrex.registrar.registrar import Registrar
from centrex.registrar.store import AorRemoval, DecisionT, LocationStore
from centrex.sip.message import Request, Response

from .helpers import T0, UDP, make_registrar, register, reparse

AOR = "sip:alice@example.com"


def handle(
    registrar: Registrar, request: Request, now: float = T0, source: Source = UDP
) -> Response:
    async def run() -> Response:
        return await registrar.handle(request, source, now)

    return reparse(asyncio.run(run()))


def test_register_answers_200_listing_the_contact_with_its_expires() -> None:
    response = handle(make_registrar(), register(expires=600))
    assert response.status == 200
    assert response.get_all("Contact") == ["<sip:alice@192.0.2.10:5060>;expires=600"]
    assert response.to_tag == "t1"
    assert parsedate_to_datetime(response.get("Date") or "").timestamp() == T0


def test_200_lists_every_binding_with_its_remaining_time() -> None:
    registrar = make_registrar()
    handle(registrar, register("<sip:alice@192.0.2.10>", expires=600), T0)
    response = handle(
        registrar,
        register("<sip:alice@192.0.2.20>;q=0.5", call_id="desk", expires=3600),
        T0 + 100,
    )
    assert response.get_all("Contact") == [
        "<sip:alice@192.0.2.10>;expires=500",
        "<sip:alice@192.0.2.20>;expires=3600;q=0.5",
    ]


def test_a_contact_in_its_last_second_is_listed_with_expires_1_not_0() -> None:
    # expires=0 in a 200 says the contact was removed; a live one never says so.
    registrar = make_registrar()
    handle(registrar, register(expires=60))
    response = handle(registrar, register(None, cseq=2), T0 + 59.6)
    assert response.get_all("Contact") == ["<sip:alice@192.0.2.10:5060>;expires=1"]


def test_query_without_contact_lists_current_bindings_and_changes_nothing() -> None:
    registrar = make_registrar()
    handle(registrar, register(expires=600))
    response = handle(registrar, register(None, cseq=2), T0 + 60)
    assert response.get_all("Contact") == ["<sip:alice@192.0.2.10:5060>;expires=540"]


def test_to_tag_is_added_to_every_final_response() -> None:
    response = handle(make_registrar(), register(ruri="sip:elsewhere.org"))
    assert response.status == 404
    assert response.to_tag is not None


def test_423_carries_min_expires() -> None:
    response = handle(make_registrar(min_expires=120), register(expires=60))
    assert (response.status, response.get("Min-Expires")) == (423, "120")


def test_out_of_order_cseq_gets_500_with_a_clear_reason() -> None:
    registrar = make_registrar()
    handle(registrar, register(cseq=5))
    response = handle(registrar, register(cseq=5))
    assert response.status == 500
    assert "CSeq" in response.reason


@pytest.mark.parametrize(
    ("param", "granted"),
    [
        # RFC 3261 20.10: malformed, an RFC 2543 absolute date included, is 3600.
        ("expires=abc", 3600),
        ('expires="Thu, 01 Dec 2026 16:00:00 GMT"', 3600),
        ("expires", 3600),
        # 10.2.1.1: above 2**32-1 is 2**32-1, here cut to max_expires.
        ("expires=4294967296", 7200),
        ("expires=00000000000000000000600", 600),
    ],
)
def test_a_contact_expires_parameter_that_is_malformed_or_too_large_still_registers(
    param: str, granted: int
) -> None:
    response = handle(make_registrar(max_expires=7200), register(f"<sip:alice@192.0.2.10>;{param}"))
    assert response.status == 200
    assert response.get_all("Contact") == [f"<sip:alice@192.0.2.10>;expires={granted}"]


def test_unknown_user_gets_404_unless_unknown_users_are_allowed() -> None:
    # RFC 3261 10.3 step 3: an AOR not valid for the domain is Not Found.
    assert handle(make_registrar(), register(to="sip:carol@example.com")).status == 404
    open_registrar = make_registrar(allow_unknown_users=True)
    assert handle(open_registrar, register(to="sip:carol@example.com")).status == 200


def test_disabled_user_cannot_register_even_when_unknown_users_may() -> None:
    registrar = make_registrar(disabled=["carol"], allow_unknown_users=True)
    response = handle(registrar, register(to="sip:carol@example.com"))
    assert (response.status, response.reason) == (403, "User disabled")


def test_directory_lookup_ignores_case_by_default() -> None:
    assert handle(make_registrar(), register(to="sip:ALICE@example.com")).status == 200


def test_authenticated_identity_may_only_register_its_own_aor() -> None:
    registrar = make_registrar()

    async def run(identity: str) -> int:
        response = await registrar.handle(register(), UDP, T0, identity=identity)
        return response.status

    assert asyncio.run(run("bob")) == 403
    assert asyncio.run(run("Alice")) == 200


def test_path_is_stored_and_echoed_when_the_ua_supports_it() -> None:
    registrar = make_registrar()
    path = "Path: <sip:edge.example.net;lr>"
    response = handle(registrar, register(extra=[path, "Supported: path"]))
    assert response.get_all("Path") == ["<sip:edge.example.net;lr>"]
    silent = handle(registrar, register(extra=[path], cseq=2))
    assert silent.get_all("Path") == []
    bindings = asyncio.run(registrar.lookup(AOR, T0))
    assert bindings[0].path == ("<sip:edge.example.net;lr>",)


def test_short_expiry_lapses_on_the_injected_clock() -> None:
    registrar = make_registrar(min_expires=1, default_expires=5)

    async def run() -> tuple[int, int, int]:
        await registrar.handle(register(expires=5), UDP, T0)
        during = len(await registrar.lookup(AOR, T0 + 4.9))
        after = len(await registrar.lookup(AOR, T0 + 5))
        purged = await registrar.purge(T0 + 5)
        return during, after, purged

    assert asyncio.run(run()) == (1, 0, 1)


def test_lookup_never_returns_an_expired_contact_before_the_purge() -> None:
    registrar = make_registrar()
    handle(registrar, register("<sip:alice@192.0.2.10>", expires=600))
    handle(registrar, register("<sip:alice@192.0.2.20>", call_id="desk", expires=3600))
    found = asyncio.run(registrar.lookup(AOR, T0 + 601))
    assert [b.contact for b in found] == ["sip:alice@192.0.2.20"]


def test_unregister_with_wildcard_removes_all() -> None:
    registrar = make_registrar()
    handle(registrar, register(expires=600))
    response = handle(registrar, register("*", expires=0, cseq=2))
    assert response.status == 200
    assert response.get_all("Contact") == []
    assert asyncio.run(registrar.lookup(AOR, T0)) == []


def test_nat_port_change_does_not_pile_up_contacts() -> None:
    registrar = make_registrar()
    for cseq, port in enumerate((40001, 40002, 40003), start=1):
        source = Source("udp", "198.51.100.7", port)
        handle(registrar, register(f"<sip:alice@198.51.100.7:{port}>", cseq=cseq), T0, source)
    found = asyncio.run(registrar.lookup(AOR, T0))
    assert [b.contact for b in found] == ["sip:alice@198.51.100.7:40003"]


def test_a_phone_adds_a_contact_with_the_same_call_id() -> None:
    # RFC 3261 10.2.1.2 and 10.2.4: one Call-ID for all of a UA's
    # registrations; a new contact from the same source is added beside the
    # first, not in its place, and the CSeq is checked against the contact's
    # own binding (there is none for the new one).
    registrar = make_registrar()
    handle(registrar, register("<sip:alice@192.0.2.10:5060>", cseq=5))
    added = handle(registrar, register("<mailto:alice@example.com>", cseq=6))
    assert added.status == 200
    found = asyncio.run(registrar.lookup(AOR, T0))
    assert sorted(b.contact for b in found) == [
        "mailto:alice@example.com",
        "sip:alice@192.0.2.10:5060",
    ]
    third = handle(registrar, register("<sip:alice@192.0.2.10:5062>", cseq=3))
    assert third.status == 200
    assert len(asyncio.run(registrar.lookup(AOR, T0))) == 3


class FailingStore(LocationStore):
    """A store whose storage is gone: every change fails (a store of its own,
    as the memory store may be compiled, which interpreted classes cannot extend)."""

    async def open(self, now: float) -> None:
        pass

    async def close(self, now: float) -> None:
        pass

    async def lookup(self, aor: str) -> list[Binding]:
        return []

    def live(self, aor: str, now: float) -> tuple[Binding, ...]:
        return ()

    async def update(
        self, aor: str, decide: Callable[[list[Binding]], DecisionT], now: float
    ) -> DecisionT:
        raise OSError("database gone")

    async def remove_connections(
        self, server_id: str, connection_id: int | None, now: float
    ) -> list[AorRemoval]:
        return []

    async def purge(self, now: float) -> list[AorRemoval]:
        return []

    async def bindings(self) -> list[Binding]:
        return []


def test_store_failure_is_503_with_retry_after_never_a_200() -> None:
    response = handle(make_registrar(FailingStore()), register())
    assert response.status == 503
    assert response.get("Retry-After") == "30"


# -- connections -------------------------------------------------------------------


def tcp(connection_id: int, port: int = 40000) -> Source:
    return Source("tcp", "198.51.100.7", port, "tcp:203.0.113.1:5060", connection_id)


def test_connection_close_removes_only_the_tcp_bindings_of_that_connection() -> None:
    registrar = make_registrar()
    handle(registrar, register("<sip:alice@10.0.0.1;transport=tcp>", call_id="a"), source=tcp(7))
    handle(registrar, register("<sip:alice@10.0.0.2;transport=tcp>", call_id="b"), source=tcp(8))
    handle(registrar, register("<sip:alice@10.0.0.3>", call_id="c"), source=UDP)
    handle(
        registrar,
        register("<sip:bob@10.0.0.4;transport=tcp>", to="sip:bob@example.com"),
        source=tcp(7, 40001),
    )

    async def run() -> tuple[int, list[str], list[Binding]]:
        removed = await registrar.connection_closed(7, T0 + 1)
        alice = [b.contact for b in await registrar.lookup(AOR, T0 + 1)]
        bob = await registrar.lookup("sip:bob@example.com", T0 + 1)
        return removed, alice, bob

    removed, alice, bob = asyncio.run(run())
    assert removed == 2
    assert sorted(alice) == ["sip:alice@10.0.0.2;transport=tcp", "sip:alice@10.0.0.3"]
    assert bob == []


def test_connection_close_keeps_bindings_when_the_setting_is_off() -> None:
    registrar = make_registrar(remove_on_connection_close=False)
    handle(registrar, register(), source=tcp(7))
    assert asyncio.run(registrar.connection_closed(7, T0)) == 0
    assert len(asyncio.run(registrar.lookup(AOR, T0))) == 1


def test_connection_ids_of_another_server_are_not_touched() -> None:
    store = MemoryLocationStore(None)
    other = make_registrar(store, server_id="srv2")
    mine = make_registrar(store, server_id="srv1")
    handle(other, register(), source=tcp(7))
    assert asyncio.run(mine.connection_closed(7, T0)) == 0
    assert asyncio.run(other.connection_closed(7, T0)) == 1


def test_refresh_over_a_new_connection_survives_the_old_one_closing() -> None:
    registrar = make_registrar()
    handle(registrar, register(cseq=1), source=tcp(7))
    handle(registrar, register(cseq=2), source=tcp(8, 40002))
    assert asyncio.run(registrar.connection_closed(7, T0)) == 0
    (found,) = asyncio.run(registrar.lookup(AOR, T0))
    assert found.source.connection_id == 8


# -- events ------------------------------------------------------------------------


def collect(registrar: Registrar) -> list[AorEvent]:
    events: list[AorEvent] = []
    registrar.listeners.add(events.append)
    return events


def test_first_binding_makes_the_aor_available_and_only_once() -> None:
    registrar = make_registrar()
    events = collect(registrar)

    async def run() -> None:
        await registrar.handle(register("<sip:alice@192.0.2.10>", call_id="a"), UDP, T0)
        await registrar.handle(register("<sip:alice@192.0.2.20>", call_id="b"), UDP, T0)
        await registrar.listeners.drain()

    asyncio.run(run())
    assert [(e.kind, e.aor, e.reason) for e in events] == [("available", AOR, "registered")]
    assert [b.contact for b in events[0].bindings] == ["sip:alice@192.0.2.10"]


def test_last_binding_removed_makes_the_aor_unavailable() -> None:
    registrar = make_registrar()
    events = collect(registrar)

    async def run() -> None:
        await registrar.handle(register("<sip:alice@192.0.2.10>", call_id="a"), UDP, T0)
        await registrar.handle(register("<sip:alice@192.0.2.20>", call_id="b"), UDP, T0)
        await registrar.handle(
            register("<sip:alice@192.0.2.10>;expires=0", call_id="a", cseq=2), UDP, T0
        )
        await registrar.handle(register("*", call_id="b", cseq=2, expires=0), UDP, T0)
        await registrar.listeners.drain()

    asyncio.run(run())
    assert [(e.kind, e.reason) for e in events] == [
        ("available", "registered"),
        ("unavailable", "unregistered"),
    ]


def test_purge_of_the_last_expired_binding_makes_the_aor_unavailable() -> None:
    registrar = make_registrar()
    events = collect(registrar)

    async def run() -> None:
        await registrar.handle(register(expires=600), UDP, T0)
        await registrar.purge(T0 + 599)
        await registrar.purge(T0 + 600)
        await registrar.listeners.drain()

    asyncio.run(run())
    assert [(e.kind, e.reason, e.at) for e in events][1:] == [("unavailable", "purged", T0 + 600)]


def test_register_over_only_expired_bindings_reports_the_expiry() -> None:
    registrar = make_registrar()
    events = collect(registrar)

    async def run() -> None:
        await registrar.handle(register("<sip:alice@192.0.2.10>", expires=600), UDP, T0)
        late = register("<sip:alice@192.0.2.10>;expires=0", cseq=2)
        await registrar.handle(late, UDP, T0 + 700)
        await registrar.listeners.drain()

    asyncio.run(run())
    assert [(e.kind, e.reason) for e in events] == [
        ("available", "registered"),
        ("unavailable", "expired"),
    ]


def _changes(events: list[AorEvent]) -> list[tuple[str, str, list[str], list[str]]]:
    """(kind, reason, contacts that came, contacts that went) of each event."""
    return [
        (e.kind, e.reason, [b.contact for b in e.bindings], [b.contact for b in e.gone])
        for e in events
    ]


def test_contacts_of_a_watched_aor_that_come_or_go_are_changed_events() -> None:
    # RFC 3680 reports every contact's change; the registrar makes them only
    # for the AORs in listeners.watched (presence's reg watchers).
    registrar = make_registrar(max_contacts=2, max_contacts_policy="evict_oldest")
    events = collect(registrar)
    one, two, three = "sip:alice@192.0.2.10", "sip:alice@192.0.2.20", "sip:alice@192.0.2.30"
    four = "sip:alice@192.0.2.40"

    async def run() -> None:
        await registrar.handle(register(f"<{one}>", call_id="a", expires=600), UDP, T0)
        await registrar.handle(register(f"<{two}>", call_id="b"), UDP, T0)  # not watched yet
        registrar.listeners.watched.add(AOR)
        await registrar.handle(register(f"<{two}>;expires=0", call_id="b", cseq=2), UDP, T0)
        await registrar.handle(register(f"<{two}>", call_id="b", cseq=3), UDP, T0 + 1)
        await registrar.handle(register(f"<{two}>", call_id="b", cseq=4), UDP, T0 + 2)  # refresh
        await registrar.handle(register(f"<{three}>", call_id="c"), UDP, T0 + 3)  # evicts one
        await registrar.handle(register(f"<{one}>", call_id="a", cseq=2, expires=600), UDP, T0 + 4)
        await registrar.purge(T0 + 604)  # one expires, three stays
        await registrar.handle(register(f"<{four}>", call_id="d"), tcp(9), T0 + 605)
        await registrar.connection_closed(9, T0 + 606)
        await registrar.listeners.drain()

    asyncio.run(run())
    assert _changes(events) == [
        ("available", "registered", [one], []),
        ("changed", "unregistered", [], [two]),
        ("changed", "registered", [two], []),
        ("changed", "registered", [three], []),
        ("changed", "evicted", [], [one]),
        ("changed", "registered", [one], []),
        ("changed", "evicted", [], [two]),  # the least recently refreshed
        ("changed", "purged", [], [one]),
        ("changed", "registered", [four], []),
        ("changed", "connection_closed", [], [four]),
    ]


def test_another_workers_change_of_a_watched_aor_is_a_changed_event() -> None:
    # A change another worker (or server) made reaches this registrar's
    # watchers as the same events (the store's on_remote_change).
    store = MemoryLocationStore(None)
    registrar = make_registrar(store)
    events = collect(registrar)
    other = make_registrar(MemoryLocationStore(None))

    async def run() -> None:
        await registrar.start(T0)
        await other.handle(register("<sip:alice@192.0.2.10>", call_id="a"), UDP, T0)
        (desk_binding,) = await other.store.lookup(AOR)
        soft_binding = replace(desk_binding, id="b9", contact="sip:alice@192.0.2.20")
        registrar.listeners.watched.add(AOR)
        store.apply_remote(AOR, Changes((desk_binding,), ()), T0)
        store.apply_remote(AOR, Changes((soft_binding,), ()), T0 + 1)
        store.apply_remote(AOR, Changes((), ("b9",)), T0 + 2)
        await registrar.listeners.drain()

    asyncio.run(run())
    assert _changes(events) == [
        ("available", "registered", ["sip:alice@192.0.2.10"], []),
        ("changed", "registered", ["sip:alice@192.0.2.20"], []),
        ("changed", "unregistered", [], ["sip:alice@192.0.2.20"]),
    ]


def test_closing_the_connection_of_the_last_binding_makes_the_aor_unavailable() -> None:
    registrar = make_registrar()
    events = collect(registrar)

    async def run() -> None:
        await registrar.handle(register(), tcp(3), T0)
        await registrar.connection_closed(3, T0 + 5)
        await registrar.listeners.drain()

    asyncio.run(run())
    assert [(e.kind, e.reason) for e in events] == [
        ("available", "registered"),
        ("unavailable", "connection_closed"),
    ]


def test_listeners_run_after_the_response_and_cannot_break_it() -> None:
    registrar = make_registrar()
    order: list[str] = []

    def failing(event: AorEvent) -> None:
        order.append("sync listener")
        raise RuntimeError("listener bug")

    async def slow(event: AorEvent) -> None:
        await asyncio.sleep(0.01)
        order.append("async listener")

    registrar.listeners.add(failing)
    registrar.listeners.add(slow)

    async def run() -> int:
        response = await registrar.handle(register(), UDP, T0)
        order.append("response")
        await registrar.listeners.drain()
        return response.status

    assert asyncio.run(run()) == 200
    assert order == ["response", "sync listener", "async listener"]


def test_restart_drops_bindings_of_connections_that_died_with_the_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registrations.json"

    async def before_crash() -> None:
        registrar = make_registrar(MemoryLocationStore(path))
        await registrar.start(T0)
        await registrar.handle(register("<sip:alice@10.0.0.1>", call_id="a"), tcp(1), T0)
        await registrar.handle(register("<sip:alice@10.0.0.2>", call_id="b"), UDP, T0)
        await registrar.handle(register(to="sip:bob@example.com"), tcp(2), T0)
        await registrar.stop(T0)

    async def after_restart() -> tuple[list[str], list[tuple[str, str, str]]]:
        store = MemoryLocationStore(path)
        registrar = make_registrar(store)
        events = collect(registrar)
        await registrar.start(T0 + 10)
        await registrar.listeners.drain()
        contacts = [b.contact for b in await store.bindings()]
        return contacts, [(e.kind, e.aor, e.reason) for e in events]

    asyncio.run(before_crash())
    contacts, events = asyncio.run(after_restart())
    assert contacts == ["sip:alice@10.0.0.2"]
    assert events == [("unavailable", "sip:bob@example.com", "connection_closed")]


def test_maintain_purges_every_interval_and_flushes() -> None:
    registrar = make_registrar(purge_interval_s=30, min_expires=1)

    async def run() -> list[int]:
        await registrar.start(T0)
        await registrar.handle(register(expires=10), UDP, T0)
        counts = []
        for t in (T0 + 11, T0 + 29, T0 + 30):
            await registrar.maintain(t)
            counts.append(len(await registrar.store.bindings()))
        return counts

    assert asyncio.run(run()) == [1, 1, 0]


def test_date_of_the_200_follows_the_clock_second_by_second() -> None:
    registrar = make_registrar()
    dates = [
        parsedate_to_datetime(
            handle(registrar, register(call_id=f"d{i}", expires=600), now).get("Date") or ""
        ).timestamp()
        for i, now in enumerate((T0, T0 + 0.4, T0 + 0.99, T0 + 1.0, T0 + 61.5, T0))
    ]
    assert dates == [T0, T0, T0, T0 + 1, T0 + 61, T0]


def test_flushed_events_reach_listeners_at_once_in_order_and_only_once() -> None:
    # A SUBSCRIBE read in the same turn as the REGISTERs before it flushes
    # their events first, so its first NOTIFY lists those users.
    from centrex.registrar.events import EventListeners

    async def scenario() -> None:
        listeners = EventListeners()
        seen: list[str] = []
        listeners.add(lambda event: seen.append(f"{event.kind} {event.aor}"))
        listeners.emit([AorEvent("available", "sip:1@example.com", "registered", T0)])
        listeners.emit([AorEvent("unavailable", "sip:2@example.com", "unregistered", T0)])
        assert seen == []  # delivered on a later turn, never inside the REGISTER
        listeners.flush()
        assert seen == ["available sip:1@example.com", "unavailable sip:2@example.com"]
        listeners.emit([AorEvent("available", "sip:3@example.com", "registered", T0)])
        await listeners.drain()
        assert seen[2:] == ["available sip:3@example.com"]  # the flushed two not again

    asyncio.run(scenario())


def test_events_of_one_turn_arrive_together_and_a_listeners_own_wait_a_turn() -> None:
    # A burst of REGISTERs read in one turn: their events arrive on the next
    # turn, in order; an event a listener emits while they are delivered
    # arrives on a turn after that, never in the middle of the burst.
    from centrex.registrar.events import EventListeners

    async def scenario() -> None:
        listeners = EventListeners()
        seen: list[str] = []

        def listener(event: AorEvent) -> None:
            seen.append(event.aor)
            if event.aor == "sip:1@example.com":
                listeners.emit([AorEvent("unavailable", "sip:echo@example.com", "purged", T0)])

        listeners.add(listener)
        loop = asyncio.get_running_loop()
        for n in (1, 2, 3):
            listeners.emit([AorEvent("available", f"sip:{n}@example.com", "registered", T0)])
            # Work the loop had queued between two REGISTERs waits for the whole burst.
            loop.call_soon(seen.append, f"other work {n}")
        await asyncio.sleep(0)
        assert seen[:4] == [
            "sip:1@example.com",
            "sip:2@example.com",
            "sip:3@example.com",
            "other work 1",
        ]
        seen[3:] = [entry for entry in seen[3:] if not entry.startswith("other work")]
        await asyncio.sleep(0)
        assert seen[3:] == ["sip:echo@example.com"]
        await listeners.drain()
        assert len(seen) == 4

    asyncio.run(scenario())


def test_an_event_emitted_outside_the_loop_is_refused_and_leaves_the_rest_working() -> None:
    from centrex.registrar.events import EventListeners

    listeners = EventListeners()
    seen: list[str] = []
    listeners.add(lambda event: seen.append(event.aor))
    with pytest.raises(RuntimeError):
        listeners.emit([AorEvent("available", "sip:early@example.com", "registered", T0)])

    async def scenario() -> None:
        listeners.emit([AorEvent("available", "sip:1@example.com", "registered", T0)])
        await asyncio.wait_for(listeners.drain(), 5)

    asyncio.run(scenario())
    assert seen == ["sip:1@example.com"]
