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
as without a wait (429 ``overloaded``).

Who holds those places (:func:`place_for`): until 2026-12-05 one key's flood took all 256
and every other key's wait was refused; then one key held at most a quarter, and the last
eighth went to keys with none yet, one each: four keys at their quarter and 32 more, or 33
keys in all, still filled them (found 2026-12-05; docs/security.md, "Users and API keys").
Any fixed bound per key leaves that gap (keys × bound places), so the places are now
shared as a buffer shared by flows is by *push-out* (longest queue drop): a free place
goes to any key; when none is free, a key holding ``h`` takes a place from the key that
holds the most, ``m``, if ``m ≥ h + 2`` (its newest waiter is answered at once as without
a wait), else it is refused. So a key alone may use every place, a key with none finds one
as long as some key holds two (fewer keys wait than there are places), and a key asking for
a place while all are taken is refused only when no key holds two more than it: keys that
all keep asking end within one place of each other, none above ``ceil(places / keys)``.
The decision knows no keys, only counts of a *holder*'s places: the admit stage's wait for
anonymous requests shares its places between addresses by the same rule (one holder an
IPv4 address or an IPv6 /64, :mod:`~LLM_Mesh.core.anonymous_wait`; found 2026-12-05: 64
/64s filled them all). Pure: the caller counts (``core/wait_places.py``) and sleeps.

:class:`SlotWait` decides at each look whether a waiting request goes on, sleeps (and how
long) or gives up (moved from ``registry/send.py`` on 2026-12-05): the gateway and the
fleet simulator (``simulator/gateway.py``) run the same code.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from LLM_Mesh.core.route_types import Verdict

__all__ = [
    "MAX_SEND_WAITERS",
    "RECHECK_S",
    "Look",
    "Next",
    "Place",
    "SlotWait",
    "may_wait",
    "place_for",
    "ran_out",
    "recheck_s",
]

RECHECK_S = 0.25  # the shortest sleep between two looks when nothing changed
MAX_SEND_WAITERS = 256  # requests in the send stage's wait at once, per process


class Place(Enum):
    """What :func:`place_for` decides for one more waiting request."""

    TAKE = "take"  # a free place
    PUSH = "push"  # the place of the newest waiter of the key holding the most
    REFUSE = "refuse"  # none: answered at once as without a wait


def recheck_s(hint: float | None, left: float) -> float:
    """How long a waiter sleeps unless woken: the router's estimate ``hint`` (``None``:
    none), at least :data:`RECHECK_S`, at most the ``left`` of its wait."""
    return min(left, max(RECHECK_S, RECHECK_S if hint is None else hint))


def may_wait(waiting: int, cap: int = MAX_SEND_WAITERS) -> bool:
    """Whether a place is free, ``waiting`` already waiting here."""
    if cap < 0:
        raise ValueError("cap must be at least 0")
    return waiting < cap


def place_for(held: int, waiting: int, most: int, cap: int = MAX_SEND_WAITERS) -> Place:
    """One more waiting request of a holder (an API key; an anonymous address) that holds
    ``held`` places, ``waiting`` held in all, ``most`` by the holder that holds the most: a
    free place, else push-out from that holder when it holds two more than this one would
    before taking (module docstring)."""
    if cap < 0 or held < 0 or most < held or waiting < most:
        raise ValueError("need 0 <= held <= most <= waiting and cap >= 0")
    if may_wait(waiting, cap):
        return Place.TAKE
    if most >= held + 2:
        return Place.PUSH
    return Place.REFUSE


def ran_out(wait_s: float) -> str:
    """Why a request that waited ``wait_s`` is refused (this wait's or the admit stage's):
    until 2026-12-05 it was told to send X-Mesh-Wait or mesh_wait_s, which it had done."""
    return f"its X-Mesh-Wait or mesh_wait_s of {wait_s:g} s ran out"


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
    estimate. ``trace``: keep every :class:`Look` in ``looks`` (tests compare the
    gateway's with the simulator's)."""

    __slots__ = ("looks", "started", "until", "wait_s")

    def __init__(
        self, started: float, wait_s: float, deadline: float, *, trace: bool = False
    ) -> None:
        self.started = started
        self.wait_s = wait_s
        self.until = min(started + wait_s, deadline)
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
            step = Look(verdict, Next.SLEEP, recheck_s(hint, left), woken=woken)
        if self.looks is not None:
            self.looks.append(step)
        return step
