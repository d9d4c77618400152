"""The binding decision of RFC 3261 10.3 steps 6 to 8, without any store."""

from __future__ import annotations

import itertools
from typing import Any, Final

from centrex.registrar.binding import Binding, Source
from centrex.registrar.request import RegisterRequest, read_register, read_target
from centrex.registrar.rules import Outcome, decide
from centrex.registrar.store import apply_changes

from .helpers import T0, UDP, binding, register, settings

DOMAINS = frozenset({"example.com"})


def run(
    current: list[Binding],
    now: float = T0,
    *,
    source: Source = UDP,
    setting: dict[str, Any] | None = None,
    **request_kwargs: Any,
) -> Outcome:
    config = settings(**(setting or {}))
    request = register(**request_kwargs)
    target = read_target(request, DOMAINS, case_sensitive=False)
    reg: RegisterRequest = read_register(request, target, source, config)
    ids = itertools.count(100)
    return decide(reg, current, now, config, server_id="srv1", new_id=lambda: f"n{next(ids)}")


def after(current: list[Binding], outcome: Outcome) -> list[Binding]:
    return list(apply_changes(tuple(current), outcome.changes))


def test_first_registration_adds_a_binding_with_everything_recorded() -> None:
    tcp = Source("tcp", "198.51.100.7", 40001, "tcp:203.0.113.1:5060", connection_id=9)
    outcome = run(
        [],
        source=tcp,
        contacts="<sip:alice@10.0.0.5:5060;transport=tcp>;q=0.7",
        expires=600,
        cseq=5,
        extra=["Path: <sip:edge.example.net;lr>"],
    )
    assert outcome.ok
    (new,) = outcome.changes.put
    assert new.id == "n100"
    assert new.contact == "sip:alice@10.0.0.5:5060;transport=tcp"
    assert new.expires_at == T0 + 600
    assert (new.q, new.call_id, new.cseq) == (0.7, "call-1@192.0.2.10", 5)
    assert new.source == tcp
    assert new.path == ("<sip:edge.example.net;lr>",)
    assert new.user_agent == "TestPhone/1.0"
    assert new.server_id == "srv1"
    assert outcome.bindings == (new,)


def test_refresh_keeps_the_binding_id_and_creation_time() -> None:
    old = binding(cseq=1, created_at=T0 - 100, updated_at=T0 - 100)
    outcome = run([old], T0, cseq=2, expires=1800)
    (new,) = outcome.changes.put
    assert (new.id, new.created_at, new.updated_at) == ("b1", T0 - 100, T0)
    assert new.expires_at == T0 + 1800
    assert outcome.changes.remove == ()


def test_contact_uri_matching_follows_uri_comparison_rules() -> None:
    old = binding("sip:alice@192.0.2.10:5060")
    outcome = run([old], cseq=2, contacts="<sip:alice@192.0.2.10:5060;x-tag=abc>")
    assert [b.id for b in outcome.changes.put] == ["b1"]


def test_older_or_equal_cseq_from_the_same_call_id_fails_with_500() -> None:
    old = binding(cseq=5)
    for cseq in (4, 5):
        outcome = run([old], cseq=cseq)
        assert (outcome.status, outcome.changes.empty) == (500, True)
        assert outcome.reason is not None and "CSeq" in outcome.reason


def test_another_call_id_updates_whatever_its_cseq() -> None:
    old = binding(cseq=50)
    outcome = run([old], cseq=1, call_id="reboot@192.0.2.10")
    assert outcome.ok
    assert outcome.changes.put[0].call_id == "reboot@192.0.2.10"


def test_one_failing_contact_fails_the_whole_request() -> None:
    old = binding("sip:alice@192.0.2.10:5060", cseq=5)
    outcome = run([old], cseq=5, contacts=["<sip:alice@192.0.2.99>", "<sip:alice@192.0.2.10:5060>"])
    assert outcome.status == 500
    assert outcome.changes.empty


def test_expires_zero_removes_the_binding() -> None:
    old = binding()
    outcome = run([old], cseq=2, contacts="<sip:alice@192.0.2.10:5060>;expires=0")
    assert outcome.changes.remove == ("b1",)
    assert outcome.bindings == ()


def test_expires_zero_for_an_unknown_contact_changes_nothing() -> None:
    old = binding()
    outcome = run([old], cseq=2, contacts="<sip:other@192.0.2.10>;expires=0")
    assert outcome.ok and outcome.changes.empty
    assert outcome.bindings == (old,)


def test_wildcard_removes_every_binding() -> None:
    current = [binding(id="b1"), binding("sip:alice@192.0.2.11", id="b2", call_id="other")]
    outcome = run(current, cseq=2, contacts="*", expires=0)
    assert set(outcome.changes.remove) == {"b1", "b2"}
    assert outcome.bindings == ()


def test_wildcard_with_an_old_cseq_fails_with_500() -> None:
    outcome = run([binding(cseq=9)], cseq=3, contacts="*", expires=0)
    assert outcome.status == 500 and outcome.changes.empty


def test_query_changes_nothing_and_lists_live_bindings() -> None:
    live = binding(id="b1")
    gone = binding("sip:alice@192.0.2.11", id="b2", expires_at=T0 - 1)
    outcome = run([live, gone], contacts=None)
    assert outcome.changes.empty
    assert outcome.bindings == (live,)


def test_expired_bindings_count_as_absent_and_are_cleared() -> None:
    gone = binding(expires_at=T0 - 1, cseq=99)
    outcome = run([gone], cseq=1)
    assert outcome.ok
    assert outcome.changes.remove == ("b1",)
    assert [b.id for b in outcome.changes.put] == ["n100"]


#: The source of a REGISTER after the phone's NAT mapping changed.
NEW_PORT: Final = Source("udp", "198.51.100.7", 40999)


def test_same_call_id_from_a_new_nat_port_replaces_the_old_binding() -> None:
    old = binding("sip:alice@198.51.100.7:40001", cseq=1)
    outcome = run([old], source=NEW_PORT, cseq=2, contacts="<sip:alice@198.51.100.7:40999>")
    assert outcome.changes.remove == ("b1",)
    assert [b.contact for b in after([old], outcome)] == ["sip:alice@198.51.100.7:40999"]


def test_replacing_by_call_id_still_honours_cseq_order() -> None:
    old = binding("sip:alice@198.51.100.7:40001", cseq=7)
    outcome = run([old], source=NEW_PORT, cseq=3, contacts="<sip:alice@198.51.100.7:40999>")
    assert outcome.status == 500


def test_same_call_id_from_the_same_source_adds_a_contact() -> None:
    # RFC 3261 10.2.1.2: a UA adds a binding under its one Call-ID (10.2.4).
    old = binding("sip:alice@198.51.100.7:40001", cseq=7)
    outcome = run([old], source=old.source, cseq=3, contacts="<sip:alice@198.51.100.7:40999>")
    assert outcome.status == 200
    assert len(after([old], outcome)) == 2


def test_same_instance_and_reg_id_replaces_even_with_a_new_call_id() -> None:
    instance = "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"
    old = binding("sip:alice@198.51.100.7:40001", instance=instance, reg_id=1, call_id="boot1")
    other_flow = binding(
        "sip:alice@198.51.100.7:40002", id="b2", instance=instance, reg_id=2, call_id="boot1"
    )
    contact = f'<sip:alice@198.51.100.7:41000>;+sip.instance="{instance}";reg-id=1'
    outcome = run([old, other_flow], call_id="boot2", contacts=contact)
    assert outcome.changes.remove == ("b1",)
    assert {b.id for b in after([old, other_flow], outcome)} == {"b2", "n100"}


def test_different_device_with_another_call_id_adds_a_binding() -> None:
    old = binding("sip:alice@192.0.2.10:5060")
    outcome = run([old], call_id="desk-phone", contacts="<sip:alice@192.0.2.20>")
    assert outcome.changes.remove == ()
    assert len(after([old], outcome)) == 2


def test_refreshing_one_of_two_contacts_keeps_the_other() -> None:
    a = binding("sip:alice@192.0.2.10", id="b1")
    b = binding("sip:alice@192.0.2.11", id="b2")
    outcome = run([a, b], cseq=2, contacts="<sip:alice@192.0.2.10>")
    assert outcome.changes.remove == ()
    assert len(after([a, b], outcome)) == 2


def test_max_contacts_reject_policy_answers_403() -> None:
    current = [binding(f"sip:alice@192.0.2.{i}", id=f"b{i}", call_id=f"c{i}") for i in range(2)]
    outcome = run(
        current,
        call_id="new",
        contacts="<sip:alice@192.0.2.50>",
        setting={"max_contacts": 2, "max_contacts_policy": "reject"},
    )
    assert outcome.status == 403 and outcome.changes.empty


def test_max_contacts_evict_oldest_removes_the_least_recently_refreshed() -> None:
    current = [
        binding("sip:alice@192.0.2.1", id="b1", call_id="c1", updated_at=T0 - 10),
        binding("sip:alice@192.0.2.2", id="b2", call_id="c2", updated_at=T0 - 500),
    ]
    outcome = run(
        current,
        call_id="new",
        contacts="<sip:alice@192.0.2.50>",
        setting={"max_contacts": 2, "max_contacts_policy": "evict_oldest"},
    )
    assert outcome.ok
    assert [b.id for b in outcome.evicted] == ["b2"]
    assert outcome.changes.remove == ("b2",)
    assert {b.id for b in outcome.bindings} == {"b1", "n100"}


def test_more_contacts_in_one_request_than_allowed_is_403_even_when_evicting() -> None:
    outcome = run(
        [],
        contacts=["<sip:alice@192.0.2.1>", "<sip:alice@192.0.2.2>", "<sip:alice@192.0.2.3>"],
        setting={"max_contacts": 2, "max_contacts_policy": "evict_oldest"},
    )
    assert outcome.status == 403


def test_refresh_is_allowed_when_already_over_a_lowered_limit() -> None:
    current = [binding(f"sip:alice@192.0.2.{i}", id=f"b{i}", call_id=f"c{i}") for i in range(3)]
    outcome = run(
        current,
        call_id="c0",
        cseq=2,
        contacts="<sip:alice@192.0.2.0>",
        setting={"max_contacts": 1, "max_contacts_policy": "reject"},
    )
    assert outcome.ok


def test_bindings_are_listed_by_q_then_most_recent() -> None:
    current = [
        binding("sip:alice@192.0.2.1", id="low", q=0.1, call_id="c1", updated_at=T0 - 1),
        binding("sip:alice@192.0.2.2", id="old", q=0.9, call_id="c2", updated_at=T0 - 50),
        binding("sip:alice@192.0.2.3", id="new", q=0.9, call_id="c3", updated_at=T0 - 5),
    ]
    outcome = run(current, contacts=None)
    assert [b.id for b in outcome.bindings] == ["new", "old", "low"]


def test_an_instance_in_other_letter_case_is_the_same_device() -> None:
    # RFC 5626 4.1 / RFC 4122 3: a UUID URN compares without case.
    lower = "<urn:uuid:00000000-0000-1000-8000-aabbccddeeff>"
    old = binding("sip:alice@198.51.100.7:40001", instance=lower, reg_id=1, call_id="boot1")
    contact = f'<sip:alice@198.51.100.7:41000>;+sip.instance="{lower.upper()}";reg-id=1'
    outcome = run([old], call_id="boot2", contacts=contact)
    assert outcome.changes.remove == ("b1",)
    assert len(after([old], outcome)) == 1


def test_an_instance_key_ignores_the_brackets_and_the_case_of_a_uuid() -> None:
    from centrex.registrar.rules import instance_key

    assert instance_key("urn:uuid:ABCD-EF") == instance_key("<urn:uuid:abcd-ef>")
    assert instance_key("<URN:foo:Bar>") == instance_key("urn:FOO:Bar")
    assert instance_key("<urn:foo:Bar>") != instance_key("<urn:foo:bar>")


def test_through_an_edge_proxy_the_same_call_id_still_replaces() -> None:
    # With Path every REGISTER comes from the edge proxy: the source tells
    # nothing, and the same Call-ID is the same device, as before.
    old = binding("sip:alice@198.51.100.7:40001", cseq=1, path=("<sip:edge.example.net;lr>",))
    outcome = run(
        [old],
        source=old.source,
        cseq=2,
        contacts="<sip:alice@198.51.100.7:40999>",
        extra=("Path: <sip:edge.example.net;lr>", "Supported: path"),
    )
    assert outcome.changes.remove == ("b1",)
