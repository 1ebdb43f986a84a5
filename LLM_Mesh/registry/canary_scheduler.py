"""Background canary probes: :class:`CanaryScheduler`, and the prompt pool they draw from.

:class:`CanaryScheduler` probes (``registry/canary.CanaryProber``) in the background within the
budget of ``core/probe_budget.py`` (≤ 1 % of a node's capacity, ≥ 1 probe per model per hour
on average, at the times of a Poisson process). :func:`load_pool` reads the prompts probes
draw from. Out of ``canary.py`` (verifier44: at 599 lines).
"""

from __future__ import annotations

import random
from pathlib import Path

from LLM_Mesh.core.canary_prompts import parse_pool, pool_for
from LLM_Mesh.core.probe_budget import ProbeBudget
from LLM_Mesh.registry.canary import CanaryProber, ProbeResult
from LLM_Mesh.registry.poller import Poller
from LLM_Mesh.text_files import read_text

__all__ = ["CanaryScheduler", "load_pool"]


class CanaryScheduler(Poller):
    """Background probes within the budget (``core/probe_budget.py``).

    Each (node, model) pair with a verifier is probed at the times of a Poisson process
    at the budget's rate: its first probe an exponential wait after it is first seen, each
    next one an exponential wait after the last. The loop sleeps until the earliest due
    time (at most ``interval_s``, to see new pairs), so a probe leaves when its drawn time
    comes, not at the next tick of a fixed period (a lattice of send times a node could
    learn from its clock). A pair that is no longer a target (its node gone, unhealthy or
    quarantined, no verifier) is forgotten: back, it gets a fresh draw, not a probe at
    once for a time that passed while it was away (a burst right after a registration).
    """

    task_name = "llm-mesh-canary"

    def __init__(
        self,
        prober: CanaryProber,
        budget: ProbeBudget,
        *,
        interval_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.prober = prober
        self.budget = budget
        self.interval_s = interval_s
        self.rng = rng or random.Random()
        self.due: dict[tuple[str, str], float] = {}
        self.next_at: float | None = None
        """The earliest due time after the last poll (``None``: nothing scheduled)."""

    def wait_s(self) -> float:
        """Until the earliest due time, at most ``interval_s``."""
        if self.next_at is None:
            return self.interval_s
        return max(0.0, min(self.interval_s, self.next_at - self.prober.rt.clock()))

    async def poll(self) -> list[ProbeResult]:
        rt = self.prober.rt
        self.next_at = None
        # nothing to compare with (no mark, or marks made before 0034 only: review43): no
        if not any(self.prober.quality.verifiers.values()):  # walk over every node (10,000
            self.due.clear()  # of them every interval_s held the loop)
            return []
        now = rt.clock()
        results = []
        seen: set[tuple[str, str]] = set()
        for node_id, model in self.prober.targets():
            if not self.prober.verifiers_for(node_id, model):
                continue
            entry = rt.table.get(node_id)
            if entry is None:
                continue
            interval = self.budget.interval_s(
                max_concurrency=entry.max_concurrency, service_s=1.0, models=len(entry.models)
            )
            key = (node_id, model)
            seen.add(key)
            if key not in self.due:
                self.due[key] = self.budget.first_due(now, interval, self.rng)
            if rt.clock() >= self.due[key]:
                results.append(await self.prober.probe(node_id, model))
                self.due[key] = self.budget.next_due(rt.clock(), interval, self.rng)
        for key in [k for k in self.due if k not in seen]:
            del self.due[key]
        self.next_at = min(self.due.values(), default=None)
        return results


def load_pool(path: Path | None, mode: str = "mix") -> tuple[str, ...]:
    """The prompts probes draw from: the public pool, with (``mix``) or replaced by
    (``replace``) the prompts of the admin's file at ``path`` (``core/canary_prompts.py``);
    a file that cannot be read or is not a pool is a :class:`ValueError` naming it, raised
    at start."""
    private: tuple[str, ...] = ()
    if path is not None:
        source = f"the canary prompt file {path}"
        text = read_text(path, "the canary prompt file")
        private = parse_pool(text, source)
    return pool_for(private, mode)
