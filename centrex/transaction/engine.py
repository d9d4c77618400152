"""The engine shared by the four machines: looks a transition up, carries out its actions.

``Engine.feed`` finds (state, input) in the machine's table; an input the table
does not list is ignored and logged, never an error (a late retransmission, a
response in a state that expects none). The actions are the closed set of
``centrex.transaction.machine``: sends and TU events become outputs, timer
actions arm or disarm entries of the one ``TimerQueue`` every transaction of the
layer shares. A zero duration (Timers D, I, J, K on reliable transports, RFC
3261 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2) fires in the same step, so such a
transaction ends as soon as the RFC says, not on the next clock tick. A timer
re-armed when it fires (A, E, G) counts its new interval from the ``now`` it was
handled at, so a late wake-up delays the schedule instead of bursting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import Final

from centrex.sip.build import make_ack, make_response
from centrex.sip.message import Message, Request, Response
from centrex.transaction.events import (
    Output,
    RequestEvent,
    ResponseEvent,
    Send,
    Terminated,
    TimeoutEvent,
    TimerCEvent,
    TransportErrorEvent,
)
from centrex.transaction.machine import Action, Actions, Backoff, Do, RestartAtT2, Start, Stop
from centrex.transaction.timer_queue import TimerQueue
from centrex.transaction.timers import Timer, TimerConfig
from centrex.transaction.transaction import ClientTransaction, ServerTransaction, Transaction

logger: Final = logging.getLogger(__name__)

# Bound once: compiled, an enumeration's member is looked up by name at every use.
_TIMER_C: Final = Timer.C


class Engine:
    """Runs transactions' transitions against one config, one timer queue, one output list."""

    __slots__ = (
        "_durations",
        "config",
        "ignored",
        "on_terminated",
        "outputs",
        "queue",
        "send_trying",
    )

    def __init__(
        self,
        config: TimerConfig,
        *,
        send_trying: bool = True,
        on_terminated: Callable[[Transaction], None] | None = None,
    ) -> None:
        self.config = config
        # Every timer's duration on each kind of transport, worked out once
        # (the config is frozen): looked up for every timer armed, where the
        # config's own methods run interpreted (transaction/timers.py).
        self._durations: dict[tuple[Timer, bool], float | None] = {
            (timer, reliable): config.duration(timer, reliable=reliable)
            for timer in Timer
            for reliable in (False, True)
        }
        self.send_trying = send_trying
        self.on_terminated = on_terminated
        self.queue: TimerQueue[tuple[Transaction, Timer]] = TimerQueue()
        self.outputs: list[Output] = []
        self.ignored = 0  # inputs the tables do not list, for statistics

    # -- transitions --------------------------------------------------------------

    def accepts(self, tx: Transaction, event: Enum) -> bool:
        """True when ``event`` has a transition from ``tx``'s current state."""
        return (tx.state, event) in tx.machine.table

    def feed(
        self,
        tx: Transaction,
        event: Enum,
        now: float,
        *,
        message: Message | None = None,
        peer: object = None,
        timer: Timer | None = None,
    ) -> Actions | None:
        """Apply ``event`` to ``tx``; the actions run, or None when the table ignores it.

        ``message`` is the response received or given by the TU, or the request
        received (retransmission, ACK); ``peer`` is where a received request came
        from; ``timer`` the timer whose expiry ``event`` is.
        """
        entry = tx.machine.table.get((tx.state, event))
        if entry is None:
            self.ignored += 1
            logger.debug("%s: %s ignored in %s", tx.machine.name, event.value, tx.state.value)
            return None
        next_state, actions = entry
        tx.state = next_state
        due_now: list[Timer] = []
        for action in actions:
            self._run(tx, action, now, message, peer, timer, due_now)
        if next_state is tx.machine.terminated:
            self._terminate(tx)
        else:
            for zero in due_now:
                self.feed(tx, tx.machine.timer_inputs[zero], now, timer=zero)
        return actions

    def fire(self, tx: Transaction, timer: Timer, now: float, *, token: int | None = None) -> None:
        """``timer`` of ``tx`` expired (its queue entry, ``token``, was taken already)."""
        armed = tx._timers.get(timer)
        if armed is None or (token is not None and armed[1] != token):
            return
        del tx._timers[timer]
        self.feed(tx, tx.machine.timer_inputs[timer], now, timer=timer)

    def fire_due(self, tx: Transaction, now: float) -> None:
        """Fire the timers of ``tx`` due at ``now``, earliest first."""
        while tx._timers:
            timer, (deadline, token) = min(tx._timers.items(), key=lambda item: item[1])
            if deadline > now:
                return
            self.queue.cancel(token)
            self.fire(tx, timer, now, token=token)

    # -- actions ------------------------------------------------------------------

    def _run(
        self,
        tx: Transaction,
        action: Action,
        now: float,
        message: Message | None,
        peer: object,
        timer: Timer | None,
        due_now: list[Timer],
    ) -> None:
        if isinstance(action, Do):
            self._do(tx, action, message, peer, timer)
        elif isinstance(action, Start):
            duration = self._duration(tx, action.timer)
            if duration is None:
                self._disarm(tx, action.timer)
            elif duration <= 0:
                self._disarm(tx, action.timer)
                due_now.append(action.timer)
            else:
                self._arm(tx, action.timer, now, duration)
        elif isinstance(action, Backoff):
            last = tx._intervals.get(action.timer, self.config.t1)
            self._arm(tx, action.timer, now, self.config.backoff(last, cap_at_t2=action.cap_at_t2))
        elif isinstance(action, RestartAtT2):
            self._arm(tx, action.timer, now, self.config.t2)
        elif isinstance(action, Stop):
            self._disarm(tx, action.timer)

    def _do(
        self,
        tx: Transaction,
        action: Do,
        message: Message | None,
        peer: object,
        timer: Timer | None,
    ) -> None:
        out = self.outputs
        if action is Do.SEND_REQUEST:
            out.append(Send(tx, tx.request, tx.peer))
        elif action is Do.SEND_ACK:
            assert isinstance(tx, ClientTransaction) and isinstance(message, Response)
            if tx.ack is None:
                tx.ack = make_ack(tx.request, message)
            out.append(Send(tx, tx.ack, tx.peer))
        elif action is Do.SEND_TRYING:
            if self.send_trying:
                trying = make_response(tx.request, 100)
                tx.last_response = trying
                out.append(Send(tx, trying, tx.peer))
        elif action is Do.SEND_RESPONSE:
            assert isinstance(message, Response)
            tx.last_response = message
            out.append(Send(tx, message, tx.peer))
        elif action is Do.RESEND_RESPONSE:
            if tx.last_response is not None:
                out.append(Send(tx, tx.last_response, tx.peer))
        elif action is Do.PASS_RESPONSE:
            assert isinstance(tx, ClientTransaction) and isinstance(message, Response)
            tx.last_response = message
            out.append(ResponseEvent(tx, message))
        elif action is Do.PASS_REQUEST:
            assert isinstance(tx, ServerTransaction)
            request = message if isinstance(message, Request) else tx.request
            out.append(RequestEvent(tx, request, tx.peer if peer is None else peer))
        elif action is Do.TIMEOUT:
            assert timer is not None
            out.append(TimeoutEvent(tx, timer))
        elif action is Do.TRANSPORT_ERROR:
            out.append(TransportErrorEvent(tx))
        elif action is Do.TIMER_C:
            assert isinstance(tx, ClientTransaction)
            out.append(TimerCEvent(tx))

    # -- timers -------------------------------------------------------------------

    def _duration(self, tx: Transaction, timer: Timer) -> float | None:
        if timer is _TIMER_C and not (isinstance(tx, ClientTransaction) and tx.timer_c):
            return None
        return self._durations[(timer, tx.reliable)]

    def _arm(self, tx: Transaction, timer: Timer, now: float, interval: float) -> None:
        self._disarm(tx, timer)
        deadline = now + interval
        tx._timers[timer] = (deadline, self.queue.schedule(deadline, (tx, timer)))
        tx._intervals[timer] = interval

    def _disarm(self, tx: Transaction, timer: Timer) -> None:
        armed = tx._timers.pop(timer, None)
        if armed is not None:
            self.queue.cancel(armed[1])

    def end(self, tx: Transaction) -> None:
        """Terminate ``tx`` now, whatever its state (``TransactionLayer.retire``)."""
        tx.state = tx.machine.terminated
        self._terminate(tx)

    def _terminate(self, tx: Transaction) -> None:
        for _, token in tx._timers.values():
            self.queue.cancel(token)
        tx._timers.clear()
        self.outputs.append(Terminated(tx))
        if self.on_terminated is not None:
            self.on_terminated(tx)
