"""The simulated gateway: one request's life, from arrival to answer or failure.

It does what ``registry/send.py`` does for real: pick a node through the strategy,
send, and on a refusal or a failure ask the gateway's own failover policy,
:class:`LLM_Mesh.core.failover.Failover` (the same code, not a copy), what to do
next: a connect error, a 429 or a 503 (the node did nothing) fails over at once to
another node within ``max_failovers`` and the failover budget; a 5xx is retried after
the policy's backoff within ``max_attempts`` and the retry budget, and so is any other
status a node answers with (a 302, a 204: the policy's ``status_outcome``). A simulated
node never refuses a request with its own 4xx, so the policy's second opinion,
``REJECTED``, does not arise here. A client timeout
ends the request and cancels it on the node. The client's outcome is decided only by
what the simulated node did.

A request is keyed (a client with an API key) or anonymous. Keyed ones are sent with
the keyed class, which a node's line serves first (``fleet``). Where the run has classes
(``anonymous_last``, or an ``anonymous_share``) the gateway admits an anonymous request by
the real gateway's rule, :func:`LLM_Mesh.core.anonymous_wait.clear`
(``registry/access.AnonymousLast`` calls it), for a client that asks for no wait: not
while a keyed request waits here (``anonymous_last``), nor while anonymous ones in flight
hold :func:`LLM_Mesh.core.anonymous_share.anonymous_cap` of the routable slots
(``anonymous_share``), nor while every node is full (``saturated``): it is refused at
once. The admit stage's wait (an anonymous client that asks to wait) is not modelled.

A keyed request may opt into the send stage's wait for a slot (``keyed_wait_s``, a
client's ``mesh_wait_s``; 0, the gateway's default: none): where its first pick finds no
free node it takes a place (:class:`LLM_Mesh.core.wait_places.WaitPlaces`, shared between
API keys by push-out: ``wait_keys`` keys take turns; a request pushed out is refused as
without a wait) and waits by :class:`~LLM_Mesh.core.slot_wait.SlotWait`'s
decisions, on the virtual clock: it looks again when routing changes for the better
(:class:`~LLM_Mesh.core.wake_on_change.WakeOnChange`: an attempt ends, a heartbeat comes,
an anonymous request of the share ends; :meth:`SimGateway.changed`) or when its sleep
(the router's estimate, at least ``slot_wait.RECHECK_S``) ends, until a node frees or its
wait runs out (refused ``saturated``, as without a wait). The same code as
``registry/send.py``'s, not a copy. Figures per class are kept in ``by_class``.
``on_stop`` (optional) sees each request's :class:`~LLM_Mesh.core.failover.Failover`
when it stops, with every decision in order; ``on_wait`` each wait when it ends, its
looks traced.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from LLM_Mesh.core.anonymous_share import KEYED_RECENT_S, anonymous_cap
from LLM_Mesh.core.anonymous_wait import Clear, clear
from LLM_Mesh.core.balancer import Outcome, Verdict
from LLM_Mesh.core.failover import Action, Failover, FailoverPolicy, Stop, status_outcome
from LLM_Mesh.core.retry import RetryBudget
from LLM_Mesh.core.slot_wait import MAX_SEND_WAITERS, Next, SlotWait
from LLM_Mesh.core.wait_places import WaitPlace, WaitPlaces
from LLM_Mesh.core.wake_on_change import WakeOnChange
from LLM_Mesh.simulator.events import EventLoop
from LLM_Mesh.simulator.fleet import CANCELLED, Job, SimNode
from LLM_Mesh.simulator.strategies import MODEL, Strategy

__all__ = ["ANONYMOUS", "KEYED", "ClassStats", "GatewayPolicy", "Request", "SimGateway"]

KEYED, ANONYMOUS = "keyed", "anonymous"

_OUTCOMES = {o.value: o for o in Outcome}


@dataclass(frozen=True)
class GatewayPolicy:
    timeout_s: float = 10.0
    # the production defaults (Settings.max_attempts / max_failovers, the send stage's backoff)
    failover: FailoverPolicy = field(default_factory=FailoverPolicy)
    # the production budgets (registry/routing.py): retries 20 % + 10/s, failovers 100 % + 50/s
    retry_ratio: float = 0.2
    retry_min_per_s: float = 10.0
    failover_ratio: float = 1.0
    failover_min_per_s: float = 50.0
    # LLM_MESH_ANONYMOUS_SHARE (core/anonymous_share.py); None: no share kept
    anonymous_share: float | None = None
    # anonymous requests are held back by registry/access.AnonymousLast's rule
    # (core/anonymous_wait.clear): in a run with classes (a share kept implies it); False
    # and no share: one class, all sent on
    anonymous_last: bool = False
    # the keyed requests' opt-in wait for a slot (mesh_wait_s; 0: none, the default), the
    # places of that wait (core/wait_places.py) and the API keys keyed requests come from
    keyed_wait_s: float = 0.0
    max_waiters: int = MAX_SEND_WAITERS
    wait_keys: int = 8


class ClassStats:
    """One class's requests: latencies and waits (arrival to the slot that served it) of
    those that succeeded, in virtual seconds, and the failures by reason; ``gate_waits``:
    how long each request that waited at the gateway for a slot waited there (served or
    not)."""

    __slots__ = ("failures", "gate_waits", "latencies", "requests", "waits")

    def __init__(self) -> None:
        self.requests = 0
        self.latencies: list[float] = []
        self.waits: list[float] = []
        self.gate_waits: list[float] = []
        self.failures: dict[str, int] = {}


class Request:
    __slots__ = (
        "arrival", "done", "failover", "job", "key", "keyed", "place", "sleep", "tokens", "tried",
        "wait", "wait_began", "woken",
    )  # fmt: skip

    def __init__(
        self, arrival: float, tokens: int, failover: Failover, keyed: bool, key: str = ""
    ) -> None:
        self.arrival = arrival
        self.tokens = tokens
        self.failover = failover
        self.keyed = keyed
        self.key = key  # its API key's id ("" anonymous)
        self.tried: frozenset[str] = frozenset()
        self.job: Job | None = None
        self.done = False
        self.wait: SlotWait | None = None  # its wait for a slot, while it waits
        self.place: WaitPlace | None = None  # ... and its place there
        self.wait_began = 0.0
        self.sleep = 0  # its sleep's number: a timer or a wake of an older one is stale
        self.woken: bool | None = None  # what ended its last sleep (a change: True)


class SimGateway:
    def __init__(
        self,
        loop: EventLoop,
        nodes: dict[str, SimNode],
        strategy: Strategy,
        policy: GatewayPolicy,
        rng: random.Random,
        on_stop: Callable[[Failover], None] | None = None,
        on_wait: Callable[[SlotWait], None] | None = None,
    ) -> None:
        self.loop = loop
        self.nodes = nodes
        self.strategy = strategy
        self.policy = policy
        self.rng = rng
        self.on_stop = on_stop
        self.on_wait = on_wait
        # the wait's places, as registry/routing.py's (core/wait_places.py)
        self.places = WaitPlaces(
            policy.max_waiters, "API key", "as many requests as may wait here wait already"
        )
        # the waiting requests' looks, per model: woken by a change (core/wake_on_change.py)
        self.sleepers: WakeOnChange[tuple[Request, int]] = WakeOnChange()
        self.keyed_requests = 0
        self.retry_budget = RetryBudget(policy.retry_ratio, policy.retry_min_per_s)
        self.failover_budget = RetryBudget(policy.failover_ratio, policy.failover_min_per_s)
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}
        self.failed_with_alternative = 0
        self.attempts = 0
        self.requests = 0
        self.by_class = {KEYED: ClassStats(), ANONYMOUS: ClassStats()}
        self.anonymous_running = 0  # anonymous requests admitted and not yet ended
        self.keyed_seen: float | None = None  # when a keyed request last came

    def submit(self, tokens: int, keyed: bool = False) -> None:
        now = self.loop.now
        p = self.policy
        fo = Failover(
            p.failover, self.retry_budget, self.failover_budget, now,
            deadline=now + p.timeout_s, trace=self.on_stop is not None,
        )  # fmt: skip
        key = ""
        if keyed:
            key = f"k{self.keyed_requests % p.wait_keys}"  # the keys take turns
            self.keyed_requests += 1
        req = Request(now, tokens, fo, keyed, key)
        self.requests += 1
        self.by_class[KEYED if keyed else ANONYMOUS].requests += 1
        if keyed:
            self.keyed_seen = now
        elif p.anonymous_last or p.anonymous_share is not None:
            held = self._held(req)
            if held:  # refused before any node is tried
                req.done = True
                self._count(req, held)
                return
            if p.anonymous_share is not None:
                self.anonymous_running += 1
        self.loop.after(p.timeout_s, self._deadline, req)
        self._attempt(req)

    def _held(self, req: Request) -> str:
        """Why an anonymous request may not go on now ("": it may), by the real gateway's
        rule, ``core/anonymous_wait.clear`` (``registry/access.AnonymousLast``), for a client
        that asks for no wait: a keyed request waits here (``anonymous_last``), its share is
        held (``anonymous_share``), or every node is full (``saturated``: the rule asks the
        router, as the real one does)."""
        p = self.policy
        keyed_waiting = self.places.waiting > 0
        open_, full = self.strategy.pool_counts()
        over = False
        if open_ and not keyed_waiting and p.anonymous_share is not None:
            seen = self.keyed_seen
            demand = seen is not None and self.loop.now - seen < KEYED_RECENT_S
            cap = anonymous_cap(self.strategy.slots(), p.anonymous_share, demand)
            over = self.anonymous_running >= cap
        said = clear(keyed_waiting, open_, full, over, False)
        if said is Clear.HOLD:
            return "anonymous_last" if keyed_waiting else "anonymous_share"
        if said is Clear.ASK:
            _, verdict, _ = self.strategy.pick(self.loop.now, frozenset(), req.tokens, False)
            if verdict is Verdict.SATURATED:
                return "saturated"
        return ""

    def submit_keyed(self, tokens: int) -> None:
        self.submit(tokens, keyed=True)

    def submit_anonymous(self, tokens: int) -> None:
        self.submit(tokens, keyed=False)

    def _attempt(self, req: Request) -> None:
        if req.done:
            return
        now = self.loop.now
        node_id, verdict, hint = self.strategy.pick(now, req.tried, req.tokens, req.keyed)
        if req.wait is None and node_id is None and not req.tried and self._takes_place(req):
            req.wait = SlotWait(
                req.arrival, self.policy.keyed_wait_s, req.arrival + self.policy.timeout_s,
                trace=self.on_wait is not None,
            )  # fmt: skip
            req.wait_began = now
        wait = req.wait
        if wait is not None:  # a look of its wait (registry/send.py's Exchange._choose)
            look = wait.look(verdict, hint, wait.left(now), req.woken)
            if look.next is Next.SLEEP:
                self._sleep(req, look.sleep_s)
                return
            self._leave_wait(req, wait)
        if node_id is None:
            req.failover.stop(Stop.NO_NODE)
            self._fail(req, "saturated" if verdict is Verdict.SATURATED else "no_node")
            return
        req.failover.begin()
        self.attempts += 1
        req.tried = req.tried | {node_id}
        handle = self.strategy.begin(node_id, now, req.keyed)
        node = self.nodes[node_id]
        job = Job(req, node, req.tokens, self._on_first, self._on_end, handle, req.keyed)
        req.job = job
        node.submit(job)

    def _takes_place(self, req: Request) -> bool:
        """A keyed request that asked to wait, and a place for it (it may push out another
        key's waiter; none: as without a wait)."""
        if not req.keyed or self.policy.keyed_wait_s <= 0:
            return False
        place = self.places.take(req.key)
        if isinstance(place, str):
            return False
        req.place = place
        return True

    def _sleep(self, req: Request, sleep_s: float) -> None:
        """Sleep until a change of routing (:meth:`changed`), a push-out or ``sleep_s``,
        then look."""
        req.sleep += 1
        token = (req, req.sleep)
        self.sleepers.sleep(MODEL, token)
        if req.place is not None:
            req.place.wake = lambda: self.loop.after(0.0, self._woken, (*token, True))
        self.loop.after(sleep_s, self._woken, (*token, False))

    def _woken(self, token: tuple[Request, int, bool]) -> None:
        req, sleep, by_change = token
        if req.done or req.sleep != sleep:  # woken already (the change or the timer)
            return
        req.sleep += 1
        self.sleepers.leave(MODEL, (req, sleep))
        req.woken = by_change
        place, wait = req.place, req.wait
        if place is not None and wait is not None:
            place.wake = None
            if place.out:  # pushed out for another key's request: as without a wait
                self._leave_wait(req, wait)
                req.failover.stop(Stop.NO_NODE)
                self._fail(req, "saturated")
                return
        self._attempt(req)

    def changed(self) -> None:
        """Routing changed for the better for the model: its sleepers look again, after
        what runs now (as the gateway's resolved futures wake them on the event loop's next
        turn)."""
        for req, sleep in self.sleepers.changed((MODEL,)):
            self.loop.after(0.0, self._woken, (req, sleep, True))

    def _leave_wait(self, req: Request, wait: SlotWait) -> None:
        req.wait = None
        if req.place is not None:
            self.places.leave(req.place)
            req.place = None
        stats = self.by_class[KEYED if req.keyed else ANONYMOUS]
        stats.gate_waits.append(self.loop.now - req.wait_began)
        if self.on_wait is not None:
            self.on_wait(wait)

    def _on_first(self, job: Job) -> None:
        self.strategy.first_token(job.handle, self.loop.now)

    def _on_end(self, job: Job, result: str | int) -> None:
        """``result``: what the node did (an outcome's value), or the HTTP status it
        answered with (an ``answer_status`` node), read as the real gateway reads it."""
        req: Request = job.request
        now = self.loop.now
        outcome = status_outcome(result) if isinstance(result, int) else _OUTCOMES[result]
        tokens = job.tokens if outcome is Outcome.SUCCESS else 0
        self.strategy.finish(job.handle, now, outcome, tokens)
        self.changed()
        if req.done or req.job is not job:
            return
        req.job = None
        step = req.failover.after(job.node.node_id, outcome, now, self.rng.random())
        if step.action is Action.RETRY:
            self._attempt(req)
        elif step.action is Action.BACKOFF:
            self.loop.after(step.delay_s, self._attempt, req)
        elif outcome is Outcome.SUCCESS:
            self._end(req)
            self.latencies.append(now - req.arrival)
            stats = self.by_class[KEYED if req.keyed else ANONYMOUS]
            stats.latencies.append(now - req.arrival)
            stats.waits.append((job.started if job.started >= 0.0 else now) - req.arrival)
            if self.on_stop is not None:
                self.on_stop(req.failover)
        else:
            self._fail(req, outcome.value)

    def _deadline(self, req: Request) -> None:
        if req.done or req.wait is not None:  # a wait ends by the deadline itself
            return
        job = req.job
        if job is not None:
            req.job = None
            job.node.cancel(job)
            job.state = CANCELLED
            self.strategy.finish(job.handle, self.loop.now, Outcome.TIMEOUT, 0)
            self.changed()
        req.failover.stop(Stop.DEADLINE)
        self._fail(req, "timeout")

    def _end(self, req: Request) -> None:
        if not req.done:
            req.done = True
            if not req.keyed and self.policy.anonymous_share is not None:
                self.anonymous_running -= 1
                self.changed()  # registry/access_anonymous.py's _Running.give wakes the waiters

    def _count(self, req: Request, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1
        cls = self.by_class[KEYED if req.keyed else ANONYMOUS].failures
        cls[reason] = cls.get(reason, 0) + 1

    def _fail(self, req: Request, reason: str) -> None:
        self._end(req)
        self._count(req, reason)
        if self.on_stop is not None:
            self.on_stop(req.failover)
        # Hidden truth, used only to score the run: was some healthy node free?
        if any(n.alive and n.running < n.max_concurrency for n in self.nodes.values()):
            self.failed_with_alternative += 1
