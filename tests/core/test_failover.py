"""The failover policy: outcome meanings, budgets, backoff, stops, continuations."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.failover import (
    Action,
    Failover,
    FailoverPolicy,
    Meaning,
    Stop,
    meaning,
    status_outcome,
)
from LLM_Mesh.core.retry import Backoff, RetryBudget
from LLM_Mesh.core.route_types import Outcome


def _fo(
    *,
    max_attempts: int = 3,
    max_failovers: int = 10,
    retry: RetryBudget | None = None,
    failover: RetryBudget | None = None,
    deadline: float = float("inf"),
) -> Failover:
    policy = FailoverPolicy(max_attempts, max_failovers, Backoff(0.02, 0.5, 2.0, 8))
    return Failover(
        policy, retry or RetryBudget(0.2, 10.0), failover or RetryBudget(1.0, 50.0), 0.0,
        deadline=deadline, trace=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        (Outcome.SUCCESS, Meaning.SUCCEEDED),
        (Outcome.CONNECT_ERROR, Meaning.REFUSED),
        (Outcome.OVERLOADED, Meaning.REFUSED),
        (Outcome.UNAVAILABLE, Meaning.REFUSED),
        (Outcome.TIMEOUT, Meaning.FAILED),
        (Outcome.SERVER_ERROR, Meaning.FAILED),
        (Outcome.CANCELLED, Meaning.NEUTRAL),
        (Outcome.REJECTED, Meaning.REJECTED),
    ],
)
def test_meaning(outcome: Outcome, kind: Meaning) -> None:
    assert meaning(outcome) is kind


def test_refusals_fail_over_at_once_from_the_failover_budget() -> None:
    retry, failover = RetryBudget(0.2, 10.0), RetryBudget(1.0, 50.0)
    fo = _fo(retry=retry, failover=failover)
    for node, outcome in (("a", Outcome.CONNECT_ERROR), ("b", Outcome.OVERLOADED),
                          ("c", Outcome.UNAVAILABLE)):  # fmt: skip
        fo.begin()
        step = fo.after(node, outcome, 1.0, 0.5)
        assert step.action is Action.RETRY and step.delay_s == 0.0
    assert retry.retries_in_window == 0 and failover.retries_in_window == 3
    assert fo.attempts == 3 and fo.worked == 0 and fo.refused == 3


def test_max_failovers_bounds_refusals() -> None:
    fo = _fo(max_failovers=2)
    actions = []
    for _ in range(3):
        fo.begin()
        actions.append(fo.after("n", Outcome.CONNECT_ERROR, 1.0, 0.5).action)
    assert actions == [Action.RETRY, Action.RETRY, Action.STOP]
    assert fo.stopped is Stop.MAX_FAILOVERS


def test_failures_back_off_and_stop_at_max_attempts() -> None:
    fo = _fo(max_attempts=3)
    delays = []
    for _ in range(2):
        fo.begin()
        step = fo.after("n", Outcome.SERVER_ERROR, 1.0, 1.0)
        assert step.action is Action.BACKOFF
        delays.append(step.delay_s)
    assert delays == [0.02, 0.04]  # doubling (full jitter: rand 1.0 is the whole delay)
    fo.begin()
    assert fo.after("n", Outcome.TIMEOUT, 1.0, 1.0).stop is Stop.MAX_ATTEMPTS
    assert [s.action for s in fo.steps] == [Action.BACKOFF, Action.BACKOFF, Action.STOP]


def test_refusals_do_not_use_up_attempts_meant_for_work() -> None:
    fo = _fo(max_attempts=1)
    for _ in range(5):
        fo.begin()
        assert fo.after("n", Outcome.OVERLOADED, 1.0, 0.5).action is Action.RETRY
    fo.begin()
    assert fo.after("n", Outcome.SUCCESS, 1.0, 0.5).stop is Stop.SUCCEEDED


def test_budgets_stop_a_storm() -> None:
    fo = _fo(retry=RetryBudget(0.0, 0.1, window_s=10.0))  # one retry in the window
    fo.begin()
    assert fo.after("a", Outcome.SERVER_ERROR, 1.0, 0.5).action is Action.BACKOFF
    fo.begin()
    assert fo.after("b", Outcome.SERVER_ERROR, 1.0, 0.5).stop is Stop.RETRY_BUDGET
    assert fo.budget_exhausted
    fo2 = _fo(failover=RetryBudget(0.0, 0.0))
    fo2.begin()
    assert fo2.after("a", Outcome.CONNECT_ERROR, 1.0, 0.5).stop is Stop.FAILOVER_BUDGET


def test_deadline_stops_and_caps_the_backoff() -> None:
    fo = _fo(deadline=1.01)
    fo.begin()
    step = fo.after("a", Outcome.SERVER_ERROR, 1.0, 1.0)
    assert step.action is Action.BACKOFF and step.delay_s == pytest.approx(0.01)
    fo.begin()
    assert fo.after("b", Outcome.CONNECT_ERROR, 1.02, 0.5).stop is Stop.DEADLINE


def test_neutral_outcomes_stop() -> None:
    fo = _fo()
    fo.begin()
    assert fo.after("a", Outcome.CANCELLED, 1.0, 0.5).stop is Stop.NEUTRAL


def test_a_continuation_carries_work_not_refusals() -> None:
    retry = RetryBudget(0.2, 10.0)
    fo = _fo(max_attempts=2, max_failovers=2, retry=retry)
    for _ in range(2):  # two refusals, then the stream's node answers
        fo.begin()
        fo.after("busy", Outcome.OVERLOADED, 1.0, 0.5)
    fo.begin()
    nxt = fo.continuation(5.0, deadline=35.0)
    assert nxt.attempts == 3 and nxt.worked == 0 and nxt.refused == 0
    assert nxt.deadline == 35.0 and retry.requests_in_window == 1  # not a new request
    step = nxt.after("broke", Outcome.SERVER_ERROR, 5.0, 0.5)  # the stream's node broke
    assert step.action is Action.BACKOFF  # 1 of 2 attempts for work used
    nxt.begin()
    assert nxt.after("again", Outcome.SERVER_ERROR, 5.0, 0.5).stop is Stop.MAX_ATTEMPTS
    assert nxt.steps is fo.steps  # one request, one decision log


def test_policy_validates() -> None:
    with pytest.raises(ValueError):
        FailoverPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        FailoverPolicy(max_failovers=-1)
    fo = _fo()
    assert fo.stop(Stop.NO_NODE).action is Action.STOP and fo.stopped is Stop.NO_NODE


def test_no_trace_by_default_but_the_stop_reason() -> None:
    fo = Failover(FailoverPolicy(), RetryBudget(), RetryBudget(1.0, 50.0), 0.0)
    fo.begin()
    fo.after("a", Outcome.SUCCESS, 1.0, 0.5)
    assert fo.steps is None and fo.stopped is Stop.SUCCEEDED


def test_every_decision_names_the_node_and_outcome_it_was_made_for() -> None:
    from LLM_Mesh.core.failover import Step

    fo = _fo(max_attempts=2, max_failovers=1)
    assert fo.after("a", Outcome.CONNECT_ERROR, 1.0, 0.5) == Step(
        "a", Outcome.CONNECT_ERROR, Action.RETRY
    )
    assert fo.after("b", Outcome.OVERLOADED, 1.0, 0.5) == Step(
        "b", Outcome.OVERLOADED, Action.STOP, Stop.MAX_FAILOVERS
    )
    fo = _fo(max_attempts=2)
    assert fo.after("c", Outcome.TIMEOUT, 1.0, 1.0) == Step(
        "c", Outcome.TIMEOUT, Action.BACKOFF, delay_s=0.02
    )
    assert fo.after("d", Outcome.SERVER_ERROR, 1.0, 1.0) == Step(
        "d", Outcome.SERVER_ERROR, Action.STOP, Stop.MAX_ATTEMPTS
    )
    assert fo.steps is not None and [s.node_id for s in fo.steps] == ["c", "d"]
    for outcome, stop in ((Outcome.SUCCESS, Stop.SUCCEEDED), (Outcome.CANCELLED, Stop.NEUTRAL)):
        assert _fo().after("e", outcome, 1.0, 0.5) == Step("e", outcome, Action.STOP, stop)
    late = _fo(deadline=5.0)
    assert late.after("f", Outcome.TIMEOUT, 6.0, 0.5) == Step(
        "f", Outcome.TIMEOUT, Action.STOP, Stop.DEADLINE
    )
    broke = _fo(failover=RetryBudget(0.0, 0.0))
    assert broke.after("g", Outcome.UNAVAILABLE, 1.0, 0.5) == Step(
        "g", Outcome.UNAVAILABLE, Action.STOP, Stop.FAILOVER_BUDGET
    )
    poor = _fo(retry=RetryBudget(0.0, 0.0))
    assert poor.after("h", Outcome.TIMEOUT, 1.0, 0.5) == Step(
        "h", Outcome.TIMEOUT, Action.STOP, Stop.RETRY_BUDGET
    )
    assert poor.budget_exhausted


def test_the_deadline_is_reached_at_the_deadline_itself() -> None:
    fo = _fo(deadline=5.0)
    assert fo.after("a", Outcome.TIMEOUT, 4.999, 0.5).action is Action.BACKOFF
    assert fo.after("a", Outcome.TIMEOUT, 5.0, 0.5).stop is Stop.DEADLINE


def test_a_failure_at_the_deadline_counts_as_work_a_refusal_does_not() -> None:
    failed, refused = _fo(deadline=5.0), _fo(deadline=5.0)
    failed.after("a", Outcome.SERVER_ERROR, 5.0, 0.5)
    refused.after("a", Outcome.CONNECT_ERROR, 5.0, 0.5)
    assert (failed.worked, refused.worked) == (1, 0)


def test_no_failovers_allowed_stops_at_the_first_refusal() -> None:
    fo = _fo(max_failovers=0)
    assert fo.after("a", Outcome.CONNECT_ERROR, 1.0, 0.5).stop is Stop.MAX_FAILOVERS
    with pytest.raises(ValueError, match="need max_attempts >= 1 and max_failovers >= 0"):
        FailoverPolicy(1, -1)


def test_not_stopped_until_a_stop_is_decided() -> None:
    fo = _fo()
    assert fo.stopped is None and not fo.budget_exhausted
    fo.after("a", Outcome.CONNECT_ERROR, 1.0, 0.5)
    assert fo.stopped is None


def test_the_backoff_jitter_is_the_draw_given() -> None:
    """``rand`` scales the backoff: 0 retries at once, 1 waits the whole backoff."""
    assert _fo().after("a", Outcome.TIMEOUT, 1.0, 0.0).delay_s == 0.0
    assert _fo().after("a", Outcome.TIMEOUT, 1.0, 0.25).delay_s == pytest.approx(0.005)


def test_a_continuation_spends_from_the_same_failover_budget() -> None:
    fo = _fo(failover=RetryBudget(0.0, 0.0))  # no failover tokens left for this request
    fo.after("a", Outcome.SERVER_ERROR, 1.0, 0.5)  # the stream broke
    nxt = fo.continuation(2.0, float("inf"))
    assert nxt.after("b", Outcome.CONNECT_ERROR, 2.0, 0.5).stop is Stop.FAILOVER_BUDGET
    rich = _fo().continuation(2.0, float("inf"))
    assert rich.after("b", Outcome.CONNECT_ERROR, 2.0, 0.5).action is Action.RETRY


# -- a node's own refusal (4xx): one second opinion -------------------------------------


def test_a_refusal_then_an_answer_blames_the_refusing_node_once() -> None:
    failover = RetryBudget(1.0, 50.0)
    fo = _fo(failover=failover)
    fo.begin()
    step = fo.after("a", Outcome.REJECTED, 1.0, 0.5)
    assert step.action is Action.RETRY and step.delay_s == 0.0
    assert failover.retries_in_window == 1 and fo.refused == 1 and fo.worked == 0
    fo.begin()
    assert fo.accepted() == "a"  # "b" took the request: "a"'s refusal is its failure
    assert fo.accepted() is None  # once
    assert fo.after("b", Outcome.SUCCESS, 1.1, 0.5).stop is Stop.SUCCEEDED
    assert fo.attempts == 2


def test_a_refusal_refused_again_stops_and_blames_no_one() -> None:
    fo = _fo()
    fo.begin()
    assert fo.after("a", Outcome.REJECTED, 1.0, 0.5).action is Action.RETRY
    fo.begin()
    step = fo.after("b", Outcome.REJECTED, 1.1, 0.5)
    assert step.action is Action.STOP and step.stop is Stop.REJECTED
    assert fo.accepted() is None
    assert [s.node_id for s in fo.steps or []] == ["a", "b"]


def test_one_second_opinion_per_request() -> None:
    fo = _fo()
    fo.begin()
    assert fo.after("a", Outcome.REJECTED, 1.0, 0.5).action is Action.RETRY
    fo.begin()  # a node that did nothing is no opinion: the failover goes on
    assert fo.after("b", Outcome.CONNECT_ERROR, 1.0, 0.5).action is Action.RETRY
    fo.begin()
    assert fo.after("c", Outcome.REJECTED, 1.0, 0.5).stop is Stop.REJECTED
    # a continuation (after another node took it and broke the stream) gets none
    fo2 = _fo()
    fo2.begin()
    fo2.after("a", Outcome.REJECTED, 1.0, 0.5)
    fo2.begin()
    assert fo2.accepted() == "a"
    fo2.after("b", Outcome.SERVER_ERROR, 2.0, 0.5)
    nxt = fo2.continuation(2.0, 32.0)
    nxt.begin()
    assert nxt.after("c", Outcome.REJECTED, 2.1, 0.5).stop is Stop.REJECTED


def test_no_second_opinion_past_a_stop_or_without_another_node() -> None:
    fo = _fo()
    fo.begin()
    assert fo.after("a", Outcome.REJECTED, 1.0, 0.5).action is Action.RETRY
    assert fo.stop(Stop.NO_NODE).stop is Stop.NO_NODE  # no other node serves the model
    assert fo.accepted() is None  # the refusal is passed on; no one is blamed
    late = _fo(deadline=1.0)
    late.begin()
    assert late.after("a", Outcome.REJECTED, 1.0, 0.5).stop is Stop.DEADLINE
    assert late.accepted() is None
    none_left = _fo(max_failovers=0)
    none_left.begin()
    assert none_left.after("a", Outcome.REJECTED, 1.0, 0.5).stop is Stop.MAX_FAILOVERS
    spent = _fo(failover=RetryBudget(0.0, 0.0))
    spent.begin()
    assert spent.after("a", Outcome.REJECTED, 1.0, 0.5).stop is Stop.FAILOVER_BUDGET
    assert spent.accepted() is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SUCCESS),
        (429, Outcome.OVERLOADED),
        (401, Outcome.UNAVAILABLE),
        (503, Outcome.UNAVAILABLE),
        *((s, Outcome.REJECTED) for s in (400, 402, 403, 404, 409, 413, 422, 499)),
        *((s, Outcome.SERVER_ERROR) for s in (500, 502, 504, 599)),
        # neither an answer nor a refusal: the node did the wrong thing, a server error
        *((s, Outcome.SERVER_ERROR) for s in (100, 101, 103, 199, 201, 202, 204, 206, 299)),
        *((s, Outcome.SERVER_ERROR) for s in (300, 301, 302, 303, 304, 307, 308, 399)),
        *((s, Outcome.SERVER_ERROR) for s in (600, 999, 0, -1)),
    ],
)
def test_what_a_nodes_status_is(status: int, outcome: Outcome) -> None:
    assert status_outcome(status) is outcome


@pytest.mark.parametrize("status", [204, 206, 299, 302, 304, 307, 101, 999])
def test_a_status_that_is_neither_an_answer_nor_a_refusal_fails_over_as_a_500_does(
    status: int,
) -> None:
    """Found 2026-12-03: a node answering 302 or 204 got its client a 502, no failover, and
    was never blamed (its attempt neutral): one node denied service to every request it got."""
    kind = meaning(status_outcome(status))
    assert kind is meaning(status_outcome(500)) is Meaning.FAILED
    retry = RetryBudget(0.2, 10.0)
    fo = _fo(retry=retry)
    fo.begin()
    step = fo.after("bad", status_outcome(status), 1.0, 0.5)
    assert step.action is Action.BACKOFF and step.outcome is Outcome.SERVER_ERROR
    assert fo.worked == 1 and retry.retries_in_window == 1  # the node's failure, retried
    fo.begin()
    assert fo.after("good", status_outcome(200), 1.1, 0.5).stop is Stop.SUCCEEDED


# written against the module's mutants (mut33, 2026-12-06)


def test_a_fresh_request_blames_no_node_when_accepted() -> None:
    assert _fo().accepted() is None


def test_a_second_refusal_stops_naming_its_node_and_outcome() -> None:
    fo = _fo()
    fo.begin()
    fo.after("a", Outcome.REJECTED, 1.0, 0.5)
    fo.begin()
    step = fo.after("b", Outcome.REJECTED, 1.1, 0.5)
    assert (step.node_id, step.outcome, step.action, step.stop) == (
        "b", Outcome.REJECTED, Action.STOP, Stop.REJECTED
    )  # fmt: skip


def test_a_failure_past_the_deadline_still_counts_as_worked() -> None:
    fo = _fo(max_attempts=5, deadline=5.0)
    for now in (1.0, 2.0):
        fo.begin()
        assert fo.after("a", Outcome.TIMEOUT, now, 0.5).action is Action.BACKOFF
    fo.begin()
    assert fo.after("a", Outcome.TIMEOUT, 5.0, 0.5).stop is Stop.DEADLINE
    assert fo.worked == 3


@pytest.mark.parametrize(("attempts", "failovers"), [(0, 0), (1, -1)])
def test_a_policy_out_of_range_is_refused_in_words(attempts: int, failovers: int) -> None:
    with pytest.raises(ValueError) as caught:
        FailoverPolicy(attempts, failovers, Backoff(0.02, 0.5, 2.0, 8))
    assert str(caught.value) == "need max_attempts >= 1 and max_failovers >= 0"
