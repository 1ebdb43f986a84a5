"""The simulated gateway: one request's life, from arrival to answer or failure.

It does what ``registry/`` will do for real: pick a node through the strategy,
send, stream, and on failure fail over. A connect error or a 429 (the request
never ran) fails over at once to another node, up to ``max_failovers`` times,
within a failover budget (at most one extra try per request on average); a 5xx
is retried with capped exponential backoff (``Backoff``) within the 20 %
``RetryBudget``; a client timeout ends the request and cancels it on the node.
The client's outcome is decided only by what the simulated node did.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from LLM_Mesh.core.balancer import Outcome, Verdict
from LLM_Mesh.core.retry import Backoff, RetryBudget
from LLM_Mesh.simulator.events import EventLoop
from LLM_Mesh.simulator.fleet import CANCELLED, Job, SimNode
from LLM_Mesh.simulator.strategies import Strategy

__all__ = ["GatewayPolicy", "Request", "SimGateway"]

_OUTCOMES = {o.value: o for o in Outcome}


@dataclass(frozen=True)
class GatewayPolicy:
    timeout_s: float = 10.0
    max_failovers: int = 10
    # the production defaults (registry/dispatch.py, Settings.max_attempts/max_failovers)
    backoff: Backoff = field(default_factory=lambda: Backoff(0.02, 0.5, 2.0, 3))
    retry_ratio: float = 0.2
    failover_ratio: float = 1.0
    failover_min_per_s: float = 50.0


class Request:
    __slots__ = ("arrival", "attempts", "done", "failovers", "job", "tokens", "tried")

    def __init__(self, arrival: float, tokens: int) -> None:
        self.arrival = arrival
        self.tokens = tokens
        self.tried: frozenset[str] = frozenset()
        self.attempts = 0
        self.failovers = 0
        self.job: Job | None = None
        self.done = False


class SimGateway:
    def __init__(
        self,
        loop: EventLoop,
        nodes: dict[str, SimNode],
        strategy: Strategy,
        policy: GatewayPolicy,
        rng: random.Random,
    ) -> None:
        self.loop = loop
        self.nodes = nodes
        self.strategy = strategy
        self.policy = policy
        self.rng = rng
        self.retry_budget = RetryBudget(policy.retry_ratio, 10.0)
        self.failover_budget = RetryBudget(policy.failover_ratio, policy.failover_min_per_s)
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}
        self.failed_with_alternative = 0
        self.attempts = 0
        self.requests = 0

    def submit(self, tokens: int) -> None:
        now = self.loop.now
        req = Request(now, tokens)
        self.requests += 1
        self.retry_budget.record_request(now)
        self.failover_budget.record_request(now)
        self.loop.after(self.policy.timeout_s, self._deadline, req)
        self._attempt(req)

    def _attempt(self, req: Request) -> None:
        if req.done:
            return
        now = self.loop.now
        node_id, verdict, _ = self.strategy.pick(now, req.tried, req.tokens)
        if node_id is None:
            self._fail(req, "saturated" if verdict is Verdict.SATURATED else "no_node")
            return
        req.attempts += 1
        self.attempts += 1
        req.tried = req.tried | {node_id}
        handle = self.strategy.begin(node_id, now)
        node = self.nodes[node_id]
        job = Job(req, node, req.tokens, self._on_first, self._on_end, handle)
        req.job = job
        node.submit(job)

    def _on_first(self, job: Job) -> None:
        self.strategy.first_token(job.handle, self.loop.now)

    def _on_end(self, job: Job, result: str) -> None:
        req: Request = job.request
        now = self.loop.now
        outcome = _OUTCOMES[result]
        self.strategy.finish(job.handle, now, outcome, job.tokens if result == "success" else 0)
        if req.done or req.job is not job:
            return
        req.job = None
        if outcome is Outcome.SUCCESS:
            req.done = True
            self.latencies.append(now - req.arrival)
        elif outcome in (Outcome.CONNECT_ERROR, Outcome.OVERLOADED):
            if req.failovers < self.policy.max_failovers and self.failover_budget.try_retry(now):
                req.failovers += 1
                self._attempt(req)
            else:
                self._fail(req, result)
        else:
            bo = self.policy.backoff
            if bo.may_attempt(req.attempts - req.failovers) and self.retry_budget.try_retry(now):
                retry_no = req.attempts - req.failovers
                self.loop.after(bo.delay(retry_no, self.rng.random()), self._attempt, req)
            else:
                self._fail(req, result)

    def _deadline(self, req: Request) -> None:
        if req.done:
            return
        job = req.job
        if job is not None:
            req.job = None
            job.node.cancel(job)
            job.state = CANCELLED
            self.strategy.finish(job.handle, self.loop.now, Outcome.TIMEOUT, 0)
        self._fail(req, "timeout")

    def _fail(self, req: Request, reason: str) -> None:
        req.done = True
        self.failures[reason] = self.failures.get(reason, 0) + 1
        # Hidden truth, used only to score the run: was some healthy node free?
        if any(n.alive and n.running < n.max_concurrency for n in self.nodes.values()):
            self.failed_with_alternative += 1
