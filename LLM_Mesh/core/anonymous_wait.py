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
keys' own limits bound them). Pure: the caller counts.
"""

from __future__ import annotations

__all__ = ["MAX_ANONYMOUS_WAITERS", "may_wait"]

MAX_ANONYMOUS_WAITERS = 256


def may_wait(waiting: int, cap: int = MAX_ANONYMOUS_WAITERS) -> bool:
    """Whether one more anonymous request may wait, ``waiting`` already waiting here."""
    if cap < 0:
        raise ValueError("cap must be at least 0")
    return waiting < cap
