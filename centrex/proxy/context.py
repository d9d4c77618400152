"""The response context of a stateful proxy (RFC 3261 16.6 - 16.10), without I/O.

One ``ResponseContext`` exists per proxied request. It knows the targets
(grouped by q-value: parallel within a group, serially across groups, 16.6),
each branch's state, and every final response received, and tells its caller
what to do as responses, timeouts and CANCELs come in:

* ``Start(branches)``: send the request to these targets now;
* ``Forward(response)``: send this response upstream now (provisionals, every
  2xx: 16.7 steps 5 and 9);
* ``Cancel(branch)``: cancel this branch (16.7 step 10, 16.10), sent once the
  branch has had a provisional response (9.1);
* ``Final(response, status)``: the best response was chosen (16.7 step 6):
  send ``response`` upstream, or, when ``response`` is None, build one with
  ``status`` (408 when no branch answered, 480/487 as the caller decides).

The caller owns messages and transactions; this object only decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from centrex.records import IdentityEnum
from centrex.sip.message import Response

T = TypeVar("T")


class BranchState(IdentityEnum):
    WAITING = "waiting"  # in a later serial group, not sent yet
    CALLING = "calling"  # sent, no provisional response yet
    PROCEEDING = "proceeding"  # a provisional response came: CANCEL may be sent
    DONE = "done"  # a final response (or a timeout) ended it


@dataclass(eq=False)
class Branch(Generic[T]):
    """One target of the fork. ``target`` is the caller's (e.g. a Binding)."""

    target: T
    q: float
    state: BranchState = BranchState.WAITING
    cancel_wanted: bool = False
    cancel_sent: bool = False
    rang_out: bool = False  # Timer C cancelled it: its 487 means "no answer" (408)
    final: Response | None = None
    transaction: object = None
    #: Its share of the request's Max-Breadth (RFC 5393 5.3.3.1).
    breadth: int = 1


@dataclass(frozen=True, slots=True)
class Start(Generic[T]):
    branches: Sequence[Branch[T]]


@dataclass(frozen=True, slots=True)
class Forward:
    response: Response


@dataclass(frozen=True, slots=True)
class Cancel(Generic[T]):
    branch: Branch[T]


@dataclass(frozen=True, slots=True)
class Final:
    response: Response | None
    status: int


Action = Start[T] | Forward | Cancel[T] | Final


#: The Max-Breadth of a request that carries none (RFC 5393 5.3.3.1: "SHOULD ... 60").
DEFAULT_MAX_BREADTH = 60

#: Final statuses that tell the caller how to try again, preferred within their
#: class (16.7 step 6: "401, 407, 415, 420, and 484 if the 4xx class is chosen").
_RESUBMISSION = frozenset({401, 407, 415, 420, 484})


def _q_groups(branches: list[Branch[T]], breadth: int) -> list[list[Branch[T]]]:
    """Parallel groups, highest q first; a group of more targets than
    ``breadth`` is split into groups tried one after another, so that no more
    than ``breadth`` branches are ever pending, and the Max-Breadth values
    they carry add up to at most ``breadth`` (RFC 5393 5.3.3.1)."""
    by_q: list[list[Branch[T]]] = []
    for branch in sorted(branches, key=lambda b: -b.q):
        if by_q and by_q[-1][0].q == branch.q:
            by_q[-1].append(branch)
        else:
            by_q.append([branch])
    groups: list[list[Branch[T]]] = []
    for group in by_q:
        for start in range(0, len(group), breadth):
            part = group[start : start + breadth]
            share, extra = divmod(breadth, len(part))
            for i, branch in enumerate(part):
                branch.breadth = share + (1 if i < extra else 0)
            groups.append(part)
    return groups


@dataclass(eq=False)
class ResponseContext(Generic[T]):
    """Forking and best-response selection for one proxied request (16.6, 16.7)."""

    branches: list[Branch[T]]
    groups: list[list[Branch[T]]] = field(default_factory=list)
    next_group: int = 0
    final_sent: bool = False
    cancelled: bool = False  # the caller's CANCEL arrived (16.10)
    declined: bool = False  # a 6xx arrived: no new branches (16.7 step 10)
    answered_2xx: bool = False

    @classmethod
    def fork(
        cls, targets: Iterable[tuple[T, float | None]], breadth: int = DEFAULT_MAX_BREADTH
    ) -> ResponseContext[T]:
        """A context for ``targets`` with their q-values (None counts as 1.0),
        for a request of Max-Breadth ``breadth`` (at least 1)."""
        if breadth < 1:
            raise ValueError("a request of Max-Breadth 0 is not forwarded (RFC 5393: 440)")
        branches = [Branch(target, 1.0 if q is None else q) for target, q in targets]
        context = cls(branches)
        context.groups = _q_groups(branches, breadth)
        return context

    # -- driving ---------------------------------------------------------------------

    def start(self) -> list[Action[T]]:
        """Start the first q-group (16.6: highest q first)."""
        return self._start_next_group()

    def _start_next_group(self) -> list[Action[T]]:
        if self.next_group >= len(self.groups):
            return []
        group = self.groups[self.next_group]
        self.next_group += 1
        for branch in group:
            branch.state = BranchState.CALLING
        return [Start(group)]

    def provisional(self, branch: Branch[T], response: Response) -> list[Action[T]]:
        """A 1xx on ``branch``: forward it unless a 100 (16.7 step 5); a CANCEL wanted
        before now can be sent from here on (9.1)."""
        actions: list[Action[T]] = []
        given_up = branch.state is BranchState.DONE  # (_give_up_silent, Timer C)
        if branch.state is BranchState.CALLING:
            branch.state = BranchState.PROCEEDING
        if branch.cancel_wanted and not branch.cancel_sent:
            branch.cancel_sent = True
            actions.append(Cancel(branch))
        if not self.final_sent and response.status != 100 and not given_up:
            actions.append(Forward(response))
        return actions

    def final(self, branch: Branch[T], response: Response) -> list[Action[T]]:
        """A final response on ``branch`` (16.7 steps 4-10)."""
        branch.state = BranchState.DONE
        status = response.status
        if 200 <= status < 300:
            # Every 2xx goes upstream at once, and the rest are cancelled.
            self.answered_2xx = True
            actions: list[Action[T]] = [Forward(response)]
            first = not self.final_sent
            self.final_sent = True
            if first:
                actions += self._cancel_pending()
            return actions
        if not (branch.rang_out and status == 487):
            branch.final = response
        if self.final_sent:
            return []
        if status >= 600 and not self.declined:
            # 16.7 step 5 / 10: a 6xx is not forwarded at once; the pending
            # branches are cancelled, no new ones start, and the best answer
            # (a 2xx that still comes, else the 6xx) goes when all are done.
            self.declined = True
            cancels = self._cancel_pending()
            self._give_up_silent()
            return [*cancels, *self._maybe_done()]
        return self._maybe_done()

    def timeout(self, branch: Branch[T]) -> list[Action[T]]:
        """No final response on ``branch`` (Timer B or a transport error): 408 (16.7 step 2)."""
        if branch.state is BranchState.DONE:
            return []
        branch.state = BranchState.DONE
        if self.final_sent:
            return []
        return self._maybe_done()

    def ringing_timeout(self, branch: Branch[T]) -> list[Action[T]]:
        """Timer C fired on ``branch`` (16.8): cancel it, or give it up if it never rang.

        The 487 the callee then sends counts as no answer: the caller gets 408,
        or the next q-group is tried.
        """
        branch.rang_out = True
        if branch.state is BranchState.PROCEEDING:
            return self._cancel(branch)
        # Never answered: given up as if it had answered 408 (16.8), and
        # cancelled should it ring after all, so no phone rings for a
        # caller who has been told no one answered.
        branch.cancel_wanted = True
        return self.timeout(branch)

    def cancel_all(self) -> list[Action[T]]:
        """The caller cancelled the request (16.10): cancel every pending branch.

        Branches not yet started are dropped; when nothing is left pending the
        request is answered with 487. A branch that has not answered at all
        is still waited for (9.1: its CANCEL goes once it rings): it may yet
        answer 2xx, and the caller must not have had a 487 first. It ends
        as the others do, with its 487, or when its transaction times out
        (then the caller gets 487).
        """
        self.cancelled = True
        for group in self.groups[self.next_group :]:
            for branch in group:
                branch.state = BranchState.DONE
        self.next_group = len(self.groups)
        actions = self._cancel_pending()
        if not self.final_sent and not self._pending():
            self.final_sent = True
            actions.append(Final(None, 487))
        return actions

    # -- helpers ---------------------------------------------------------------------------

    def _pending(self) -> list[Branch[T]]:
        return [
            b for b in self.branches if b.state in (BranchState.CALLING, BranchState.PROCEEDING)
        ]

    def _give_up_silent(self) -> None:
        """After a 6xx, stop waiting for the branches that have not answered
        at all (no provisional, so no CANCEL may go yet, 9.1): the caller
        hears the 6xx now instead of at Timer B, 32 s later. Their CANCEL is
        still sent should one of them ring after all; a 2xx from one still
        goes upstream (16.7 step 5)."""
        for branch in self.branches:
            if branch.state is BranchState.CALLING:
                branch.state = BranchState.DONE
                branch.rang_out = True  # (its 487, if it comes, is no answer)

    def _cancel(self, branch: Branch[T]) -> list[Action[T]]:
        branch.cancel_wanted = True
        if branch.state is BranchState.PROCEEDING and not branch.cancel_sent:
            branch.cancel_sent = True
            return [Cancel(branch)]
        return []

    def _cancel_pending(self) -> list[Action[T]]:
        actions: list[Action[T]] = []
        for branch in self._pending():
            actions += self._cancel(branch)
        return actions

    def _maybe_done(self) -> list[Action[T]]:
        """All branches of the group ended without 2xx/6xx: next group, or the best answer."""
        if self._pending():
            return []
        if not self.cancelled and not self.declined:
            started = self._start_next_group()
            if started:
                return started
        self.final_sent = True
        best = self.best_response()
        if self.cancelled and (best is None or (best.status // 100 != 6 and best.status != 487)):
            # The caller cancelled: its INVITE ends with 487 (16.10), not the
            # 408 or 500 of a branch that timed out or failed meanwhile.
            return [Final(None, 487)]
        if best is None:
            return [Final(None, 408)]
        return [Final(best, best.status)]

    def best_response(self) -> Response | None:
        """16.7 step 6: a 6xx if any, else the lowest class; within a class, prefer
        one that tells the caller how to try again (401, 407, 415, 420, 484),
        then an answer from the callee over a timeout or an overload (408, 503)."""
        finals = [b.final for b in self.branches if b.final is not None]
        if not finals:
            return None
        six = [r for r in finals if r.status >= 600]
        if six:
            return six[0]
        lowest = min(r.status // 100 for r in finals)
        in_class = [r for r in finals if r.status // 100 == lowest]
        resubmit = [r for r in in_class if r.status in _RESUBMISSION]
        preferred = [r for r in in_class if r.status not in (408, 503)]
        return (resubmit or preferred or in_class)[0]

    def challenges(self) -> list[tuple[str, str]]:
        """Every WWW-/Proxy-Authenticate of the 401/407 finals (16.7 step 7)."""
        out: list[tuple[str, str]] = []
        for branch in self.branches:
            response = branch.final
            if response is None or response.status not in (401, 407):
                continue
            for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                out += [(name, value) for value in response.get_all(name)]
        return out
