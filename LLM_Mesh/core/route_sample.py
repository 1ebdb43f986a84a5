"""The router's draws for a constrained request (regions, allowed or denied nodes).

Split from ``core/balancer.py`` (which decides; this draws its candidates, no behaviour
changed). :func:`sample` takes up to ``k`` nodes of a set that the request
:func:`~LLM_Mesh.core.scoring.permits`: rejection sampling (up to ``max_draws`` draws),
then one scan of the set; an ``allow_nodes`` list shorter than the set is walked directly
(in sorted order, then rotated at random: :func:`choose`). An unconstrained request just
draws ``k`` at random.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from LLM_Mesh.core.indexed_set import IndexedSet
from LLM_Mesh.core.scoring import NodeStats, RouteRequest, permits

__all__ = ["choose", "sample"]


def sample(
    bag: IndexedSet[NodeStats],
    req: RouteRequest,
    k: int,
    rand: Callable[[], float],
    nodes: Mapping[str, NodeStats],
    max_draws: int,
) -> list[NodeStats]:
    """Up to ``k`` distinct nodes of ``bag`` that ``req`` permits (``nodes``: every node by
    id, for an ``allow_nodes`` list)."""
    n = len(bag)
    if n == 0:
        return []
    if not req.constrained:
        return bag.draw(k, rand)
    if req.allow_nodes is not None and len(req.allow_nodes) < n:
        ok = [st for a in sorted(req.allow_nodes)
              if (st := nodes.get(a)) is not None and st in bag and permits(req, st)]  # fmt: skip
        return choose(ok, k, rand)
    found: list[NodeStats] = []
    for _ in range(max_draws):
        st = bag.at(int(rand() * n))
        if st not in found and permits(req, st):
            found.append(st)
            if len(found) == k:
                return found
    return choose([st for st in bag if permits(req, st)], k, rand)


def choose(ok: list[NodeStats], k: int, rand: Callable[[], float]) -> list[NodeStats]:
    """``k`` distinct of ``ok`` at random; all of them (rotated at random) if no more."""
    if len(ok) <= k:
        off = int(rand() * len(ok)) if ok else 0
        return ok[off:] + ok[:off]
    out: list[NodeStats] = []
    while len(out) < k:
        st = ok[int(rand() * len(ok))]
        if st not in out:
            out.append(st)
    return out
