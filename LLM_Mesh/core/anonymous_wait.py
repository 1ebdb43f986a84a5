"""How many requests without an API key may wait at one gateway process for a node slot.

An anonymous request on a saturated model may opt into a wait (``mesh_wait_s`` /
``X-Mesh-Wait``, up to 60 s: :mod:`~LLM_Mesh.registry.access`, ``AnonymousLast``). Each
waiting request looks again every 50 ms and at every change of routing (a task and a timer
each time), so its cost to the gateway's event loop grows with the number waiting: 2,000 of
them (a third of a minute's anonymous total, from 34 /64s of one IPv6 /48) held the loop's
lag at 58-119 ms p50, against 1 ms with 256 waiting (the shared 2-core box, load ~7; found
2026-12-05; docs/security.md, "Users and API keys"). At most
:data:`MAX_ANONYMOUS_WAITERS` wait at once in a process; one more is refused at once (429
``overloaded``), as one that did not ask to wait is. Keyed requests are not counted (their
keys' own limits bound them).

Who holds those places: each anonymous address (an IPv4 address, an IPv6 /64: the scope of
the in-flight bound, :mod:`~LLM_Mesh.core.anonymous_inflight`) has at most 4 requests in
flight, but until 2026-12-05 nothing shared the places between addresses, so 64 /64s (cheap
to get: an IPv6 /48 holds 65,536) filled all 256 and every other anonymous client's wait was
refused at once (found 2026-12-05). They are now shared as the send stage's are between API
keys, by push-out (:func:`~LLM_Mesh.core.slot_wait.place_for`, one holder an address): a free
place to any address; with all taken, the newest place of the address holding the most if it
holds two more than the asking one (that waiter answered at once as without a wait), else
refused. So an address with none finds a place while fewer addresses wait than there are
places. Pure: the caller counts (``core/wait_places.py``).

:func:`clear` is the admission rule itself (moved from ``registry/access.AnonymousLast`` on
2026-12-05, so that the fleet simulator admits anonymous requests by the same code): an
anonymous request goes on only while no keyed request waits for the model at this gateway
and a node is open to it within the anonymous share.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["MAX_ANONYMOUS_WAITERS", "Clear", "clear"]

MAX_ANONYMOUS_WAITERS = 256


class Clear(str, Enum):
    """:func:`clear`'s answer."""

    GO = "go"  # sent on now
    HOLD = "hold"  # not now: a keyed request waits, or the anonymous share is held
    ASK = "ask"  # sent on unless a pick (under its own constraints) finds every node full


def clear(
    keyed_waiting: bool, open_nodes: int, full_nodes: int, over_share: bool, constrained: bool
) -> Clear:
    """Whether an anonymous request may go on now: ``keyed_waiting``, a keyed request
    waits for the model at this gateway (its slot goes to that one first);
    ``open_nodes``/``full_nodes``, the model's routable nodes open and full for an anonymous
    request (``Router.pool_counts``); ``over_share``, the anonymous requests sent on hold
    their share of the slots (read only while a node is open); ``constrained``: its own
    node or region constraints (the pool's count is not its)."""
    if keyed_waiting:
        return Clear.HOLD
    if open_nodes == 0:  # none open: none up at all is the send stage's 503
        return Clear.GO if full_nodes == 0 else Clear.ASK
    if over_share:  # the rest of the model's slots is kept for keys
        return Clear.HOLD
    return Clear.ASK if constrained else Clear.GO
