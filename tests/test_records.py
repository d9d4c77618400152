"""quick_init: a frozen, slotted dataclass built faster, and otherwise the same."""

from __future__ import annotations

import dataclasses
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


def test_the_classes_of_the_hot_path_use_it() -> None:
    from centrex.registrar.binding import Binding
    from centrex.transport.address import Peer

    for cls in (Peer, Binding):
        # The dataclass's own __init__ goes through object.__setattr__.
        assert "__dataclass_builtins_object__" not in cls.__init__.__code__.co_names
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"


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
