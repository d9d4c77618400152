"""The transition tables are well formed, and the engine ignores what they do not list."""

from __future__ import annotations

from types import ModuleType

import pytest

from centrex.transaction import invite_client, invite_server, non_invite_client, non_invite_server
from centrex.transaction.engine import Engine
from centrex.transaction.machine import Backoff, Do, RestartAtT2, Start, Stop
from centrex.transaction.timers import TimerConfig
from centrex.transaction.transaction import ClientTransaction, ServerTransaction
from tests.transaction.helpers import PEER, request

MODULES = [invite_client, non_invite_client, invite_server, non_invite_server]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_table_uses_only_its_own_states_and_inputs(module: ModuleType) -> None:
    for (state, event), (next_state, actions) in module.TABLE.items():
        assert isinstance(state, module.State) and isinstance(next_state, module.State)
        assert isinstance(event, module.Input)
        for action in actions:
            assert isinstance(action, Do | Start | Backoff | RestartAtT2 | Stop)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_terminated_state_has_no_way_out_and_every_state_is_reachable(module: ModuleType) -> None:
    machine = module.MACHINE
    assert not [key for key in module.TABLE if key[0] is machine.terminated]
    reached = {machine.initial}
    frontier = [machine.initial]
    while frontier:
        state = frontier.pop()
        for (source, _), (target, _) in module.TABLE.items():
            if source is state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(module.State)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_timer_the_table_starts_has_an_input_and_fires_somewhere(module: ModuleType) -> None:
    machine = module.MACHINE
    started = {
        action.timer
        for _, actions in module.TABLE.values()
        for action in actions
        if isinstance(action, Start)
    }
    assert started == set(machine.timer_inputs)
    fired = {event for (_, event) in module.TABLE}
    assert set(machine.timer_inputs.values()) <= fired


@pytest.mark.parametrize("status", range(100, 700, 37))
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_status_100_to_699_has_an_input(module: ModuleType, status: int) -> None:
    assert isinstance(module.classify(status), module.Input)


@pytest.mark.parametrize("status", [0, 99, 700, 999])
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_status_outside_100_to_699_has_no_input(module: ModuleType, status: int) -> None:
    assert module.classify(status) is None


def test_input_not_in_table_is_ignored_not_an_error() -> None:
    engine = Engine(TimerConfig())
    tx = ServerTransaction(
        engine, non_invite_server.MACHINE, request("OPTIONS"), reliable=False, peer=PEER, key=("k",)
    )
    assert engine.feed(tx, non_invite_server.Input.TIMER_J, 0.0) is None
    assert tx.state is non_invite_server.State.TRYING
    assert engine.outputs == [] and engine.ignored == 1


def test_inputs_after_termination_are_ignored() -> None:
    engine = Engine(TimerConfig())
    tx = ClientTransaction(
        engine, non_invite_client.MACHINE, request("OPTIONS"), reliable=True, peer=PEER, key=("k",)
    )
    engine.feed(tx, non_invite_client.Input.START, 0.0)
    engine.feed(tx, non_invite_client.Input.TRANSPORT_ERROR, 0.1)
    assert tx.terminated
    for event in non_invite_client.Input:
        assert engine.feed(tx, event, 1.0) is None


def test_invite_machines_follow_rfc_6026_accepted_state() -> None:
    client = invite_client.TABLE[(invite_client.State.PROCEEDING, invite_client.Input.SUCCESS)]
    server = invite_server.TABLE[(invite_server.State.PROCEEDING, invite_server.Input.TU_SUCCESS)]
    assert client[0] is invite_client.State.ACCEPTED
    assert server[0] is invite_server.State.ACCEPTED
