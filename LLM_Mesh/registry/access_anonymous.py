"""The admit stage's checks of anonymous requests in flight: 2b and 4 of
``registry/access.py``'s order (split out of it, 2026-12-07, hygiene44; ``access`` names
both still).

2b. :class:`InFlightBound`: an anonymous address (its scope: an IPv4 address, an IPv6
   /64) has at most ``Settings.anonymous_in_flight`` requests in flight in this process
   (``LLM_MESH_ANONYMOUS_IN_FLIGHT``, 4; where ``anonymous_rpm`` applies; loopback not
   counted: :mod:`LLM_Mesh.core.anonymous_inflight`), from here until the request ends
   however it ends (answered, failed, refused by a later check, cancelled, its stream
   finished or cut): one more is 429 ``rate_limit_exceeded`` with ``Retry-After``. With a
   Redis URL every replica counts together (:mod:`~LLM_Mesh.registry.redis_inflight`;
   Redis out: each its own), else each replica its own.
4. :class:`AnonymousLast`: when the model's nodes are saturated, or requests with a key
   wait for one at this gateway, an anonymous request does not take the slot: it is
   refused at once (429 ``overloaded``, ``reason: saturated``) or, if it opted into a
   wait (``mesh_wait_s``), waits here until no keyed request waits and a node is free.
   Anonymous requests never enter the send stage's wait, so a slot that frees goes to a
   waiting keyed request first. At most ``MAX_ANONYMOUS_WAITERS`` anonymous requests wait
   in a process at once (:mod:`LLM_Mesh.core.anonymous_wait`), shared between addresses
   (the scope of check 2b) by push-out (:mod:`~LLM_Mesh.core.wait_places`): with all
   taken, a request of an address holding two fewer than the address holding the most
   takes that one's newest place (its waiter answered at once, as without a wait), else it
   is refused at once.
   Where ``anonymous_rpm`` applies, anonymous requests sent on from here (every address,
   loopback too) hold at most ``Settings.anonymous_share`` of the model's slots
   (``LLM_MESH_ANONYMOUS_SHARE``, 0.75, rounded down, never the last slot:
   :mod:`LLM_Mesh.core.anonymous_share`) until they end however they end: past it an
   anonymous request is refused or waits as on a saturated model, so a keyed request finds
   a free slot while anonymous clients of any number of addresses flood the model. With
   a Redis URL the share holds for every replica together (one count per model, as check
   2b's, :mod:`~LLM_Mesh.registry.redis_inflight`; Redis out: each replica its own), each
   replica judging it against the slots it sees (the same nodes, through the store) and
   the keyed requests it has seen.

With a Redis URL an anonymous request's Redis takes of 2b and 4 run with the rate limit's
(check 2), one round trip (:mod:`~LLM_Mesh.registry.redis_admit`; 2b and 4 claim them).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from starlette.responses import Response

from LLM_Mesh.core import slot_wait
from LLM_Mesh.core.anonymous_inflight import InFlight, exempt
from LLM_Mesh.core.anonymous_share import KEYED_RECENT_S, anonymous_cap, floor_slot_wait
from LLM_Mesh.core.anonymous_wait import MAX_ANONYMOUS_WAITERS, Clear, clear
from LLM_Mesh.core.balancer import Verdict
from LLM_Mesh.core.scoring import RouteRequest
from LLM_Mesh.core.wait_places import WaitPlaces
from LLM_Mesh.errors import Overloaded, RateLimited
from LLM_Mesh.registry.demand import SATURATED
from LLM_Mesh.registry.job import Client, Job
from LLM_Mesh.registry.redis_admit import IN_FLIGHT, SHARE, claim
from LLM_Mesh.registry.redis_inflight import SharedInFlight
from LLM_Mesh.registry.routing import Routing

__all__ = ["AnonymousLast", "InFlightBound", "InFlightHold"]


class InFlightBound:
    """Check 2b: an anonymous address's requests in flight here (module docstring)."""

    __slots__ = ("counts", "shared")

    def __init__(self, cap: int, shared: SharedInFlight | None = None) -> None:
        self.counts = shared.local if shared is not None else InFlight(cap)
        self.shared = shared  # every replica's counts (Redis); None: this process's

    async def __call__(self, job: Job, client: Client) -> InFlightHold | None:
        if client.key is not None:
            return None
        scope = client.address
        if exempt(scope):
            return None
        counts, shared = self.counts, self.shared
        give: Callable[[], None] | None
        if shared is not None:  # Redis out: this process's counts decide (redis_inflight.py)
            asked, give = claim(client, IN_FLIGHT)  # taken with the rate limit (redis_admit.py)
            if not asked:
                give = await shared.take(scope)
        elif counts.take(scope):
            give = partial(counts.give, scope)
        else:
            give = None
        if give is None:
            cap = counts.cap
            raise RateLimited(
                f"this address already has {cap} requests without an API key in flight at "
                "this gateway, the most it may; wait for one to end, or send an API key",
                retry_after=1, limit=cap, requested=1,
            )  # fmt: skip
        return InFlightHold(give, job.stream)


class InFlightHold:
    """One anonymous request in flight: given back once, when it ends (an admission hold:
    ``release`` ends it unless it is an open stream, which ends at ``stream_ended``)."""

    __slots__ = ("give", "stream")

    def __init__(self, give: Callable[[], None], stream: bool) -> None:
        self.give: Callable[[], None] | None = give
        self.stream = stream

    def _end(self) -> None:
        give, self.give = self.give, None
        if give is not None:
            give()

    def release(self, response: Response | None) -> None:
        if response is not None or not self.stream:
            self._end()

    def abandon(self) -> None:
        self._end()

    def stream_ended(self) -> None:
        self._end()

    async def settled(self) -> None:
        return None


_SEND_A_WAIT = "send X-Mesh-Wait or mesh_wait_s to wait for a slot"
_NO_ROOM = "as many requests without an API key as may wait here wait already"


class AnonymousLast:
    """Check 4: keyed requests before anonymous ones on a saturated model, and a share of
    its slots kept for them (module docstring)."""

    __slots__ = ("clock", "full_until", "keyed_seen", "places", "routing", "running", "share",
                 "shared", "waiting")  # fmt: skip

    def __init__(
        self,
        routing: Routing,
        clock: Callable[[], float],
        share: float | None = None,
        shared: SharedInFlight | None = None,
    ) -> None:
        self.routing = routing
        self.clock = clock
        if share is not None:
            anonymous_cap(1, share)  # checked now: between 0 and 1
        self.share = share  # None: anonymous requests may take every slot
        self.running = _Running(routing)  # anonymous requests sent on, per model (a share)
        self.waiting: dict[str, int] = {}  # anonymous requests waiting here, per model
        # ... and their places, all models, shared between addresses by push-out (anonymous_wait)
        self.places = WaitPlaces(MAX_ANONYMOUS_WAITERS, "address", _NO_ROOM)
        # when a keyed request for each model last came (served or catalog ids; bounded)
        self.keyed_seen: dict[str, float] = {}
        # every replica's anonymous requests in flight per model (Redis); None: this process's
        self.shared = shared if share is not None else None
        # model -> until when its share counts as taken here: every replica's requests held
        # it at the last take (no Redis round trip a look for the waiters till then)
        self.full_until: dict[str, float] = {}

    @property
    def waiting_all(self) -> int:
        """Anonymous requests waiting here, every model together."""
        return self.places.waiting

    def _keyed_ago(self, model: str, slots: int, allowed: bool = False) -> float | None:
        """Seconds since the model's last keyed request (None: none known): one that came
        to this process, or, where the share turns on it (a one-slot model), one its nodes
        had, as they say in their heartbeats at any replica (``Routing.keyed_at``), so
        every replica keeps the slot alike (found 2026-12-05: each kept it for its own)."""
        seen = self.keyed_seen.get(model)
        share = self.share or 0.0
        if anonymous_cap(slots, share, True) != anonymous_cap(slots, share, False):
            nodes = self.routing.keyed_at(model, allowed)  # the nodes ``slots`` counts
            if nodes is not None and (seen is None or nodes > seen):
                seen = nodes
        return None if seen is None else max(0.0, self.clock() - seen)

    def slots(self, model: str, allowed: bool = False) -> int:
        """``Routing.slots``: shown here (share35) and, where Redis counts every replica's
        requests, at the others (redisshare36; not while it is out, review35d)."""
        return self.routing.slots(model, allowed)

    def _cap(self, model: str, allowed: bool = False) -> int:
        """The most anonymous requests the model may have in flight (``share`` not None)."""
        ago = self._keyed_ago(model, slots := self.slots(model, allowed), allowed)
        return anonymous_cap(slots, self.share or 0.0, ago is not None and ago < KEYED_RECENT_S)

    def _over_share(self, model: str, held: bool = False, allowed: bool = False) -> bool:
        if self.share is None:  # held: Redis took ahead
            return False
        if self.running.counts.get(model, 0) >= self._cap(model, allowed):
            return True
        until = None if held else self.full_until.get(model)
        return until is not None and self.clock() < until

    def _keyed(self, model: str) -> None:
        seen = self.keyed_seen
        if len(seen) >= _KEYED_SEEN_MAX and model not in seen:
            seen.clear()
        seen[model] = self.clock()

    def _route(self, job: Job) -> RouteRequest:
        ext = job.ext
        return RouteRequest(  # never a node that may keep prompts unless opted in (send.py)
            (job.model,), expected_tokens=job.max_tokens or None, avoid_regions=ext.avoid_regions,
            allow_nodes=ext.allow_nodes, deny_nodes=ext.deny_nodes,
            keepers=ext.allow_prompt_keeping,
        )  # fmt: skip

    def cap_ahead(self, job: Job) -> int | None:
        """The cap of a share's take run with the rate limit (``redis_admit.py``) where this
        check would take now without asking the router; ``None``: it takes at its turn."""
        if self.shared is None or self._said(job) is not Clear.GO:
            return None
        return self._cap(job.model, job.ext.allow_prompt_keeping)

    def _clear(self, job: Job, held: bool = False) -> bool:
        """No keyed request waits for the model, and a node is free (or none is up at all:
        the send stage answers that): ``core/anonymous_wait.clear``'s rule."""
        said = self._said(job, held)
        if said is Clear.ASK:
            return self.routing.pick(self._route(job)).verdict is not Verdict.SATURATED
        return said is Clear.GO

    def _said(self, job: Job, held: bool = False) -> Clear:
        model, routing = job.model, self.routing
        keyed_waiting = routing.demand.waiting.get(model, 0) > self.waiting.get(model, 0)
        ext, allowed = job.ext, job.ext.allow_prompt_keeping
        # less the nodes held out of it (that may keep prompts; anon34: one open let it on, all
        # it may use full), counted by the pools (review34: not a pick per request)
        open_, full, _ = routing.router.pool_counts(model, not allowed)
        constrained = bool(ext.avoid_regions or ext.allow_nodes is not None or ext.deny_nodes)
        over = bool(open_) and not keyed_waiting and self._over_share(model, held, allowed)
        return clear(keyed_waiting, open_, full, over, constrained)

    def _refusal(self, job: Job, how: str = _SEND_A_WAIT) -> Overloaded:
        d = self.routing.pick(self._route(job))
        wait = d.wait_s if d.wait_s is not None else 1.0
        if self.share is not None:  # a one-slot model's slot comes back when keys stop
            slots = self.slots(job.model, job.ext.allow_prompt_keeping)
            ago = self._keyed_ago(job.model, slots, job.ext.allow_prompt_keeping)
            wait = max(wait, floor_slot_wait(slots, self.share, ago))
        self.routing.demand.refuse(job.model, SATURATED)
        busy = (
            "requests without an API key hold their share of the slots of the nodes serving "
            f"{job.model!r} (the rest is kept for requests with a key)"
            if self._over_share(job.model, allowed=job.ext.allow_prompt_keeping)
            else f"every node serving {job.model!r} is busy and requests with an API key go first"
        )
        return Overloaded(
            f"{busy}; estimated wait {wait:.2f} s ({how})",
            retry_after=max(1, math.ceil(wait)), reason=SATURATED, wait_s=round(wait, 3),
            model=job.model, anonymous=True,
        )  # fmt: skip

    async def __call__(self, job: Job, client: Client) -> Job | tuple[Job, InFlightHold] | None:
        if client.key is not None:
            if self.share is not None:
                self._keyed(job.model)
            return None
        ahead, got = claim(client, SHARE)  # taken with the rate limit (redis_admit.py)
        if self._clear(job, got is not None):
            give = self._took(job.model, got) if ahead else await self._take(job)
            if give is not None:
                return self._admit(job, give)
        elif got is not None:  # no longer clear: given back, it waits as before
            got()
        if job.ext.wait_s <= 0:
            raise self._refusal(job)
        place = self.places.take(client.address)  # (it may push out another's waiter)
        if isinstance(place, str):  # every place taken, none to push out: as without a wait
            raise self._refusal(job, place)
        model, routing = job.model, self.routing
        until = min(job.started + job.ext.wait_s, job.deadline)
        loop = asyncio.get_running_loop()
        hard_stop = loop.time() + job.ext.wait_s  # bounded even if the clock stands still
        routing.demand.wait_begin(model)
        self.waiting[model] = self.waiting.get(model, 0) + 1
        try:
            while True:
                give = await self._take(job) if self._clear(job) else None
                if give is not None:
                    return self._admit(job, give)
                left = until - self.clock()
                if left <= 0 or loop.time() >= hard_stop:  # not "send a wait": it did
                    raise self._refusal(job, slot_wait.ran_out(job.ext.wait_s))
                # keyed waiters are woken by the same change; poll briefly to let them go first
                await routing.wait_change(min(left, 0.05), model, place)
                if place.out:  # pushed out for another address's request: as without a wait
                    raise self._refusal(job, place.out)
        finally:
            self.places.leave(place)
            routing.demand.wait_end(model)
            n = self.waiting.get(model, 0) - 1
            if n > 0:
                self.waiting[model] = n
            else:
                self.waiting.pop(model, None)

    async def _take(self, job: Job) -> Callable[[], None] | None:
        """A place in the model's share (``share`` None: a no-op): without Redis counted here in the
        same step of the loop as the check that cleared it; with Redis one atomic take against every
        replica's count at the cap of the slots the request may use (anon34: an opted-in one had the
        stricter), ``None``: taken (marked for :data:`_SHARED_FULL_S`). Given back once."""
        model, shared, allowed = job.model, self.shared, job.ext.allow_prompt_keeping
        if self.share is None:
            return _nothing
        if shared is not None:  # (Redis out: this replica's count, SharedInFlight.take)
            return self._took(model, await shared.take(model, self._cap(model, allowed)))
        self.running.take(model)
        return partial(self.running.give, model)

    def _took(self, model: str, got: Callable[[], None] | None) -> Callable[[], None] | None:
        if got is None:  # Redis' answer to a take of the share: full
            marks = self.full_until
            if len(marks) >= _KEYED_SEEN_MAX and model not in marks:
                marks.clear()
            marks[model] = self.clock() + _SHARED_FULL_S
            return None
        self.running.take(model)

        def give() -> None:
            got()
            self.full_until.pop(model, None)  # room again: the next look asks Redis
            self.running.give(model)

        return give

    def _admit(self, job: Job, give: Callable[[], None]) -> Job | tuple[Job, InFlightHold] | None:
        """Sent on without the send stage's wait; counted in the share until it ends."""
        went = _no_wait(job)
        if self.share is None:
            return went
        return went or job, InFlightHold(give, job.stream)


_KEYED_SEEN_MAX = 4096
# how long a model whose shared share (every replica's, Redis) was taken counts as taken
# here without asking again; a place this replica gives back ends it at once
_SHARED_FULL_S = 0.25


def _nothing() -> None:
    return None


class _Running:
    """Anonymous requests sent on per model (:class:`AnonymousLast`'s share); one that ends
    wakes the requests waiting for room."""

    __slots__ = ("counts", "routing")

    def __init__(self, routing: Routing) -> None:
        self.routing = routing
        self.counts: dict[str, int] = {}

    def take(self, model: str) -> None:
        self.counts[model] = self.counts.get(model, 0) + 1

    def give(self, model: str) -> None:
        n = self.counts.get(model, 0) - 1
        if n > 0:
            self.counts[model] = n
        else:
            self.counts.pop(model, None)
        self.routing.wake(model)


def _no_wait(job: Job) -> Job | None:
    """An anonymous request goes on without the send stage's wait (it waited here)."""
    if job.ext.wait_s <= 0:
        return None
    return replace(job, ext=replace(job.ext, wait_s=0.0))
