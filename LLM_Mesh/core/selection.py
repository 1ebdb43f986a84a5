"""Choosing a node for a request, from plain data.

The least-loaded baseline the fleet simulator compares against (the gateway
routes with :class:`~LLM_Mesh.core.balancer.Router`): among healthy candidates
with spare capacity, the fewest in-flight requests relative to capacity wins; ties go to the lower latency EWMA, then
the node id (deterministic). Nodes in ``exclude`` (already tried for this
request) are skipped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    node_id: str
    url: str
    in_flight: int = 0
    queued: int = 0
    max_concurrency: int = 1
    max_queue: int = 8
    latency_ms_ewma: float | None = None
    region: str | None = None

    @property
    def capacity(self) -> int:
        return self.max_concurrency + self.max_queue

    @property
    def saturated(self) -> bool:
        return self.in_flight + self.queued >= self.capacity


def pick_least_loaded(
    candidates: Sequence[Candidate], exclude: Collection[str] = ()
) -> Candidate | None:
    best: Candidate | None = None
    best_key: tuple[float, float, str] | None = None
    for c in candidates:
        if c.node_id in exclude or c.saturated:
            continue
        key = (
            (c.in_flight + c.queued) / max(1, c.max_concurrency),
            c.latency_ms_ewma if c.latency_ms_ewma is not None else 0.0,
            c.node_id,
        )
        if best_key is None or key < best_key:
            best, best_key = c, key
    return best
