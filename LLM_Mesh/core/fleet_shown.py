"""What each node has shown it serves at every replica, for the anonymous share where Redis
counts every replica's requests together. Pure: the publisher (``registry/redis_shown.py``)
does the I/O and passes Redis' clock.

share35 counted of a node only the slots it has shown it serves (``route_pools.shown_slots``),
as this process saw them. With a Redis URL the count held to the cap is every replica's, so
a replica that served a node one request at a time capped the fleet at its own small view
(found 2026-12-06, review35c), and the share counted the declared slots again, so an open
phantom (P ≥ ⌈H/3⌉ slots beside H honest ones at share 0.75) lifted the cap (share35's gap
A). Since redisshare36 each replica publishes :func:`own_room` of every node answered there
(:func:`published`) and reads the others' (:func:`fleet_sums`: the live ones summed per
node, stale ones left out); the sum is ``NodeStats.shown_elsewhere`` and
``route_pools.shown_slots`` counts own room + that, at most the node's slots: what the
fleet has seen it serve. ``-1``: no other replica published it (nor did the node answer
there); ``0``: it answered elsewhere but shows nothing now (the model counts shown slots,
not declared ones, ``Router.slots``).

Cadence: published every :data:`PUBLISH_S`; a replica not heard for :data:`FADE_S` is
left out (its hash expires then too), so a dead replica's view fades within ``FADE_S``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from LLM_Mesh.core.route_pools import Pools
from LLM_Mesh.core.scoring import NodeStats

__all__ = ["FADE_S", "NONE_ELSEWHERE", "PUBLISH_S", "apply", "changes", "fleet_sums", "own_room",
           "published"]  # fmt: skip

#: how often a replica publishes its nodes' rooms and reads the others' (one round trip)
PUBLISH_S = 2.0
#: a replica not heard for this long is left out of the sums (3 missed publications)
FADE_S = 3 * PUBLISH_S
#: ``NodeStats.shown_elsewhere`` when no other replica published the node
NONE_ELSEWHERE = -1


def own_room(st: NodeStats) -> int:
    """What this process has seen ``st`` serve: ``st.shown``, or ``2n + 1`` while it holds
    ``n`` of this process's requests, at most its slots (``route_pools.shown_slots`` before
    the idle slots of a full node are taken off: each replica takes off its own)."""
    n, room = st.in_flight, st.shown
    if n > 0 and 2 * n + 1 > room:
        room = 2 * n + 1
    return min(room, max(0, st.max_concurrency))


def published(nodes: Iterable[NodeStats]) -> dict[str, int]:
    """node id -> :func:`own_room`, of the nodes answered here (``NodeStats.answered``)."""
    return {st.node_id: own_room(st) for st in nodes if st.answered}


def apply(
    nodes: Collection[NodeStats], pools: Pools, elsewhere: Mapping[str, int] | None
) -> dict[str, int]:
    """Set each node's ``shown_elsewhere`` to ``elsewhere``'s (``None``: nothing known, as
    while Redis is out; a node not in it: :data:`NONE_ELSEWHERE`), recounted by ``pools``
    where it changed (``Pools.elsewhere``); :func:`published` of ``nodes``, to publish."""
    for st in nodes:
        pools.elsewhere(
            st, NONE_ELSEWHERE if elsewhere is None else elsewhere.get(st.node_id, NONE_ELSEWHERE)
        )
    return published(nodes)


def changes(
    sent: Mapping[str, int] | None, now: Mapping[str, int]
) -> tuple[dict[str, int], list[str]]:
    """What to write to this replica's hash to go from ``sent`` (``None``: unknown, write it
    whole) to ``now``: the fields to set, the fields to delete."""
    if sent is None:
        return dict(now), []
    sets = {k: v for k, v in now.items() if sent.get(k) != v}
    return sets, [k for k in sent if k not in now]


def fleet_sums(
    views: Iterable[tuple[float, Mapping[Any, Any]]], now: float, fade_s: float = FADE_S
) -> dict[str, int]:
    """node id -> the sum of the other replicas' published rooms: ``views`` are (when the
    replica published, on Redis' clock; its hash), those older than ``fade_s`` at ``now``
    left out; a value that is not a whole number >= 0 counts 0 (the node answered there)."""
    sums: dict[str, int] = {}
    for at, fields in views:
        if not now - at <= fade_s:  # stale (a NaN too)
            continue
        for node, raw in fields.items():
            name = node.decode() if isinstance(node, bytes) else str(node)
            try:
                value = max(0, int(raw))
            except (TypeError, ValueError):
                value = 0
            sums[name] = sums.get(name, 0) + value
    return sums
