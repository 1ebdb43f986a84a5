"""A batch of :class:`~LLM_Mesh.core.canary_departures.DepartureTally` additions, as one
step any replica can apply to the tally the store holds (``registry/canary_departures_sync.py``).

A tally is a CUSUM: each probe maps the score ``s`` to ``max(0, s + x)``. Such maps compose
into one of the form ``s ↦ max(floor, s + shift)``: ``shift`` the sum of the batch's ``x``,
``floor`` the CUSUM of the batch from 0 (``max(0, max(a, s + b) + x) = max(max(0, a + x),
s + b + x)``). So a replica's batch is two numbers a tally whatever the row holds when the
batch reaches it: applied under the row's lock it is exactly the CUSUM of the probes in the
order the batches reached the row, each probe once, whoever else added to it (an addition
of scores, or a row written back with a value read before, would count a probe twice or
lose one). The counts (probes, departures, at the first token since the score was last 0)
follow: where ``s + shift > floor`` the score never reached 0 in the batch (it would then
have met the path from 0 and ended at ``floor``), so the row's counts and the batch's add
up; else the batch's from its last 0 (``fresh``). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from LLM_Mesh.core.canary_departures import DepartureTally, Evidence

__all__ = ["Counts", "Step"]


@dataclass(frozen=True)
class Counts:
    """A tally's numbers: its score and counts (``DepartureTally``'s)."""

    score: float = 0.0
    probes: int = 0
    departures: int = 0
    at_first: int = 0


@dataclass
class Step:
    """One key's batch of probes (module docstring)."""

    shift: float = 0.0
    """The sum of the batch's log-ratios."""
    fresh: DepartureTally = field(default_factory=DepartureTally)
    """The batch's CUSUM from 0: its score is the map's floor."""
    probes: int = 0
    departures: int = 0
    at_first: int = 0

    @property
    def floor(self) -> float:
        return self.fresh.score

    def add(self, ev: Evidence) -> None:
        """One more probe, after the batch's."""
        self.shift += ev.log_ratio
        self.fresh.add(ev)
        self.probes += 1
        if ev.left_at is not None:
            self.departures += 1
            self.at_first += ev.left_at == 0

    def apply(self, to: Counts) -> Counts:
        """The tally ``to`` after the batch (module docstring)."""
        if to.score + self.shift > self.floor:
            return Counts(to.score + self.shift, to.probes + self.probes,
                          to.departures + self.departures, to.at_first + self.at_first)  # fmt: skip
        f = self.fresh
        return Counts(f.score, f.probes, f.departures, f.at_first)

    def then(self, later: Step) -> Step:
        """This batch followed by ``later``'s probes, as one (a failed write's, kept)."""
        f = self.fresh
        after = later.apply(Counts(f.score, f.probes, f.departures, f.at_first))
        fresh = DepartureTally(after.score, after.probes, after.departures, after.at_first)
        return Step(self.shift + later.shift, fresh, self.probes + later.probes,
                    self.departures + later.departures, self.at_first + later.at_first)  # fmt: skip
