"""The records of the hot path: written __init__s, and enumerations hashed in C."""

from __future__ import annotations

import dataclasses
import inspect

import pytest


def _hot_records() -> list[type]:
    from centrex.auth.challenge import Authenticated, Challenge, Exempt, Forbidden, Trusted
    from centrex.proxy.core import Inbound, _Target
    from centrex.registrar.binding import AorRemoval, Binding, Changes, Source
    from centrex.registrar.events import AorEvent
    from centrex.registrar.request import ContactRequest, RegisterRequest, Target
    from centrex.registrar.rules import Outcome
    from centrex.sip.fields import CSeq
    from centrex.transaction import events
    from centrex.transport.address import LocalSocket, Peer
    from centrex.transport.rules import Destination

    return [
        AorEvent, AorRemoval, Binding, Changes, ContactRequest, CSeq, Destination,
        Inbound, LocalSocket, Outcome, Peer, RegisterRequest, Source, Target,
        _Target, Trusted, Exempt, Authenticated, Challenge, Forbidden,
        events.RequestEvent, events.Resend, events.ResponseEvent, events.Send,
        events.Terminated, events.TimeoutEvent, events.TimerCEvent,
        events.TransportErrorEvent,
    ]  # fmt: skip


@pytest.mark.parametrize("cls", _hot_records(), ids=lambda cls: cls.__name__)
def test_the_records_of_the_hot_path_have_a_written_init_like_the_dataclass_one(
    cls: type,
) -> None:
    """A record made per message has its ``__init__`` in the source, which a
    compiled build compiles (the dataclass's own is made at import and runs
    interpreted, ~15x slower): the same parameters and defaults as the
    dataclass's, and the class as frozen as before."""
    from centrex import native

    init = cls.__init__
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    if native.mode == "compiled":
        # A compiled method, not a function made by exec at import.
        assert not hasattr(init, "__code__")
        return
    assert init.__code__.co_filename != "<string>"
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(init).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in fields]
    for param, f in zip(params, fields, strict=True):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert param.default == expected, f.name
    assert all(f.default_factory is dataclasses.MISSING for f in fields)


def test_identity_enums_keep_enum_behaviour_and_hash_in_c() -> None:
    import pickle

    from centrex.proxy.context import BranchState
    from centrex.transaction.machine import Do
    from centrex.transaction.timers import Timer

    for enum in (Timer, Do, BranchState):
        assert enum.__hash__ is object.__hash__
    assert Timer("A") is Timer.A and Timer["B"] is Timer.B
    assert pickle.loads(pickle.dumps(Timer.J)) is Timer.J
    assert {Timer.A: 1}[Timer.A] == 1 and Timer.A != Timer.B
    assert Timer.__doc__ is not None and "RFC 3261" in Timer.__doc__
