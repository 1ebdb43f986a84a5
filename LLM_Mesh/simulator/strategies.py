"""Routing strategies the simulator compares, all fed only what a gateway sees.

``ours`` is :class:`LLM_Mesh.core.balancer.Router` (peak-EWMA scoring, the best
of a random sample of 4, outlier ejection, slow start). ``least-loaded`` calls
:func:`LLM_Mesh.core.selection.pick_least_loaded` over ``Candidate`` s built from
the gateway's in-flight counts and heartbeats. ``random`` and ``round-robin``
are the textbook baselines. All four see the same heartbeats and the same
routable set (the registry drops a node whose heartbeats stop).
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from LLM_Mesh.core.balancer import Outcome, Router, RoutingPolicy, Verdict
from LLM_Mesh.core.ewma import Ewma
from LLM_Mesh.core.indexed_set import IndexedSet
from LLM_Mesh.core.scoring import RouteRequest
from LLM_Mesh.core.selection import Candidate, pick_least_loaded

__all__ = ["STRATEGIES", "Strategy", "make_strategy"]

MODEL = "sim-model"
Pick = tuple[str | None, Verdict, float | None]


class Strategy(Protocol):
    name: str

    def add_node(
        self, node_id: str, region: str | None, conc: int, queue: int, now: float
    ) -> None: ...
    def pick(
        self, now: float, exclude: frozenset[str], tokens: int, keyed: bool = False
    ) -> Pick: ...
    def begin(self, node_id: str, now: float, keyed: bool = False) -> Any: ...
    def first_token(self, handle: Any, now: float) -> None: ...
    def finish(self, handle: Any, now: float, outcome: Outcome, tokens: int) -> None: ...
    def heartbeat(self, node_id: str, now: float, in_flight: int, queued: int) -> None: ...
    def set_routable(self, node_id: str, routable: bool) -> None: ...
    def slots(self) -> int: ...
    def pool_counts(self) -> tuple[int, int]: ...


class Ours:
    name = "ours"

    def __init__(self, rng: random.Random, policy: RoutingPolicy | None = None) -> None:
        self.router = Router(policy, rng)

    def add_node(self, node_id: str, region: str | None, conc: int, queue: int, now: float) -> None:
        self.router.upsert_node(
            node_id, (MODEL,), now=now, region=region, max_concurrency=conc, max_queue=queue
        )

    def pick(self, now: float, exclude: frozenset[str], tokens: int, keyed: bool = False) -> Pick:
        route = RouteRequest((MODEL,), expected_tokens=tokens, exclude=exclude, keyed=keyed)
        d = self.router.pick(route, now)
        return d.node_id, d.verdict, d.wait_s

    def begin(self, node_id: str, now: float, keyed: bool = False) -> Any:
        return self.router.begin(node_id, MODEL, now, keyed)

    def first_token(self, handle: Any, now: float) -> None:
        self.router.first_token(handle, now)

    def finish(self, handle: Any, now: float, outcome: Outcome, tokens: int) -> None:
        self.router.finish(handle, now, outcome, completion_tokens=tokens)

    def heartbeat(self, node_id: str, now: float, in_flight: int, queued: int) -> None:
        self.router.heartbeat(node_id, now, in_flight=in_flight, queued=queued)

    def set_routable(self, node_id: str, routable: bool) -> None:
        self.router.set_routable(node_id, routable)

    def slots(self) -> int:
        """The model's slots as the gateway sees them (``Router.slots``: routable, not
        ejected), what the anonymous share is a share of."""
        return self.router.slots(MODEL)

    def pool_counts(self) -> tuple[int, int]:
        """The model's routable nodes open and full for an anonymous request
        (``Router.pool_counts``), what the gateway's ``AnonymousLast`` reads."""
        open_, full, _ = self.router.pool_counts(MODEL)
        return open_, full


class _Baseline:
    """Shared gateway-side bookkeeping of the baselines."""

    name = "baseline"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.routable: IndexedSet[str] = IndexedSet()
        self.in_flight: dict[str, int] = {}
        self.hb_load: dict[str, int] = {}
        self.cap: dict[str, tuple[int, int]] = {}
        self.latency: dict[str, Ewma] = {}
        self._slots = 0  # max_concurrency summed over the routable nodes

    def add_node(self, node_id: str, region: str | None, conc: int, queue: int, now: float) -> None:
        self.routable.add(node_id)
        self._slots += conc
        self.in_flight[node_id] = 0
        self.hb_load[node_id] = 0
        self.cap[node_id] = (conc, queue)
        self.latency[node_id] = Ewma(10.0)
        self._changed(node_id)

    def _changed(self, node_id: str) -> None:
        pass

    def begin(self, node_id: str, now: float, keyed: bool = False) -> Any:
        self.in_flight[node_id] += 1
        self._changed(node_id)
        return (node_id, now)

    def first_token(self, handle: Any, now: float) -> None:
        pass

    def finish(self, handle: Any, now: float, outcome: Outcome, tokens: int) -> None:
        node_id, started = handle
        self.in_flight[node_id] -= 1
        if outcome is Outcome.SUCCESS:
            self.latency[node_id].observe((now - started) * 1000.0, now)
        self._changed(node_id)

    def heartbeat(self, node_id: str, now: float, in_flight: int, queued: int) -> None:
        self.hb_load[node_id] = in_flight + queued
        self._changed(node_id)

    def set_routable(self, node_id: str, routable: bool) -> None:
        if routable != (node_id in self.routable):
            self._slots += self.cap[node_id][0] if routable else -self.cap[node_id][0]
        if routable:
            self.routable.add(node_id)
        else:
            self.routable.discard(node_id)
        self._changed(node_id)

    def slots(self) -> int:
        return self._slots

    def pool_counts(self) -> tuple[int, int]:
        """The baselines keep no pools: every routable node counts as open (their pick
        says whether one is full)."""
        return len(self.routable), 0

    def pick(self, now: float, exclude: frozenset[str], tokens: int, keyed: bool = False) -> Pick:
        raise NotImplementedError

    def _any(self, exclude: frozenset[str]) -> str | None:
        n = len(self.routable)
        for _ in range(16):
            if n == 0:
                return None
            nid = self.routable.at(int(self.rng.random() * n))
            if nid not in exclude:
                return nid
        rest = [nid for nid in self.routable if nid not in exclude]
        return self.rng.choice(rest) if rest else None


class RandomChoice(_Baseline):
    name = "random"

    def pick(self, now: float, exclude: frozenset[str], tokens: int, keyed: bool = False) -> Pick:
        nid = self._any(exclude)
        return nid, Verdict.OK if nid else Verdict.NO_NODE, None


class RoundRobin(_Baseline):
    name = "round-robin"
    _next = 0

    def pick(self, now: float, exclude: frozenset[str], tokens: int, keyed: bool = False) -> Pick:
        n = len(self.routable)
        for _ in range(n):
            self._next = (self._next + 1) % n
            nid = self.routable.at(self._next)
            if nid not in exclude:
                return nid, Verdict.OK, None
        return None, Verdict.NO_NODE, None


class LeastLoaded(_Baseline):
    """The gateway's strategy before this work: ``core.selection.pick_least_loaded``."""

    name = "least-loaded"

    def __init__(self, rng: random.Random) -> None:
        self.cands: dict[str, Candidate] = {}
        super().__init__(rng)

    def _changed(self, node_id: str) -> None:
        if node_id not in self.routable:
            self.cands.pop(node_id, None)
            return
        own = self.in_flight[node_id]
        conc, queue = self.cap[node_id]
        self.cands[node_id] = Candidate(
            node_id=node_id,
            url="",
            in_flight=own,
            queued=max(0, self.hb_load[node_id] - own),
            max_concurrency=conc,
            max_queue=queue,
            latency_ms_ewma=self.latency[node_id].value,
        )

    def pick(self, now: float, exclude: frozenset[str], tokens: int, keyed: bool = False) -> Pick:
        c = pick_least_loaded(list(self.cands.values()), exclude)
        if c is not None:
            return c.node_id, Verdict.OK, None
        left = any(nid not in exclude for nid in self.cands)
        return None, Verdict.SATURATED if left else Verdict.NO_NODE, None


STRATEGIES: dict[str, type[Ours] | type[_Baseline]] = {
    "random": RandomChoice,
    "round-robin": RoundRobin,
    "least-loaded": LeastLoaded,
    "ours": Ours,
}


def make_strategy(name: str, rng: random.Random) -> Strategy:
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}")
    return cls(rng)
