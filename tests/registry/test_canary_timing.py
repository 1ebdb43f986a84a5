"""When the canary scheduler sends probes, played as a node watching its clock.

A stub prober stands in for the gateway (its ``probe`` only notes the time): what is
tested is when the scheduler's loop, sleeping ``wait_s()`` between ticks, sends.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from LLM_Mesh.core.probe_budget import ProbeBudget
from LLM_Mesh.registry.canary import ProbeResult
from LLM_Mesh.registry.canary_scheduler import CanaryScheduler
from tests.registry.helpers import running

MODEL = "gemma-3-270m"


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StubProber:
    """What :class:`CanaryScheduler` asks of a prober: targets, verifiers, a probe."""

    clock: Clock
    nodes: set[str] = field(default_factory=lambda: {"a"})
    sent: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        entry = SimpleNamespace(max_concurrency=1, models={MODEL: None})
        self.rt = SimpleNamespace(
            clock=self.clock,
            table=SimpleNamespace(get=lambda n: entry if n in self.nodes else None),
        )
        # node id -> its marks (model -> sha256), as ``Quality.verifiers`` (verifier43)
        self.quality = SimpleNamespace(verifiers={"verifier": {MODEL: "a" * 64}})

    def targets(self) -> list[tuple[str, str]]:
        return [(n, MODEL) for n in sorted(self.nodes)]

    def verifiers_for(self, node_id: str, model: str) -> list[str]:
        return ["verifier"]

    async def probe(self, node_id: str, model: str) -> ProbeResult:
        self.sent.append((node_id, self.clock.now))
        return ProbeResult(node_id, model, "pass")


def scheduler(prober: StubProber, *, mean_s: float, seed: int = 7) -> CanaryScheduler:
    budget = ProbeBudget(share=0.0, min_interval_s=mean_s)
    return CanaryScheduler(prober, budget, rng=random.Random(seed))  # type: ignore[arg-type]


async def run_loop(sched: CanaryScheduler, clock: Clock, until: float) -> None:
    """The poller's loop on a virtual clock: tick, then sleep ``wait_s()``."""
    while clock.now < until:
        await sched.tick()
        clock.now += max(sched.wait_s(), 1e-6)


async def test_probes_leave_at_their_drawn_times_not_on_the_ticks() -> None:
    """Ticking every ``interval_s`` (5 s) sent every probe on a lattice of the loop's
    ticks: a node seeing requests arrive at a fixed phase of 5 s (from its own clock)
    knew them for probes. Now the loop wakes at the due time: the phases spread."""
    clock = Clock()
    prober = StubProber(clock)
    sched = scheduler(prober, mean_s=60.0)
    start = clock.now
    await run_loop(sched, clock, start + 60.0 * 300)
    times = [t for _, t in prober.sent]
    assert len(times) > 200
    phases = [(t - start) % sched.interval_s for t in times]
    on_lattice = sum(p < 0.05 or p > sched.interval_s - 0.05 for p in phases) / len(phases)
    assert on_lattice < 0.1  # a spread phase puts 2 % of probes there; ticks put 100 %


async def test_the_waits_between_probes_are_exponential() -> None:
    """The node's own view of the intervals: no minimum gap, a tenth of the mean within
    the first tenth (1 - e^-0.1 = 9.5 %), and about e^-1 past the mean."""
    clock = Clock()
    prober = StubProber(clock)
    sched = scheduler(prober, mean_s=60.0, seed=11)
    await run_loop(sched, clock, clock.now + 60.0 * 2000)
    times = [t for _, t in prober.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) > 1500
    assert min(gaps) < 1.0
    assert 0.07 < sum(g < 6.0 for g in gaps) / len(gaps) < 0.12
    assert 0.33 < sum(g > 60.0 for g in gaps) / len(gaps) < 0.41


async def test_a_node_back_after_its_due_time_is_not_probed_at_once() -> None:
    """A node away (unhealthy, not a target) while its probe fell due got that probe the
    moment it came back: a probe right after every re-registration. Now a pair that left
    the targets is forgotten and, back, gets a fresh exponential draw."""
    clock = Clock()
    prober = StubProber(clock)
    sched = scheduler(prober, mean_s=600.0)
    await sched.tick()
    due = sched.due[("a", MODEL)]
    prober.nodes = set()
    clock.now = due + 3600.0  # away well past its due time
    await sched.tick()
    assert sched.due == {} and sched.wait_s() == sched.interval_s
    prober.nodes = {"a"}
    results: Any = await sched.poll()
    assert results == [] and prober.sent == []
    assert sched.due[("a", MODEL)] > clock.now


async def test_a_registration_is_followed_by_no_burst_of_probes() -> None:
    """Over many fresh nodes, the first probe after a node is first seen is as likely
    late as any other: e^-1 of them come after the mean (the uniform draw over one
    interval used before: none, every node knew its first probe came within the hour)."""
    clock = Clock()
    firsts: list[float] = []
    for seed in range(400):
        prober = StubProber(clock)
        sched = scheduler(prober, mean_s=60.0, seed=seed)
        seen_at = clock.now
        while not prober.sent:
            await sched.tick()
            clock.now += max(sched.wait_s(), 1e-6)
        firsts.append(prober.sent[0][1] - seen_at)
    assert 0.28 < sum(f > 60.0 for f in firsts) / len(firsts) < 0.45
    assert 0.05 < sum(f < 6.0 for f in firsts) / len(firsts) < 0.15


async def test_the_test_harness_runs_no_canary_scheduler_on_real_time(tmp_path: Path) -> None:
    """The registry harness (``tests/registry/helpers.running``) drives a manual clock; the
    app's own scheduler, which sleeps on real time, is stopped there, so no probe or walk of
    the targets comes from a tick that happened to fall inside a test (flakes39: one did
    when a test ran past the scheduler's 5 s interval on a loaded box)."""
    async with running(tmp_path) as h:
        assert isinstance(h.app.state.canary_scheduler, CanaryScheduler)
        ticking = [t for t in asyncio.all_tasks() if t.get_name() == "llm-mesh-canary"]
        assert ticking == []
