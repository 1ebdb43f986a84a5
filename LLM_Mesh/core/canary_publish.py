"""What the public sees of canary tallies: the counts as they were at the last whole period.

``GET /mesh/nodes`` (``canary_passed``, ``trust_score``), ``llm-mesh node
info`` and the dashboard (the node page, the operator's view) show every node its own
tally. Shown live, a node that reads them after each request it answers learns which of
its requests were probes (the count moved by one after it answered that one), and so the
prompts, shapes and times probes have: everything it needs to tell the next ones apart,
a private prompt pool included. So they show the tally as it stood at the start of the
current period (``period_s``, one hour by default, periods aligned to the epoch in UTC),
which holds on average one probe per model of an hour's requests; the last probe's time
only as its UTC day (:func:`day`). A failed probe is not delayed: it quarantines the node,
shown at once (the node is caught; routing and held earnings act on it at once anyway),
so its count (``canary_failed``) tells nothing more.

Pure: times are passed in (seconds since the epoch).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["DEFAULT_PERIOD_S", "DelayedTally", "Tally", "day"]

DEFAULT_PERIOD_S = 3600.0


@dataclass(frozen=True)
class Tally:
    """A (node, model)'s passed probes and the time of its last probe."""

    passed: int = 0
    last_probe_at: datetime | None = None


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


def day(at: datetime | None) -> str | None:
    """A last probe's time as the public sees it: its UTC day only."""
    return None if at is None else at.astimezone(timezone.utc).strftime("%Y-%m-%d")
