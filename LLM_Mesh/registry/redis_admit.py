"""An anonymous request's Redis counts at admission, in one round trip.

With a Redis URL an anonymous request is counted three times in Redis as it is admitted:
its address' rate-limit bucket (``redis_limits.py``), its address' requests in flight and
its model's anonymous share of the slots (both ``redis_inflight.py``), and each was a
script of its own, a round trip each (found 2026-12-05, issue 7: three round trips at
admission, two more at the end). :class:`SharedAdmission` runs them as one Lua script,
atomic, in the checks' order: the bucket's check; if it allows, the in-flight take; if
that is taken, the share's take; each refused one stops there, as the check that refuses
stops admission. The rate-limit check (``access.RateLimit``) runs it; the takes' answers
wait on the request's :class:`~LLM_Mesh.registry.job.Client` (``Client.prefetched``) for
their checks (``access.InFlightBound``, ``access.AnonymousLast``), which :func:`claim`
them instead of asking Redis again. The ends go together too
(``redis_inflight.Removals``): one round trip.

The share is taken ahead only where ``AnonymousLast`` would take it then without asking
the router (its ``cap_ahead``: no keyed request waits for the model, a node is open, the
share not full here); a request that a check between refuses (price, idempotency) gives
it back (``Client.on_refusal``), as one that ``AnonymousLast`` finds no longer clear
(then it waits as before, taking again as it did). Elsewhere the checks take as before.

Redis out (``out`` of the limiter or of a count, or this script unanswered): each part
decides as it did alone: the process's own buckets and counts for ``retry_s``, logged;
a failure of this script marks every part out at once (they share one client). A script
whose client leaves while Redis runs it removes the members it may have added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from LLM_Mesh.core.anonymous_inflight import exempt
from LLM_Mesh.core.ratelimit import Decision, Limits
from LLM_Mesh.registry.job import Client, Job
from LLM_Mesh.registry.redis_inflight import TAKE_LUA, SharedInFlight
from LLM_Mesh.registry.redis_limits import LIMIT_LUA, RedisLimiter, decision, texts

__all__ = ["IN_FLIGHT", "SHARE", "SharedAdmission", "claim", "drop"]

IN_FLIGHT = "in_flight"  # Client.prefetched's names: the address' requests in flight
SHARE = "share"  # ... and the model's anonymous share

# KEYS[1] the bucket's hash, then the sets to take in, in order. ARGV[1..6] ``limit``'s,
# then per set: its cap, the member, its lease (s). Returns ``limit``'s five strings and
# one more per take that ran: "1" taken, "0" at the cap (and none after it).
_ADMIT = (
    LIMIT_LUA
    + TAKE_LUA
    + """
local out = limit(KEYS[1], ARGV)
if out[1] ~= '1' then return out end
for i = 2, #KEYS do
  local j = 6 + (i - 2) * 3
  local got = take(KEYS[i], tonumber(ARGV[j + 1]), ARGV[j + 2], tonumber(ARGV[j + 3]), now)
  out[#out + 1] = tostring(got)
  if got == 0 then return out end
end
return out
"""
)

Give = Callable[[], None]


def claim(client: Client | None, name: str) -> tuple[bool, Give | None]:
    """The take ``name`` made ahead for ``client``: (whether one was, its give-back
    function or ``None`` when refused); the caller owns it from here."""
    places = client.prefetched if client is not None else None
    if places is None or name not in places:
        return False, None
    return True, places.pop(name)


def drop(client: Client, name: str) -> None:
    """Give back the take ``name`` made ahead, unless claimed."""
    _, give = claim(client, name)
    if give is not None:
        give()


def _drop_all(client: Client) -> None:
    drop(client, SHARE)
    drop(client, IN_FLIGHT)


class SharedAdmission:
    """The rate-limit check of an anonymous request and its Redis takes, one script (see
    the module docstring). ``share_cap``: ``AnonymousLast.cap_ahead``."""

    __slots__ = ("_script", "in_flight", "limiter", "share", "share_cap")

    def __init__(
        self,
        limiter: RedisLimiter,
        in_flight: SharedInFlight | None = None,
        share: SharedInFlight | None = None,
        share_cap: Callable[[Job], int | None] | None = None,
    ) -> None:
        self.limiter = limiter
        self.in_flight = in_flight  # None: no in-flight bound (or not in Redis)
        self.share = share if share_cap is not None else None
        self.share_cap = share_cap
        self._script = limiter.client.register_script(_ADMIT)

    def _takes(self, job: Job, client: Client) -> list[tuple[str, SharedInFlight, str, str, int]]:
        """The takes to run with the check: (name, counts, set, member, cap) each."""
        takes = []
        in_flight = self.in_flight
        if in_flight is not None and not in_flight.out and not exempt(client.address):
            key = in_flight.key(client.address)
            takes.append((IN_FLIGHT, in_flight, key, in_flight.member(), in_flight.cap))
        share, share_cap = self.share, self.share_cap
        if share is not None and share_cap is not None and not share.out:
            cap = share_cap(job)
            if cap is not None:
                takes.append((SHARE, share, share.key(job.model), share.member(), cap))
        return takes

    async def check(
        self, job: Job, client: Client, limits: Limits, now: float, tokens: int = 0
    ) -> Decision:
        """As ``RedisLimiter.check`` of ``client.scope``, the takes answered on ``client``."""
        limiter = self.limiter
        if limits.unlimited:
            return Decision(True)
        if limiter.out:
            return limiter.local.check(client.scope, limits, now, tokens)
        charge = max(0, tokens) if limits.tpm else 0
        takes = self._takes(job, client)
        keys = [limiter.key(client.scope)]
        args: list[Any] = limiter.args(limits, "check", charge)
        for _, counts, key, member, cap in takes:
            keys.append(key)
            args += [cap, member, counts.lease_s]
        try:
            out = texts(await self._script(keys=keys, args=args))
        except asyncio.CancelledError:  # the client left: its members may be there
            for _, counts, key, member, _ in takes:
                counts.forget(key, member)
            raise
        except Exception as exc:  # redis.RedisError, OSError, timeouts: all mean "out"
            limiter.down(exc)
            for counts in {c for c in (self.in_flight, self.share) if c is not None}:
                counts.down(exc)
            return limiter.local.check(client.scope, limits, now, tokens)
        places = client.prefetched = {}
        for (name, counts, key, member, _), got in zip(takes, out[5:], strict=False):
            places[name] = counts.taken(key, member) if got == "1" else None
        if places:  # a later check refuses the request: what its checks did not claim back
            client.on_refusal(lambda: _drop_all(client))
        return decision(out, limits, now, charge)
