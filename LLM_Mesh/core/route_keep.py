"""A pick's draws over a pool's two kinds of sets: those of the nodes that keep no prompts
for the model and those of the nodes that may (``core/route_pools.Pool.open_keep``, ...).

Split from ``core/balancer.py`` (found 2026-12-06, keeppick34): a request that did not opt
in to nodes that may keep prompts named them all in its ``deny_nodes``, so each of its
picks drew past them (16 rejected draws, then a scan of the open set): O(such nodes) per
request, and registrations cost nothing. Now such a request draws from the other sets
only, O(1) whatever their number; an opted-in one (``RouteRequest.keepers``) draws from
both as from one set (:class:`Both`: uniform over their union, as before the split).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from LLM_Mesh.core.indexed_set import IndexedRows, IndexedSet, draw_positions
from LLM_Mesh.core.route_pools import Pool
from LLM_Mesh.core.route_sample import sample
from LLM_Mesh.core.scoring import NodeStats, RouteRequest, ScoringPolicy, cheapest_rows

__all__ = ["Both", "cheapest_in", "full_sets", "open_sets"]

Part = tuple[IndexedRows[NodeStats], list[int]]  # a set and the positions drawn in it


class Both(IndexedSet[NodeStats]):
    """Two sets read as one (``a``'s members, then ``b``'s): a view, nothing copied."""

    __slots__ = ("a", "b")

    def __init__(self, a: IndexedSet[NodeStats], b: IndexedSet[NodeStats]) -> None:
        self.a, self.b = a, b  # no members of its own

    def __len__(self) -> int:
        return len(self.a) + len(self.b)

    def __contains__(self, item: object) -> bool:
        return item in self.a or item in self.b

    def __iter__(self) -> Iterator[NodeStats]:
        return iter([*self.a, *self.b])

    def at(self, i: int) -> NodeStats:
        n = len(self.a)
        return self.a.at(i) if i < n else self.b.at(i - n)

    def draw(self, k: int, rand: Callable[[], float]) -> list[NodeStats]:
        return [self.at(i) for i in draw_positions(len(self), k, rand)]


def open_sets(pool: Pool, req: RouteRequest, kept: bool) -> tuple[IndexedRows[NodeStats], ...]:
    """The row sets ``req`` draws from in ``pool``: the open ones, or the kept ones
    (``kept``); the keepers' too where it opted in and the pool has some."""
    if kept:
        return (pool.kept, pool.kept_keep) if req.keepers and pool.kept_keep else (pool.kept,)
    return (pool.open, pool.open_keep) if req.keepers and pool.open_keep else (pool.open,)


def full_sets(pool: Pool, req: RouteRequest) -> tuple[IndexedSet[NodeStats], ...]:
    """The sets of ``pool``'s nodes full for ``req`` (for an anonymous one, the kept ones
    too), the keepers' where it opted in."""
    sets: tuple[IndexedSet[NodeStats], ...] = (pool.full,) if req.keyed else (pool.full, pool.kept)
    if req.keepers:
        sets += (pool.full_keep,) if req.keyed else (pool.full_keep, pool.kept_keep)
    return sets


def draw(
    bags: tuple[IndexedRows[NodeStats], ...],
    req: RouteRequest,
    k: int,
    rand: Callable[[], float],
    nodes: Mapping[str, NodeStats],
    max_draws: int,
) -> list[Part]:
    """Up to ``k`` distinct permitted members of ``bags`` (one set, or a pair read as one:
    :class:`Both`), by the set they are in."""
    if len(bags) == 1:
        bag = bags[0]
        if req.constrained:
            slots = [bag.slot(st) for st in sample(bag, req, k, rand, nodes, max_draws)]
        else:
            slots = bag.draw_slots(k, rand)
        return [(bag, slots)] if slots else []
    a, b = bags
    na = len(a)
    if req.constrained:
        got = sample(Both(a, b), req, k, rand, nodes, max_draws)
        sa = [a.slot(st) for st in got if st in a]
        sb = [b.slot(st) for st in got if st not in a]
    else:
        drawn = draw_positions(na + len(b), k, rand)
        sa = [i for i in drawn if i < na]
        sb = [i - na for i in drawn if i >= na]
    return [(bag, s) for bag, s in ((a, sa), (b, sb)) if s]


def cheapest_in(
    pool: Pool,
    req: RouteRequest,
    k: int,
    rand: Callable[[], float],
    nodes: Mapping[str, NodeStats],
    max_draws: int,
    score: tuple[int, float, ScoringPolicy, Callable[[str, float], float] | None, float],
) -> tuple[NodeStats | None, float]:
    """The cheapest of ``k`` nodes drawn from ``pool``'s open sets for ``req`` (a keyed one
    draws from the kept ones when no open one is permitted), and its cost; ``score``: the
    tokens, now, policy, weight and factor of ``scoring.cheapest_rows``."""
    parts = draw(open_sets(pool, req, False), req, k, rand, nodes, max_draws)
    if not parts and req.keyed and (len(pool.kept) or (req.keepers and len(pool.kept_keep))):
        parts = draw(open_sets(pool, req, True), req, k, rand, nodes, max_draws)
    tokens, now, sp, weight, factor = score
    best: NodeStats | None = None
    best_cost = 0.0
    for bag, slots in parts:
        i, cost = cheapest_rows(bag.vals, slots, bag.members, tokens, now, sp, weight, factor)
        if best is None or cost < best_cost:
            best, best_cost = bag.at(i), cost
    return best, best_cost
