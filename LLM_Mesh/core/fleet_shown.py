"""What each node has shown it serves at every replica, for the anonymous share where Redis
counts every replica's requests together. Pure: the publisher (``registry/redis_shown.py``)
does the I/O and passes Redis' clock.

share35 counted of a node only the slots it has shown it serves (``route_pools.shown_slots``),
as this process saw them. With a Redis URL the count held to the cap is every replica's, so
a replica that served a node one request at a time capped the fleet at its own small view
(found 2026-12-06, review35c), and the share counted the declared slots again, so an open
phantom (P ≥ ⌈H/3⌉ slots beside H honest ones at share 0.75) lifted the cap (share35's gap
A). Since redisshare36 each replica publishes :func:`own_view` of every node answered there
(:func:`published`: what it has shown it serves there, and the requests this replica holds
there now) and reads the others' (:func:`fleet_sums`, stale ones left out). Until
2026-12-06 (trust37) their rooms were summed per node, so a phantom that answered one
request, one at a time, at each of R replicas counted R slots (R times what one replica
seeing all its answers would count). Now a node counts as if one replica had sent it every
request: the most any replica saw it serve at once (the max: ``NodeStats.shown_elsewhere``
against this replica's ``shown``), or ``2n + 1`` while the replicas hold ``n`` requests
there together (their sum: ``held_elsewhere`` added to this replica's ``in_flight``), at
most the node's slots (``route_pools.shown_slots``). The max never counts more than one
replica could have seen; its cost: an honest node that served k at once at each of R
replicas counts k, not R × k, once those requests have ended (while they are held, the
sum of the held counts them). ``-1``: no other replica published it (nor did the node
answer there); ``0``: it answered elsewhere but shows nothing now (the model counts shown
slots, not declared ones, ``Router.slots``).

Cadence: published every :data:`PUBLISH_S`; a replica not heard for :data:`FADE_S` is
left out (its hash expires then too), so a dead replica's view fades within ``FADE_S``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, NamedTuple

from LLM_Mesh.core.route_pools import Pools
from LLM_Mesh.core.scoring import NodeStats

__all__ = ["FADE_S", "NONE_ELSEWHERE", "PUBLISH_S", "Elsewhere", "apply", "changes",
           "fleet_sums", "own_room", "own_view", "parse_view", "published"]  # fmt: skip


class Elsewhere(NamedTuple):
    """What the other live replicas say of a node (:func:`fleet_sums`)."""

    shown: int  # the most any of them saw it serve at once (a max, never a sum)
    held: int  # the requests they hold there now, together (a sum)


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


def own_view(st: NodeStats) -> str:
    """What this replica publishes of ``st``: ``"<shown>"``, or ``"<shown>,<n>"`` while it
    holds ``n`` requests there (``shown`` at most the node's slots). A replica of the
    previous version publishes its room alone (``own_room``), read as ``shown``."""
    shown = min(st.shown, max(0, st.max_concurrency))
    n = st.in_flight
    return f"{shown},{n}" if n > 0 else str(shown)


def parse_view(raw: Any) -> tuple[int, int]:
    """``(shown, held)`` of a published value; one that is not what :func:`own_view`
    writes counts ``(0, 0)`` (the node answered there)."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    shown, _, held = text.partition(",")
    try:
        return max(0, int(shown)), (max(0, int(held)) if held else 0)
    except ValueError:
        return 0, 0


def published(nodes: Iterable[NodeStats]) -> dict[str, str]:
    """node id -> :func:`own_view`, of the nodes answered here (``NodeStats.answered``)."""
    return {st.node_id: own_view(st) for st in nodes if st.answered}


def apply(
    nodes: Collection[NodeStats], pools: Pools, elsewhere: Mapping[str, Elsewhere] | None
) -> dict[str, str]:
    """Set each node's ``shown_elsewhere`` and ``held_elsewhere`` to ``elsewhere``'s
    (``None``: nothing known, as while Redis is out; a node not in it:
    :data:`NONE_ELSEWHERE` and 0), recounted by ``pools`` where they changed
    (``Pools.elsewhere``); :func:`published` of ``nodes``, to publish."""
    for st in nodes:
        seen = None if elsewhere is None else elsewhere.get(st.node_id)
        if seen is None:
            pools.elsewhere(st, NONE_ELSEWHERE, 0)
        else:
            pools.elsewhere(st, seen.shown, seen.held)
    return published(nodes)


def changes(
    sent: Mapping[str, Any] | None, now: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """What to write to this replica's hash to go from ``sent`` (``None``: unknown, write it
    whole) to ``now``: the fields to set, the fields to delete."""
    if sent is None:
        return dict(now), []
    sets = {k: v for k, v in now.items() if sent.get(k) != v}
    return sets, [k for k in sent if k not in now]


def fleet_sums(
    views: Iterable[tuple[float, Mapping[Any, Any]]], now: float, fade_s: float = FADE_S
) -> dict[str, Elsewhere]:
    """node id -> :class:`Elsewhere` of the other replicas' views (:func:`parse_view`): the
    most any of them saw it serve at once, and the requests they hold there together;
    ``views`` are (when the replica published, on Redis' clock; its hash), those older than
    ``fade_s`` at ``now`` left out. Until 2026-12-06 (trust37) the rooms were summed: a
    node that answered one request at each of R replicas counted R."""
    seen: dict[str, Elsewhere] = {}
    for at, fields in views:
        if not now - at <= fade_s:  # stale (a NaN too)
            continue
        for node, raw in fields.items():
            name = node.decode() if isinstance(node, bytes) else str(node)
            shown, held = parse_view(raw)
            was = seen.get(name)
            if was is not None:
                shown, held = max(shown, was.shown), held + was.held
            seen[name] = Elsewhere(shown, held)
    return seen
