"""The send stage's opt-in wait for a node slot: how often it looks again, how many wait.

A request on a saturated model may opt into a bounded wait (``mesh_wait_s`` /
``X-Mesh-Wait``, up to 60 s). Only keyed requests wait there: an anonymous one waits in the
admit stage (``registry/access.AnonymousLast``, :mod:`~LLM_Mesh.core.anonymous_wait`) and
goes on without this wait. A waiter is woken by every change of routing for the better (an
attempt ends, a node registers or heartbeats, an anonymous request of the share ends); it
also looks again when the router's estimate of the wait (``Decision.wait_s``) has passed,
for what frees a node without an event (a node's own ``Retry-After`` running out). Until
2026-12-05 that look came at the estimate or after 5 ms, whichever was later: a fast
node's estimate is a few milliseconds, so each waiter took a task and a timer every 5 ms
(200 a second) for as long as the node stayed full, and a key without limits could have
any number of them (found 2026-12-05; docs/security.md, "Users and API keys"). Now at
least :data:`RECHECK_S` passes between looks without a change, and at most
:data:`MAX_SEND_WAITERS` requests wait at once in a process; one more is answered at once
as without a wait (429 ``overloaded``). Of those places one API key may hold at most
:func:`key_cap` (a quarter, :data:`KEY_SHARE`): until 2026-12-05 one key's flood of waiting
requests could take all 256 and every other key's wait was refused at once (found
2026-12-05; docs/security.md, "Users and API keys"). Four keys at their quarter still
filled them all; now the last :func:`kept_for_new` places (an eighth, :data:`NEW_KEY_SHARE`)
go only to keys with no place yet, one each, so a fifth key still waits (found open
2026-12-05). Pure: the caller counts and sleeps.
"""

from __future__ import annotations

__all__ = [
    "KEY_SHARE",
    "MAX_SEND_WAITERS",
    "NEW_KEY_SHARE",
    "RECHECK_S",
    "kept_for_new",
    "key_cap",
    "may_wait",
    "ran_out",
    "recheck_s",
]

RECHECK_S = 0.25  # the shortest sleep between two looks when nothing changed
MAX_SEND_WAITERS = 256  # requests in the send stage's wait at once, per process
KEY_SHARE = 0.25  # the most of those places one API key's requests hold at once
NEW_KEY_SHARE = 0.125  # the last places, kept for keys with none yet (one each)


def recheck_s(hint: float | None, left: float) -> float:
    """How long a waiter sleeps unless woken: the router's estimate ``hint`` (``None``:
    none), at least :data:`RECHECK_S`, at most the ``left`` of its wait."""
    return min(left, max(RECHECK_S, RECHECK_S if hint is None else hint))


def key_cap(cap: int = MAX_SEND_WAITERS, share: float = KEY_SHARE) -> int:
    """The places of ``cap`` one key may hold: ``share`` of them, at least 1 (while any)."""
    if cap < 0 or not 0.0 < share <= 1.0:
        raise ValueError("need cap >= 0 and 0 < share <= 1")
    return min(cap, max(1, int(cap * share)))


def kept_for_new(cap: int = MAX_SEND_WAITERS) -> int:
    """The last places of ``cap`` that only a key with no place yet may take:
    :data:`NEW_KEY_SHARE` of them, rounded down (none of a handful)."""
    if cap < 0:
        raise ValueError("cap must be at least 0")
    return int(cap * NEW_KEY_SHARE)


def may_wait(
    waiting: int, cap: int = MAX_SEND_WAITERS, key_waiting: int = 0, share: float = KEY_SHARE
) -> bool:
    """Whether one more request may wait, ``waiting`` already waiting here, ``key_waiting``
    of them for its API key: a place free, the key under its :func:`key_cap`, and, for a key
    that holds places already, one free besides the :func:`kept_for_new` ones."""
    if cap < 0:
        raise ValueError("cap must be at least 0")
    if waiting >= cap or key_waiting >= key_cap(cap, share):
        return False
    return key_waiting == 0 or waiting < cap - kept_for_new(cap)


def ran_out(wait_s: float) -> str:
    """Why a request that waited ``wait_s`` is refused (this wait's or the admit stage's):
    until 2026-12-05 it was told to send X-Mesh-Wait or mesh_wait_s, which it had done."""
    return f"its X-Mesh-Wait or mesh_wait_s of {wait_s:g} s ran out"
