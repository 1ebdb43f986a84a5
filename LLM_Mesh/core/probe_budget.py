"""How often to probe each node and model: the canary's budget.

At most ``share`` (default 1 %) of a node's capacity goes to probes, and every
model it serves gets at least one probe per ``min_interval_s`` (default an hour) on average;
the minimum wins when 1 % of a small node's capacity is less. Capacity is what the
node could serve in an hour: ``max_concurrency × 3600 / service_s``.

Probe times are a Poisson process at that rate: the wait before the next probe (and
before the first one, :meth:`ProbeBudget.first_due`) is drawn from an exponential
distribution with the interval as its mean. Memoryless: however long since the last
probe (or since a registration), the chance of one in the next minute is the same, so a
node learns nothing from the clock: no quiet time after a probe to lie in safely (a
uniform draw in ``[0.5, 1.5] × interval``, used until 2026-12-05, left half an interval
free of probes after each one), no deadline by which one must come. "At least one probe
per model per ``min_interval_s``" is therefore a rate (the mean wait), not a bound on
each wait. Pure: the clock and the random number generator are passed in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DEFAULT_SHARE = 0.01
HOUR_S = 3600.0


@dataclass(frozen=True)
class ProbeBudget:
    share: float = DEFAULT_SHARE
    min_interval_s: float = HOUR_S

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("share must be between 0 and 1")
        if self.min_interval_s <= 0:
            raise ValueError("min_interval_s must be positive")

    def probes_per_hour(self, *, max_concurrency: int, service_s: float, models: int) -> float:
        """Probes an hour for a node: ``share`` of its capacity, at least one per model
        per ``min_interval_s``."""
        capacity = max(1, max_concurrency) * HOUR_S / max(service_s, 1e-3)
        floor = max(1, models) * HOUR_S / self.min_interval_s
        return max(self.share * capacity, floor)

    def interval_s(self, *, max_concurrency: int, service_s: float, models: int) -> float:
        """Mean seconds between two probes of one model of that node."""
        per_hour = self.probes_per_hour(
            max_concurrency=max_concurrency, service_s=service_s, models=models
        )
        return min(self.min_interval_s, max(1, models) * HOUR_S / per_hour)

    def next_due(self, last: float, interval_s: float, rng: random.Random) -> float:
        """When the next probe is due: ``last`` plus an exponential wait of mean
        ``min(interval_s, min_interval_s)`` (a Poisson process; see the module docstring)."""
        return last + rng.expovariate(1.0 / max(min(interval_s, self.min_interval_s), 1e-9))

    def first_due(self, now: float, interval_s: float, rng: random.Random) -> float:
        """When a pair first seen at ``now`` is first probed: the same exponential wait
        (memoryless, so a registration tells a node nothing of when probes come)."""
        return self.next_due(now, interval_s, rng)


def share_used(probes: int, capacity_requests: float) -> float:
    """The fraction of capacity ``probes`` took (for checks and reports)."""
    if capacity_requests <= 0 or not math.isfinite(capacity_requests):
        return 0.0
    return probes / capacity_requests
