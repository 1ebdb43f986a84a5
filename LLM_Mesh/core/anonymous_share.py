"""How much of a model's capacity requests without an API key may hold at one gateway process.

Keyed requests go first on a saturated model (``registry/access.AnonymousLast``): a slot
that frees goes to a waiting keyed request. That was all: many anonymous clients (each
address within its own bounds, many addresses) could hold every slot of a model's nodes
with long streams, and a keyed request, first in line, waited for one of them to end (up
to the model's context) or got 429 at once (found 2026-12-05; docs/security.md, "Users and
API keys"). A reservation, as a priority level's assured share in Kubernetes' API Priority
and Fairness: anonymous requests may hold at most :func:`anonymous_cap` of a model's slots
(the ``max_concurrency`` of its routable nodes, as this gateway sees them; since share35
only as far as each has shown it serves, ``core/route_pools.shown_slots``), ``share`` of
them rounded down, and never the last one while ``share`` is below 1; the rest stay free
for keyed requests, which take any slot. So a keyed request finds a free slot at once
unless keyed requests themselves hold the reserve. The count is the process's own, or
with a Redis URL every replica's together, one count per model, each replica giving the
cap it computes here (found 2026-12-05: N replicas each allowed the share;
``registry/redis_inflight.py``). Not work-conserving on purpose: what a keyed request is
guaranteed cannot be lent to an anonymous stream that may run for minutes (no preemption). ``share`` 1 turns it off (anonymous requests may take every
slot, as before); 0 keeps every slot for keyed requests. Pure: the caller counts.

One exception, so that a small network stays usable without a key (found 2026-12-05: a
model whose nodes have one slot in all, the common gemma-3-270m node, answered every
anonymous request 429 for ever, keyed traffic or not): while no keyed request for the
model has come to this process for :data:`KEYED_RECENT_S`, nor to its nodes as their
heartbeats say at any replica (``registry/access.AnonymousLast._keyed_ago``: every replica
keeps the slot alike), anonymous requests may hold at least one slot (``share`` above 0). Once keyed requests come, the reserve is kept again
for every anonymous request sent on after it; the first keyed request may then wait for
the one anonymous request holding that slot to end (bounded by the request's own limits,
as any request), as before this share existed.
"""

from __future__ import annotations

import math

from LLM_Mesh.core.route_types import BUSY, HARD_FAILURES, Outcome

__all__ = [
    "ASKS_THE_SHARE",
    "DEFAULT_ANONYMOUS_SHARE",
    "KEYED_RECENT_S",
    "anonymous_cap",
    "floor_slot_wait",
    "parse_share",
]

DEFAULT_ANONYMOUS_SHARE = 0.75

#: a model with a keyed request at this process within this many seconds has keyed demand:
#: its whole reserve is kept (module docstring)
KEYED_RECENT_S = 60.0

#: how a node's attempt ended for the send stage to ask, before an anonymous request fails
#: over, whether the model's anonymous requests are past the share as counted then
#: (``registry/admit.over_share``): a refusal (429, 503), and a failure before any answer
#: (a 500, a dropped connection, a timeout): for the share the same, the request has no
#: slot and the next node's may be a kept one (found 2026-12-06, share35: a node failing
#: fast with a 500 sent each anonymous request it was given into a kept slot)
ASKS_THE_SHARE: frozenset[Outcome] = BUSY | HARD_FAILURES


def anonymous_cap(slots: int, share: float, keyed_demand: bool = True) -> int:
    """The most anonymous requests a model of ``slots`` slots may have in flight here:
    ``floor(share × slots)``, at most ``slots - 1`` unless ``share`` is 1; without
    ``keyed_demand`` (no keyed request for the model lately) at least 1 where ``share`` is
    above 0 and the model has a slot."""
    if not 0.0 <= share <= 1.0:
        raise ValueError("share must be between 0 and 1")
    if slots <= 0:
        return 0
    if share >= 1.0:
        return slots
    cap = math.floor(share * slots + 1e-9)  # 0.7 × 10 is 7.000000000000001, 0.29 × 100 28.99...
    cap = max(0, min(cap, slots - 1))
    if not keyed_demand and share > 0.0:
        return max(cap, 1)
    return cap


def floor_slot_wait(slots: int, share: float, keyed_ago_s: float | None) -> float:
    """Seconds until anonymous requests get back the one slot :func:`anonymous_cap` lends
    them without keyed demand, where with it they have none (a one-slot model): what is
    left of :data:`KEYED_RECENT_S` since the model's last keyed request (``keyed_ago_s``,
    ``None``: none came). 0 where that floor changes nothing (their share holds a slot
    anyway, ``share`` 0 or 1, no slot, no keyed request lately): a refusal's wait is then
    the nodes' own (found 2026-12-05: a refusal said 1 s for the whole minute)."""
    if keyed_ago_s is None or keyed_ago_s >= KEYED_RECENT_S or slots <= 0:
        return 0.0
    if anonymous_cap(slots, share, True) > 0 or anonymous_cap(slots, share, False) == 0:
        return 0.0
    return min(KEYED_RECENT_S, KEYED_RECENT_S - keyed_ago_s)  # a clock set back: at most all


def parse_share(raw: str | None, default: float = DEFAULT_ANONYMOUS_SHARE) -> float:
    """``LLM_MESH_ANONYMOUS_SHARE``: a number from 0 to 1; unset or blank: ``default``."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"LLM_MESH_ANONYMOUS_SHARE must be a number, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:  # NaN fails both
        raise ValueError(
            f"LLM_MESH_ANONYMOUS_SHARE must be from 0 to 1 (1: no slots kept), got {raw!r}"
        )
    return value
