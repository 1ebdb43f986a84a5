"""The failover policy: what an attempt's outcome means and whether to try another node.

Pure code, no I/O, time passed in. The gateway's send stage
(:mod:`LLM_Mesh.registry.send`) and the fleet simulator's gateway
(:mod:`LLM_Mesh.simulator.gateway`) both run one :class:`Failover` per request, so
the simulator's figures describe the gateway's rules, not a copy of them.

What an outcome means (:func:`meaning`)::

    SUCCESS                                     SUCCEEDED  stop: the answer is the client's
    CONNECT_ERROR, OVERLOADED (429),            REFUSED    the node did nothing with the
      UNAVAILABLE (503: paused, draining,                  request: another node at once
      no memory for a cold model)
    TIMEOUT, SERVER_ERROR (5xx, broken answer)  FAILED     the node may have worked on it:
                                                           another node after a backoff
    REJECTED (the node's own 4xx: 400, 404,     REJECTED   a second opinion: another node
      413, 422...)                                         at once, once per request
    CANCELLED (client gone)                     NEUTRAL    stop: nothing to retry

What a node's HTTP status is (:func:`status_outcome`; the send stage adds the transport's
failures and a 200 whose body is broken, a ``SERVER_ERROR``)::

    200                                         SUCCESS
    429                                         OVERLOADED
    401 (refused the gateway's key), 503        UNAVAILABLE
    any other 4xx                               REJECTED
    5xx, and every other status: a 1xx, a       SERVER_ERROR
      2xx but 200 (204, 206, 299), a 3xx
      (302, 304, 307), 600-999

A node answers an inference request with 200 or an error; anything else is the node doing
the wrong thing with a request the gateway validated, so it is the node's failure, as a
5xx is (outlier ejection, the success EWMA, another node after a backoff): never passed on
(until 2026-12-03 a 302 or a 204 was a 502 for the client, no failover, the attempt neutral:
one node could deny service to every request routed to it at no cost). A 3xx is an answer
like any other: the gateway follows no redirect and passes on no ``Location``.

A second opinion (:data:`Meaning.REJECTED`): the gateway validated the request before it
routed it, so a node refusing it may be the one that is wrong (broken, or hostile: a node
that refuses everything, with its own words for the client, would never be ejected if its
refusal said nothing about it). The first refusal of a request is followed by one other
node, at once, like a refusal (``max_failovers``, a failover-budget token, never past the
deadline); it is the only one a request gets (a continuation does not get another):

- another node takes the request (its answer begins: the caller calls
  :meth:`Failover.accepted`, which names the refusing node once): the refusal counts
  against its node like a server error (outlier detection), and the client gets the answer;
- another node refuses too (``Stop.REJECTED``): the request is bad; the caller passes the
  *first* refusal on and neither node is blamed;
- no other node, or the request stops for another reason (deadline, budgets, every other
  node failing): the caller passes the first refusal on, as it would have without a
  second opinion, and blames no one.

The budgets, checked in this order after each attempt:

- after a refusal (or a first rejection): at most ``max_failovers`` more nodes, each
  needing a token of the *failover budget* (a :class:`~LLM_Mesh.core.retry.RetryBudget`;
  the gateway's is 100 % of requests + 50/s);
- after a failure: at most ``max_attempts`` attempts a node may have worked on in all,
  and each retry needs a token of the *retry budget* (20 % of requests + 10/s), then
  waits a full-jitter backoff (:class:`~LLM_Mesh.core.retry.Backoff`: uniform up to
  20 ms, doubling per retry, capped at 500 ms), never past the deadline;
- no attempt starts at or after the request's deadline.

The caller adds the stops only it can see: no node left to try (``NO_NODE``) and no
time left when a node was found (``DEADLINE``), through :meth:`Failover.stop`.

A mid-stream continuation (:meth:`Failover.continuation`) is a retry after a failure
(the node that broke the stream worked on it): it carries over the attempts nodes
*worked on*, never the refusals that came before the stream reached its node, and
gets a fresh failover allowance of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from LLM_Mesh.core.retry import Backoff, RetryBudget
from LLM_Mesh.core.route_types import Outcome

__all__ = [
    "FAILED",
    "MAX_ATTEMPTS_TOP",
    "REFUSED",
    "Action",
    "Failover",
    "FailoverPolicy",
    "Meaning",
    "Step",
    "Stop",
    "meaning",
    "status_outcome",
]


class Meaning(str, Enum):
    SUCCEEDED = "succeeded"
    REFUSED = "refused"  # the node did nothing with the request
    FAILED = "failed"  # the node may have worked on it
    NEUTRAL = "neutral"  # says nothing about the node (the client went away)
    # the node refused the request itself (a 4xx): another node's answer says who is wrong
    REJECTED = "rejected"


REFUSED = frozenset({Outcome.CONNECT_ERROR, Outcome.OVERLOADED, Outcome.UNAVAILABLE})
FAILED = frozenset({Outcome.TIMEOUT, Outcome.SERVER_ERROR})


_MEANING = {
    **dict.fromkeys(Outcome, Meaning.NEUTRAL),
    Outcome.SUCCESS: Meaning.SUCCEEDED,
    Outcome.REJECTED: Meaning.REJECTED,
    **dict.fromkeys(REFUSED, Meaning.REFUSED),
    **dict.fromkeys(FAILED, Meaning.FAILED),
}
# by identity: an Enum's own hash is a Python-level call, and this runs per attempt
_BY_ID = {id(o): m for o, m in _MEANING.items()}


def meaning(outcome: Outcome) -> Meaning:
    """What ``outcome`` says about the attempt (see the module docstring)."""
    return _BY_ID[id(outcome)]


def status_outcome(status: int) -> Outcome:
    """What a node's answer with HTTP ``status`` is (see the module docstring's table)."""
    if status == 200:
        return Outcome.SUCCESS
    if 400 <= status < 500:
        if status == 429:
            return Outcome.OVERLOADED
        return Outcome.UNAVAILABLE if status == 401 else Outcome.REJECTED
    return Outcome.UNAVAILABLE if status == 503 else Outcome.SERVER_ERROR


class Action(str, Enum):
    RETRY = "retry"  # another node at once
    BACKOFF = "backoff"  # another node after ``Step.delay_s``
    STOP = "stop"


class Stop(str, Enum):
    """Why a request stopped trying nodes."""

    SUCCEEDED = "succeeded"
    NEUTRAL = "neutral"
    REJECTED = "rejected"  # a refusal passed on: the second opinion refused too (or was had)
    MAX_FAILOVERS = "max_failovers"
    FAILOVER_BUDGET = "failover_budget"
    MAX_ATTEMPTS = "max_attempts"
    RETRY_BUDGET = "retry_budget"
    DEADLINE = "deadline"
    NO_NODE = "no_node"


# the most attempts a node may have worked on per request (``Settings.max_attempts``' top):
# each is a part of its payment, up to three ledger entries a part, and a settle batch of
# MAX_SETTLE (200) requests must fit one ledger append (10,000 entries) (found 2026-12-04: 17
# made such a batch fail for ever); so a stream has at most this many node parts, which a
# client's bound on events without output counts on (``core/client_floor.py``)
MAX_ATTEMPTS_TOP = 16


@dataclass(frozen=True)
class FailoverPolicy:
    max_attempts: int = 3  # attempts a node may have worked on (Settings.max_attempts)
    max_failovers: int = 10  # more nodes after ones that refused (Settings.max_failovers)
    backoff: Backoff = field(default_factory=lambda: Backoff(0.02, 0.5, 2.0, 8))

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_failovers < 0:
            raise ValueError("need max_attempts >= 1 and max_failovers >= 0")


class Step(NamedTuple):  # a tuple: cheap to make once per attempt
    """One decision: after ``outcome`` on ``node_id``, do ``action`` (or stop for ``stop``)."""

    node_id: str | None
    outcome: Outcome | None
    action: Action
    stop: Stop | None = None
    delay_s: float = 0.0


class Failover:
    """One request's attempts and the decision after each (see the module docstring).

    With ``trace`` (off on the hot path), ``steps`` keeps every decision in order
    (tests compare the simulator's with the gateway's); ``stopped`` is always the stop
    reason once it stopped.
    """

    __slots__ = (
        "attempts",
        "backoffs",
        "deadline",
        "failover_budget",
        "policy",
        "refused",
        "rejecting",
        "retry_budget",
        "second_opinion",
        "steps",
        "stopped",
        "worked",
    )

    def __init__(
        self,
        policy: FailoverPolicy,
        retry_budget: RetryBudget,
        failover_budget: RetryBudget,
        now: float,
        *,
        deadline: float = float("inf"),
        new_request: bool = True,
        trace: bool = False,
    ) -> None:
        self.policy = policy
        self.retry_budget = retry_budget
        self.failover_budget = failover_budget
        self.deadline = deadline
        self.attempts = 0  # every attempt, refused or not (what ``mesh.attempts`` says)
        self.worked = 0  # attempts a node may have worked on (failed, or got the request)
        self.refused = 0  # failovers after refusals (for ``max_failovers``)
        self.backoffs = 0
        self.rejecting: str | None = None  # the node whose refusal awaits a second opinion
        self.second_opinion = False  # one was asked (at most one per request)
        self.steps: list[Step] | None = [] if trace else None
        self.stopped: Stop | None = None
        if new_request:
            retry_budget.record_request(now)
            failover_budget.record_request(now)

    def continuation(self, now: float, deadline: float) -> Failover:
        """What a mid-stream continuation starts with, after the current node broke.

        The broken attempt already counts in ``worked`` (it was decided as a
        failure through :meth:`after`). Refusals before the stream reached its node
        are not carried over: they did no work, so they must not use up the attempts
        meant for work.
        """
        nxt = Failover(
            self.policy, self.retry_budget, self.failover_budget, now,
            deadline=deadline, new_request=False,
        )  # fmt: skip
        nxt.attempts = self.attempts
        nxt.worked = self.worked
        nxt.backoffs = self.backoffs
        nxt.second_opinion = self.second_opinion  # one per request, continuations included
        nxt.steps = self.steps
        return nxt

    def begin(self) -> None:
        """An attempt is being sent now."""
        self.attempts += 1

    def after(self, node_id: str | None, outcome: Outcome, now: float, rand: float) -> Step:
        """The decision after an attempt on ``node_id`` ended with ``outcome``.

        Spends a budget token when it decides to try again. ``rand`` in ``[0, 1]``
        draws the backoff's jitter.
        """
        kind = meaning(outcome)
        if kind is Meaning.SUCCEEDED:
            return self._stop(node_id, outcome, Stop.SUCCEEDED)
        if kind is Meaning.NEUTRAL:
            return self._stop(node_id, outcome, Stop.NEUTRAL)
        if kind is Meaning.REJECTED and self.second_opinion:  # refused again: a bad request
            return self._stop(node_id, outcome, Stop.REJECTED)  # (no one is blamed)
        if now >= self.deadline:
            if kind is Meaning.FAILED:
                self.worked += 1
            return self._stop(node_id, outcome, Stop.DEADLINE)
        if kind is not Meaning.FAILED:  # refused or rejected: another node at once
            if self.refused >= self.policy.max_failovers:
                return self._stop(node_id, outcome, Stop.MAX_FAILOVERS)
            if not self.failover_budget.try_retry(now):
                return self._stop(node_id, outcome, Stop.FAILOVER_BUDGET)
            self.refused += 1
            if kind is Meaning.REJECTED:
                self.rejecting, self.second_opinion = node_id, True
            return self._step(Step(node_id, outcome, Action.RETRY))
        self.worked += 1
        if self.worked >= self.policy.max_attempts:
            return self._stop(node_id, outcome, Stop.MAX_ATTEMPTS)
        if not self.retry_budget.try_retry(now):
            return self._stop(node_id, outcome, Stop.RETRY_BUDGET)
        self.backoffs += 1
        bo = self.policy.backoff
        delay = bo.delay(min(self.backoffs, bo.max_attempts), rand)
        delay = min(delay, max(0.0, self.deadline - now))
        return self._step(Step(node_id, outcome, Action.BACKOFF, delay_s=delay))

    def accepted(self) -> str | None:
        """An attempt's node took the request (its answer began). Returns, once, the node
        whose refusal it contradicts (the caller counts it as that node's failure), else
        ``None``."""
        blamed, self.rejecting = self.rejecting, None
        return blamed

    def stop(self, reason: Stop) -> Step:
        """A stop the caller saw (``NO_NODE``, ``DEADLINE``) before an attempt began."""
        return self._stop(None, None, reason)

    @property
    def budget_exhausted(self) -> bool:
        return self.stopped in (Stop.RETRY_BUDGET, Stop.FAILOVER_BUDGET)

    def _stop(self, node_id: str | None, outcome: Outcome | None, reason: Stop) -> Step:
        self.stopped = reason
        self.rejecting = None  # a refusal still awaiting its second opinion is passed on
        return self._step(Step(node_id, outcome, Action.STOP, reason))

    def _step(self, step: Step) -> Step:
        if self.steps is not None:
            self.steps.append(step)
        return step
