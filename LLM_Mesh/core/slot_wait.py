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
2026-12-05).

The decisions themselves live here, so that the gateway (``registry/send.py``,
``registry/routing.py``) and the fleet simulator (``simulator/gateway.py``) run the same
code: :class:`WaitPlaces` counts the places and says why none is left, :class:`SlotWait`
decides at each look whether a request goes on, sleeps (and how long) or gives up.
Pure: the caller picks a node, sleeps (woken early by a change of routing,
:class:`~LLM_Mesh.core.wake_on_change.WakeOnChange`) and reads its own clock.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from LLM_Mesh.core.route_types import Verdict

__all__ = [
    "KEY_SHARE",
    "MAX_SEND_WAITERS",
    "NEW_KEY_SHARE",
    "RECHECK_S",
    "Look",
    "Next",
    "SlotWait",
    "WaitPlaces",
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


class WaitPlaces:
    """The places of the send stage's wait in one gateway process: how many are held, by
    which API key (at most ``cap`` in all, :func:`may_wait`'s rules). Moved here from
    ``registry/routing.py`` on 2026-12-05 so that the simulator counts by the same code."""

    __slots__ = ("by_key", "cap", "held")

    def __init__(self, cap: int = MAX_SEND_WAITERS) -> None:
        if cap < 0:
            raise ValueError("cap must be at least 0")
        self.cap = cap
        self.held = 0
        self.by_key: dict[str, int] = {}  # places held per API key id (at most key_cap)

    def take(self, key: str) -> str:
        """A place for a request of API key ``key``: "" when taken (give it back with
        :meth:`leave`), else why there is none (the request is answered as without a
        wait)."""
        held = self.by_key.get(key, 0)
        if not may_wait(self.held, self.cap, held):
            if self.held >= self.cap:
                return "as many requests as may wait here wait already"
            cap = key_cap(self.cap)
            if held >= cap:
                return f"{cap} requests of this API key wait here already, the most one key may"
            kept = kept_for_new(self.cap)
            return f"the last {kept} places are kept for API keys with none waiting here yet"
        self.held += 1
        self.by_key[key] = held + 1
        return ""

    def leave(self, key: str) -> None:
        """Give back a place :meth:`take` gave a request of ``key``."""
        if self.by_key.get(key, 0) <= 0:
            raise ValueError(f"no place held for key {key!r}")
        self.held -= 1
        n = self.by_key[key] - 1
        if n > 0:
            self.by_key[key] = n
        else:
            del self.by_key[key]


class Next(str, Enum):
    """What a waiting request does after a look (a pick of a node)."""

    SEND = "send"  # a node is free: the first attempt starts
    SLEEP = "sleep"  # sleep ``Look.sleep_s`` (woken early by a change), then pick again
    RAN_OUT = "ran_out"  # its wait (or its deadline) ended without a node: refused


class Look(NamedTuple):
    """One decision of a waiting request: the pick's verdict, what next, how long it
    sleeps (:data:`Next.SLEEP` only) and, for :data:`Next.RAN_OUT`, the refusal's note
    (:func:`ran_out`; "" for a wait of 0 s, which is none); ``woken``: what ended the
    sleep before it (``None``: none, the first look; ``True``: a change of routing;
    ``False``: its time)."""

    verdict: Verdict
    next: Next
    sleep_s: float = 0.0
    why: str = ""
    woken: bool | None = None


class SlotWait:
    """One request's opt-in wait for a node slot, from its first pick that found none.

    It waits until ``min(started + wait_s, deadline)`` (``until``). At each look
    (:meth:`look`, after every pick) a free node sends it on, even at the very end; else it
    gives up once nothing is ``left``, else it sleeps :func:`recheck_s` of the router's
    estimate, or, with ``every_s`` (the admit stage's wait for an anonymous request,
    ``core/anonymous_wait.LOOK_S``), ``every_s`` whatever the estimate, at most what is
    left. ``trace``: keep every :class:`Look` in ``looks`` (tests compare the gateway's
    with the simulator's)."""

    __slots__ = ("every_s", "looks", "started", "until", "wait_s")

    def __init__(
        self,
        started: float,
        wait_s: float,
        deadline: float,
        *,
        every_s: float | None = None,
        trace: bool = False,
    ) -> None:
        if every_s is not None and not every_s > 0:  # NaN fails too
            raise ValueError("every_s must be above 0")
        self.started = started
        self.wait_s = wait_s
        self.until = min(started + wait_s, deadline)
        self.every_s = every_s
        self.looks: list[Look] | None = [] if trace else None

    def left(self, now: float) -> float:
        """Seconds of the wait left at ``now`` (the caller's clock; may be below 0)."""
        return self.until - now

    def look(
        self, verdict: Verdict, hint: float | None, left: float, woken: bool | None = None
    ) -> Look:
        """The decision after a pick that gave ``verdict`` and the router's estimate of the
        wait ``hint`` (``Decision.wait_s``), ``left`` seconds of the wait left; ``woken``
        (traced only): what ended the sleep before (:class:`Look`)."""
        if verdict is Verdict.OK:
            step = Look(verdict, Next.SEND, woken=woken)
        elif left <= 0:  # a wait of 0 s is none: then "send X-Mesh-Wait"
            why = ran_out(self.wait_s) if self.wait_s > 0 else ""
            step = Look(verdict, Next.RAN_OUT, why=why, woken=woken)
        else:
            every = self.every_s
            sleep = recheck_s(hint, left) if every is None else min(left, every)
            step = Look(verdict, Next.SLEEP, sleep, woken=woken)
        if self.looks is not None:
            self.looks.append(step)
        return step
