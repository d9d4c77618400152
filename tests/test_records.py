"""quick_init: a frozen, slotted dataclass built faster, and otherwise the same."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import InitVar, dataclass, field

import pytest

from centrex.records import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Hop:
    transport: str
    host: str
    port: int = 5060
    params: dict[str, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        if self.transport not in ("udp", "tcp"):
            raise ValueError(f"bad transport {self.transport!r}")


def test_fields_defaults_and_factories_are_those_of_the_dataclass() -> None:
    hop = Hop("udp", "192.0.2.1")
    assert (hop.transport, hop.host, hop.port, hop.params) == ("udp", "192.0.2.1", 5060, {})
    assert Hop("tcp", "h", 5061, {"lr": ""}) == Hop(
        transport="tcp", host="h", port=5061, params={"lr": ""}
    )
    # Each object gets a fresh value from the factory, never a shared one.
    assert Hop("udp", "a").params is not Hop("udp", "a").params
    assert repr(hop) == "Hop(transport='udp', host='192.0.2.1', port=5060, params={}, seen=[])"
    assert dataclasses.replace(hop, port=1).port == 1


def test_post_init_still_checks_and_the_class_stays_frozen() -> None:
    with pytest.raises(ValueError, match="bad transport"):
        Hop("sctp", "h")
    hop = Hop("udp", "h")
    with pytest.raises(dataclasses.FrozenInstanceError):
        hop.host = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Hop("udp")  # type: ignore[call-arg]


def test_a_class_it_cannot_speed_up_keeps_its_own_init() -> None:
    @dataclass(frozen=True, slots=True)
    class Flagged:
        name: str
        hidden: int = field(default=0, init=False)

    before = Flagged.__init__
    assert quick_init(Flagged).__init__ is before

    @dataclass(slots=True)
    class Mutable:
        name: str

    with pytest.raises(TypeError, match="frozen, slotted"):
        quick_init(Mutable)


def _hot_records() -> list[type]:
    from centrex.proxy.core import Inbound
    from centrex.registrar.binding import Binding, Source
    from centrex.registrar.events import AorEvent
    from centrex.registrar.request import ContactRequest, RegisterRequest, Target
    from centrex.registrar.rules import Outcome
    from centrex.sip.fields import CSeq
    from centrex.transaction import events
    from centrex.transport.address import LocalSocket, Peer
    from centrex.transport.rules import Destination

    return [
        AorEvent, Binding, ContactRequest, CSeq, Destination, Inbound, LocalSocket,
        Outcome, Peer, RegisterRequest, Source, Target, events.RequestEvent,
        events.Resend, events.ResponseEvent, events.Send, events.Terminated,
        events.TimeoutEvent, events.TimerCEvent, events.TransportErrorEvent,
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


def test_classes_whose_fields_it_cannot_fill_keep_the_dataclass_init() -> None:
    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        name: str
        scale: InitVar[int] = 1

        def __post_init__(self, scale: int) -> None:
            if scale < 0:
                raise ValueError("negative scale")

    before = WithInitVar.__init__
    assert quick_init(WithInitVar).__init__ is before
    assert WithInitVar("a", 2).name == "a"

    @dataclass(frozen=True, slots=True)
    class Base:
        host: str

    @dataclass(frozen=True, slots=True)
    class Derived(Base):
        port: int = 5060

    before = Derived.__init__
    assert quick_init(Derived).__init__ is before
    assert Derived("h", 1) == Derived(host="h", port=1)


def test_field_names_do_not_clash_with_the_generated_code() -> None:
    @quick_init
    @dataclass(frozen=True, slots=True)
    class Odd:
        _set0: int
        _default1: str = "x"
        _FACTORY: list[int] = field(default_factory=list)

    odd = Odd(5, "y", [1])
    assert (odd._set0, odd._default1, odd._FACTORY) == (5, "y", [1])
    assert Odd(1)._FACTORY == []
