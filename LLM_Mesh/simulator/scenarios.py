"""Scenarios and the run: build a fleet, drive it with Poisson traffic, report.

``run_scenario(name, strategy, seed) -> Report``. Scenarios:

* ``slow-node``  11 nodes; one answers in 2 s from t=15 s to t=45 s; the client
  times out after 1 s (Linkerd's peak-EWMA experiment).
* ``mixed-speeds``  40 nodes whose speeds differ 10× (log-uniform).
* ``mass-kill``  10,000 nodes; 30 % are killed at once at t=10 s.
* ``keyed-rush``  12 nodes offered about 1.4× what they can serve, half the
  requests keyed (with an API key), half anonymous.

A scenario with a ``keyed_share`` (or a run given one: ``llm-mesh simulate
--keyed-share``) draws each request's class, keyed with that probability (from
its own stream: the arrivals stay those of a run without classes); nodes serve
keyed waiters first (``core/priority.py``) and the gateway keeps the
``anonymous_share`` of the slots (``core/anonymous_share.py``; default
``LLM_MESH_ANONYMOUS_SHARE``'s, 1 turns it off). Its report has figures per
class (``Report.classes``). Without one, every request is of one class, as before.
With a ``keyed_wait_s`` (``--keyed-wait``; 0, the gateway's default: none) the keyed
requests opt into the gateway's wait for a slot (``core/slot_wait.py``, ``gateway``):
the report counts those that waited and their wait's p50/p95 on the virtual clock.

Nodes heartbeat every 10 s (random phase) with their in-flight and queued
counts, delivered 0.1–1 s late; the registry drops a node whose last
heartbeat is over 30 s old. That, the strategy's own counts and the outcomes
of its requests are all a strategy learns.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from LLM_Mesh.core.anonymous_share import DEFAULT_ANONYMOUS_SHARE, anonymous_cap
from LLM_Mesh.simulator.events import EventLoop
from LLM_Mesh.simulator.fleet import SimNode
from LLM_Mesh.simulator.gateway import ANONYMOUS, KEYED, ClassStats, GatewayPolicy, SimGateway
from LLM_Mesh.simulator.strategies import Strategy, make_strategy

__all__ = [
    "MAX_WAIT_S",
    "REFUSALS",
    "SCENARIOS",
    "ClassReport",
    "Report",
    "Scenario",
    "run_scenario",
]

HEARTBEAT_S = 10.0
MAX_WAIT_S = 60.0  # the longest wait a client may ask for (registry/extensions.MAX_WAIT_S)
STALE_S = 30.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    nodes: int
    rate: float  # requests per second
    duration_s: float
    timeout_s: float
    tokens: int
    make_node: Callable[[int, EventLoop, random.Random], SimNode]
    actions: tuple[tuple[float, Callable[[dict[str, SimNode], random.Random], None]], ...] = ()
    keyed_share: float | None = None  # None: one class (no classes reported)


#: failures that are refusals: the gateway's anonymous share, keyed requests waiting (an
#: anonymous one held back for them), no free node, every node's 429
REFUSALS = ("anonymous_share", "anonymous_last", "saturated", "overloaded")


@dataclass(frozen=True)
class ClassReport:
    """One class's figures; the milliseconds are virtual-clock time (``wait``: arrival
    to the slot that served it)."""

    requests: int
    completed: int
    refused: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    wait_p95_ms: float
    # requests that waited at the gateway for a slot, and that wait's p50/p95 (served or not)
    waited: int = 0
    gate_wait_p50_ms: float = math.nan
    gate_wait_p95_ms: float = math.nan

    @classmethod
    def of(cls, stats: ClassStats) -> ClassReport:
        lat, waits, gate = sorted(stats.latencies), sorted(stats.waits), sorted(stats.gate_waits)
        return cls(
            requests=stats.requests, completed=len(lat),
            refused=sum(stats.failures.get(r, 0) for r in REFUSALS),
            p50_ms=_pct(lat, 0.5), p95_ms=_pct(lat, 0.95), p99_ms=_pct(lat, 0.99),
            wait_p95_ms=_pct(waits, 0.95), waited=len(gate), gate_wait_p50_ms=_pct(gate, 0.5),
            gate_wait_p95_ms=_pct(gate, 0.95),
        )  # fmt: skip


@dataclass
class Report:
    scenario: str
    strategy: str
    seed: int
    requests: int
    succeeded: int
    attempts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    failures: dict[str, int] = field(default_factory=dict)
    failed_with_alternative: int = 0
    wall_s: float = 0.0
    events: int = 0
    # per class (``keyed``, ``anonymous``) where the run drew classes; else empty
    classes: dict[str, ClassReport] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.requests if self.requests else 1.0


def _pct(sorted_xs: list[float], q: float) -> float:
    if not sorted_xs:
        return math.nan
    i = min(len(sorted_xs) - 1, max(0, math.ceil(q * len(sorted_xs)) - 1))
    return sorted_xs[i] * 1000.0


def _uniform_node(ttft_s: float, tps: float, conc: int, queue: int) -> Callable[..., SimNode]:
    def make(i: int, loop: EventLoop, rng: random.Random) -> SimNode:
        return SimNode(f"n{i}", loop, rng, ttft_s=ttft_s, tokens_per_s=tps,
                       max_concurrency=conc, max_queue=queue)  # fmt: skip

    return make


def _mixed_node(i: int, loop: EventLoop, rng: random.Random) -> SimNode:
    f = 10.0 ** rng.random()  # 1×..10× slower, log-uniform
    return SimNode(f"n{i}", loop, rng, ttft_s=0.05 * f, tokens_per_s=200.0 / f,
                   max_concurrency=4, max_queue=8)  # fmt: skip


def _fleet_node(i: int, loop: EventLoop, rng: random.Random) -> SimNode:
    f = 1.0 + 2.0 * rng.random()
    return SimNode(f"n{i}", loop, rng, ttft_s=0.1 * f, tokens_per_s=100.0 / f,
                   max_concurrency=4, max_queue=8)  # fmt: skip


def _slow(on: bool) -> Callable[[dict[str, SimNode], random.Random], None]:
    def act(nodes: dict[str, SimNode], rng: random.Random) -> None:
        nodes["n0"].slow_latency_s = 2.0 if on else None

    return act


def _kill_fraction(frac: float) -> Callable[[dict[str, SimNode], random.Random], None]:
    def act(nodes: dict[str, SimNode], rng: random.Random) -> None:
        ids = sorted(nodes)
        for nid in rng.sample(ids, int(len(ids) * frac)):
            nodes[nid].kill()

    return act


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "slow-node",
            "11 nodes, one slowed to 2 s for 30 s, 1 s client timeout",
            11,
            300.0,
            60.0,
            1.0,
            50,
            _uniform_node(0.02, 1000.0, 8, 16),
            ((15.0, _slow(True)), (45.0, _slow(False))),
        ),
        Scenario(
            "mixed-speeds",
            "40 nodes whose speeds differ 10×",
            40,
            25.0,
            120.0,
            30.0,
            100,
            _mixed_node,
        ),
        Scenario(
            "mass-kill",
            "10,000 nodes, 30 % killed at once at t=10 s",
            10_000,
            200.0,
            45.0,
            10.0,
            50,
            _fleet_node,
            ((10.0, _kill_fraction(0.3)),),
        ),
        Scenario(
            "keyed-rush",
            "12 nodes offered ~1.4× their capacity, half the requests keyed",
            12,
            60.0,
            60.0,
            30.0,
            100,
            _uniform_node(0.05, 100.0, 4, 16),
            keyed_share=0.5,
        ),
    )
}


def run_scenario(
    name: str,
    strategy: str,
    seed: int = 1,
    *,
    duration_s: float | None = None,
    keyed_share: float | None = None,
    anonymous_share: float | None = None,
    keyed_wait_s: float = 0.0,
) -> Report:
    """Run scenario ``name`` with ``strategy`` (random, round-robin, least-loaded, ours);
    ``keyed_share`` (0 to 1) overrides the scenario's, ``anonymous_share`` the default
    share of the slots anonymous requests may hold (only where classes are drawn);
    ``keyed_wait_s``: the seconds keyed requests opt to wait at the gateway for a slot."""
    sc = SCENARIOS.get(name)
    if sc is None:
        raise ValueError(f"unknown scenario {name!r}; choose from {sorted(SCENARIOS)}")
    keyed = sc.keyed_share if keyed_share is None else keyed_share
    if keyed is not None and not 0.0 <= keyed <= 1.0:
        raise ValueError("keyed_share must be from 0 to 1")
    share: float | None = None
    if keyed is not None:
        share = DEFAULT_ANONYMOUS_SHARE if anonymous_share is None else anonymous_share
        anonymous_cap(1, share)  # checked: from 0 to 1
        share = share if share < 1.0 else None  # 1: no share kept (registry/admit.py)
    duration = sc.duration_s if duration_s is None else duration_s
    started = time.perf_counter()
    loop = EventLoop()
    world = random.Random(seed)  # the fleet and the traffic: identical for every strategy
    nodes = {n.node_id: n for n in (sc.make_node(i, loop, world) for i in range(sc.nodes))}
    strat = make_strategy(strategy, random.Random(seed * 7919 + 1))
    for n in nodes.values():
        strat.add_node(n.node_id, n.region, n.max_concurrency, n.max_queue, 0.0)
    if not 0.0 <= keyed_wait_s <= MAX_WAIT_S:  # NaN fails both
        raise ValueError(f"keyed_wait_s must be from 0 to {MAX_WAIT_S:g}")
    policy = GatewayPolicy(timeout_s=sc.timeout_s, anonymous_share=share,
                           anonymous_last=keyed is not None, keyed_wait_s=keyed_wait_s)  # fmt: skip
    gw = SimGateway(loop, nodes, strat, policy, random.Random(seed))
    _registry(loop, nodes, strat, world, duration, gw.changed)
    for t, act in sc.actions:
        loop.at(t, _Act(act, nodes, world))
    t = 0.0
    traffic = random.Random(seed + 1)
    classes = random.Random(seed + 2)  # its own stream: the arrivals stay the same
    while True:
        t += traffic.expovariate(sc.rate)
        if t >= duration:
            break
        if keyed is None:
            loop.at(t, lambda _a: gw.submit(sc.tokens))
        else:
            loop.at(t, gw.submit_keyed if classes.random() < keyed else gw.submit_anonymous,
                    sc.tokens)  # fmt: skip
    loop.run(duration + sc.timeout_s + 1.0)
    lat = sorted(gw.latencies)
    return Report(
        scenario=name, strategy=strategy, seed=seed, requests=gw.requests, succeeded=len(lat),
        attempts=gw.attempts, p50_ms=_pct(lat, 0.5), p90_ms=_pct(lat, 0.9),
        p99_ms=_pct(lat, 0.99), p999_ms=_pct(lat, 0.999), failures=dict(gw.failures),
        failed_with_alternative=gw.failed_with_alternative,
        wall_s=time.perf_counter() - started, events=loop.events_run,
        classes={} if keyed is None else {c: ClassReport.of(gw.by_class[c]) for c in (KEYED, ANONYMOUS)},
    )  # fmt: skip


class _Act:
    def __init__(
        self,
        act: Callable[[dict[str, SimNode], random.Random], None],
        nodes: dict[str, SimNode],
        rng: random.Random,
    ) -> None:
        self.act, self.nodes, self.rng = act, nodes, rng

    def __call__(self, _: object) -> None:
        self.act(self.nodes, self.rng)


def _registry(
    loop: EventLoop,
    nodes: dict[str, SimNode],
    strat: Strategy,
    rng: random.Random,
    duration: float,
    changed: Callable[[], None],
) -> None:
    """Heartbeats (sent by live nodes, delivered late) and the registry's staleness sweep;
    a heartbeat delivered is a change of routing (``changed``: the gateway's waiters look
    again, as ``registry/routing.py``'s ``heartbeat`` wakes them)."""
    last: dict[str, float] = dict.fromkeys(nodes, 0.0)
    routable = dict.fromkeys(nodes, True)

    def deliver(arg: tuple[str, int, int]) -> None:
        nid, in_flight, queued = arg
        last[nid] = loop.now
        if not routable[nid]:
            routable[nid] = True
            strat.set_routable(nid, True)
        strat.heartbeat(nid, loop.now, in_flight, queued)
        changed()

    def send(node: SimNode) -> None:
        if node.alive:
            loop.after(0.1 + 0.9 * rng.random(), deliver,
                       (node.node_id, node.running, node.queued))  # fmt: skip
            if loop.now + HEARTBEAT_S < duration + 5.0:
                loop.after(HEARTBEAT_S, send, node)

    def sweep(_: object) -> None:
        now = loop.now
        for nid, seen in last.items():
            if routable[nid] and now - seen > STALE_S:
                routable[nid] = False
                strat.set_routable(nid, False)
        if now + 1.0 < duration + 5.0:
            loop.after(1.0, sweep)

    for node in nodes.values():
        loop.at(rng.random() * HEARTBEAT_S, send, node)
    loop.at(1.0, sweep)
