"""What the public sees of canary tallies: coarse counts, as at the last whole period.

``GET /mesh/nodes`` (``canary_passed``, ``trust_score``), ``llm-mesh node info`` and the
dashboard (Nodes, the node page, the operator's view) show every node its own tally.
Shown live, a node that reads them after each request it answers learns which of its
requests were probes (the count moved by one after it answered that one), and so the
prompts, shapes and times probes have: everything it needs to tell the next ones apart,
a private prompt pool included. So they show the tally as it stood at the start of the
current period (``period_s``, one hour by default, periods aligned to the epoch in UTC),
which holds on average one probe per model of an hour's requests. A failed probe is not
delayed: it quarantines the node, shown at once (the node is caught; routing and held
earnings act on it at once anyway), so its count (``canary_failed``) tells nothing more.

An hour late is not enough for a node with few requests in an hour: the tally still
stepped once per probe, and a step says that one of the hour's requests was a probe (a
node can fill any hour with requests of its own, pinned to itself and paid by the pool,
and know them, so withholding the tally of quiet hours does not help). So passed probes
are shown coarse (:func:`coarse`): the largest power of two not above the count, a lower
bound (at least that many passed, fewer than twice), which moves at the 1st, 2nd, 4th,
8th … probe: of ``n`` probes a watching node sees ``floor(log2 n) + 1`` steps, not ``n``.
The public trust score is computed from the coarse count; the last probe's time (its day
stepped once a day) is the admin's only. Routing (``trusted_only``) and the admin's
listing use the exact, live counts.

Pure: times are passed in (seconds since the epoch).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

__all__ = ["DEFAULT_PERIOD_S", "DelayedTally", "Tally", "coarse"]

DEFAULT_PERIOD_S = 3600.0


@dataclass(frozen=True)
class Tally:
    """A (node, model)'s passed probes."""

    passed: int = 0


class DelayedTally:
    """Each (node, model)'s tallies over time; :meth:`shown` gives the one at the start of
    the current period. Older entries than that one are dropped as it is read."""

    def __init__(self, period_s: float = DEFAULT_PERIOD_S) -> None:
        if not period_s > 0:
            raise ValueError("period_s must be positive")
        self.period_s = period_s
        self._history: dict[tuple[str, str], list[tuple[float, Tally]]] = {}

    def note(self, node_id: str, model: str, at: float, tally: Tally) -> None:
        """The tally as of ``at`` (a verdict's or a load's time)."""
        hist = self._history.setdefault((node_id, model), [])
        i = bisect.bisect_right([t for t, _ in hist], at)
        hist.insert(i, (at, tally))

    def boundary(self, now: float) -> float:
        """The start of the period ``now`` is in."""
        return math.floor(now / self.period_s) * self.period_s

    def shown(self, node_id: str, model: str, now: float) -> Tally:
        """The tally at the start of ``now``'s period (nothing before it: an empty one)."""
        hist = self._history.get((node_id, model))
        if not hist:
            return Tally()
        cut = self.boundary(now)
        i = bisect.bisect_right([t for t, _ in hist], cut)
        if i == 0:
            return Tally()
        del hist[: i - 1]  # what came before the tally shown is never shown again
        return hist[0][1]


def coarse(passed: int) -> int:
    """Passed probes as the public sees them: the largest power of two not above
    ``passed`` (1, 2, 2, 4, 4, 4, 4, 8, …), 0 for none."""
    if passed < 0:
        raise ValueError("passed must not be negative")
    return 0 if passed == 0 else 1 << (passed.bit_length() - 1)
