"""Forking and best-response selection (RFC 3261 16.6, 16.7, 16.10)."""

from __future__ import annotations

from centrex.proxy.context import (
    Branch,
    BranchState,
    Cancel,
    Final,
    Forward,
    ResponseContext,
    Start,
)
from centrex.sip.message import Response


def response(status: int, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response.new(status, "x", headers or [])


def started(actions: list[object]) -> list[str]:
    (start,) = [a for a in actions if isinstance(a, Start)]
    return [b.target for b in start.branches]


def branch_of(context: ResponseContext[str], target: str) -> Branch[str]:
    return next(b for b in context.branches if b.target == target)


def test_equal_q_targets_are_tried_in_parallel() -> None:
    context = ResponseContext.fork([("a", None), ("b", 1.0)])
    assert started(context.start()) == ["a", "b"]


def test_lower_q_targets_wait_until_the_higher_group_fails() -> None:
    context = ResponseContext.fork([("low", 0.1), ("high", 0.9)])
    assert started(context.start()) == ["high"]
    assert branch_of(context, "low").state is BranchState.WAITING
    actions = context.final(branch_of(context, "high"), response(486))
    assert started(actions) == ["low"]


def test_provisional_is_forwarded_but_100_is_not() -> None:
    context = ResponseContext.fork([("a", None)])
    context.start()
    a = branch_of(context, "a")
    assert context.provisional(a, response(100)) == []
    ringing = response(180)
    assert context.provisional(a, ringing) == [Forward(ringing)]


def test_2xx_is_forwarded_and_the_other_branches_cancelled() -> None:
    context = ResponseContext.fork([("a", None), ("b", None)])
    context.start()
    a, b = branch_of(context, "a"), branch_of(context, "b")
    context.provisional(b, response(180))
    ok = response(200)
    assert context.final(a, ok) == [Forward(ok), Cancel(b)]
    # A second 2xx (the other fork answered too) is forwarded as well (16.7 step 5).
    ok2 = response(200)
    assert context.final(b, ok2) == [Forward(ok2)]


def test_cancel_waits_for_a_provisional_response() -> None:
    context = ResponseContext.fork([("a", None), ("b", None)])
    context.start()
    a, b = branch_of(context, "a"), branch_of(context, "b")
    context.final(a, response(200))
    assert b.cancel_wanted and not b.cancel_sent
    assert Cancel(b) in context.provisional(b, response(100))


def test_6xx_cancels_the_others_and_is_the_answer_once_they_end() -> None:
    context = ResponseContext.fork([("a", None), ("b", None)])
    context.start()
    a, b = branch_of(context, "a"), branch_of(context, "b")
    context.provisional(b, response(180))
    decline = response(603)
    assert context.final(a, decline) == [Cancel(b)]
    assert context.final(b, response(487)) == [Final(decline, 603)]


def test_a_2xx_after_a_6xx_still_wins() -> None:
    context = ResponseContext.fork([("a", None), ("b", None)])
    context.start()
    a, b = branch_of(context, "a"), branch_of(context, "b")
    context.final(a, response(603))
    ok = response(200)
    assert context.final(b, ok) == [Forward(ok)]


def test_6xx_starts_no_further_q_group() -> None:
    context = ResponseContext.fork([("a", 1.0), ("later", 0.5)])
    context.start()
    decline = response(600)
    assert context.final(branch_of(context, "a"), decline) == [Final(decline, 600)]


def test_best_response_prefers_the_lowest_class_and_a_real_answer_over_timeouts() -> None:
    context = ResponseContext.fork([("a", None), ("b", None), ("c", None)])
    context.start()
    context.final(branch_of(context, "a"), response(503))
    context.final(branch_of(context, "b"), response(408))
    busy = response(486)
    assert context.final(branch_of(context, "c"), busy) == [Final(busy, 486)]


def test_no_answer_at_all_is_408() -> None:
    context = ResponseContext.fork([("a", None)])
    context.start()
    assert context.timeout(branch_of(context, "a")) == [Final(None, 408)]


def test_callers_cancel_cancels_ringing_branches_and_drops_waiting_ones() -> None:
    context = ResponseContext.fork([("a", 1.0), ("later", 0.5)])
    context.start()
    a = branch_of(context, "a")
    context.provisional(a, response(180))
    assert context.cancel_all() == [Cancel(a)]
    terminated = response(487)
    assert context.final(a, terminated) == [Final(terminated, 487)]
    assert branch_of(context, "later").state is BranchState.DONE


def test_cancel_before_any_branch_answers_is_487_at_once_when_nothing_is_pending() -> None:
    context: ResponseContext[str] = ResponseContext.fork([])
    assert context.cancel_all() == [Final(None, 487)]


def test_a_branch_silent_at_the_cancel_is_waited_for_and_cancelled_when_it_rings() -> None:
    # 9.1: no CANCEL before a provisional; 16.7 step 6: no final response
    # upstream while a branch is pending (it may still answer 2xx).
    context = ResponseContext.fork([("a", None)])
    context.start()
    a = branch_of(context, "a")
    assert context.cancel_all() == []
    ringing = response(180)
    assert context.provisional(a, ringing) == [Cancel(a), Forward(ringing)]
    terminated = response(487)
    assert context.final(a, terminated) == [Final(terminated, 487)]


def test_a_branch_silent_at_the_cancel_that_times_out_ends_the_request_with_487() -> None:
    context = ResponseContext.fork([("a", None)])
    context.start()
    a = branch_of(context, "a")
    assert context.cancel_all() == []
    assert context.timeout(a) == [Final(None, 487)]


def test_ringing_timeout_cancels_a_ringing_branch() -> None:
    context = ResponseContext.fork([("a", None)])
    context.start()
    a = branch_of(context, "a")
    context.provisional(a, response(180))
    assert context.ringing_timeout(a) == [Cancel(a)]


def test_challenges_of_every_branch_are_collected() -> None:
    context = ResponseContext.fork([("a", None), ("b", None)])
    context.start()
    context.final(
        branch_of(context, "a"), response(401, [("WWW-Authenticate", 'Digest realm="a"')])
    )
    actions = context.final(
        branch_of(context, "b"), response(407, [("Proxy-Authenticate", 'Digest realm="b"')])
    )
    assert isinstance(actions[0], Final)
    assert context.challenges() == [
        ("WWW-Authenticate", 'Digest realm="a"'),
        ("Proxy-Authenticate", 'Digest realm="b"'),
    ]


def test_a_branch_that_rang_out_answers_408_not_its_487() -> None:
    context = ResponseContext.fork([("a", None)])
    context.start()
    a = branch_of(context, "a")
    context.provisional(a, response(180))
    context.ringing_timeout(a)
    assert context.final(a, response(487)) == [Final(None, 408)]


def test_a_branch_that_rang_out_moves_on_to_the_next_q_group() -> None:
    context = ResponseContext.fork([("desk", 1.0), ("mobile", 0.5)])
    context.start()
    desk = branch_of(context, "desk")
    context.provisional(desk, response(180))
    context.ringing_timeout(desk)
    assert started(context.final(desk, response(487))) == ["mobile"]


def test_a_cancelled_request_ends_with_487_whatever_a_silent_branch_then_failed_with() -> None:
    # 16.10: the caller who cancelled gets 487, not the 503 (made 500) of a
    # branch whose transport failed after the CANCEL.
    context = ResponseContext.fork([("a", None)])
    context.start()
    a = branch_of(context, "a")
    assert context.cancel_all() == []
    assert context.final(a, response(503)) == [Final(None, 487)]
