"""An anonymous address's requests in flight, counted by every replica together in Redis.

Without Redis each gateway process counts its own (``access.InFlightBound``,
:class:`~LLM_Mesh.core.anonymous_inflight.InFlight`), so N replicas behind a balancer let
one address hold ``anonymous_in_flight`` × N requests (found 2026-12-05; docs/security.md,
"Users and API keys"). With ``--redis-url`` the count of a scope (an IPv4 address, an IPv6
/64) is one Redis sorted set ``llm-mesh:if:<scope's keyed hash>`` (never the address in
clear: :class:`~LLM_Mesh.core.scope_names.ScopeNames`, as the rate-limit buckets), one
member per request (this replica's random id and a counter) scored by the end of its lease
on Redis' clock. A take is one Lua script, atomic: expired members out, refused at the
cap, else a member with a lease of ``lease_s`` (60 s). While its requests run the replica
renews their leases every third of a lease (one script for all of them; a member no longer
there, removed or expired, is not put back); a request that ends removes its member (in
the background: the answer is not held back; with every other removal asked in that turn
of the event loop, one pipeline: :class:`Removals`). A replica that dies leaves its members
for at most one lease. An anonymous request's first take runs in the rate limit's script
(``redis_admit.py``: one round trip for the three).

The same counts, under their own prefix (:data:`SHARE_PREFIX`), hold a model's anonymous
requests in flight for every replica together (``access.AnonymousLast``'s share of its
slots, :mod:`~LLM_Mesh.core.anonymous_share`): there the cap is given with each take, as
the share of the slots the replica sees then.

When Redis does not answer, the replica's own count decides (the per-process bound: Redis
out loosens the bound to one per replica, as the rate limits do; logged) and Redis is tried
again after ``retry_s``; a request counted here is given back here. A take whose client
leaves while Redis runs the script removes its member, in case it was added.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from LLM_Mesh.core.anonymous_inflight import InFlight
from LLM_Mesh.core.scope_names import ScopeNames

__all__ = ["PREFIX", "SHARE_PREFIX", "TAKE_LUA", "Removals", "SharedInFlight"]

log = logging.getLogger(__name__)

PREFIX = "llm-mesh:if:"
SHARE_PREFIX = "llm-mesh:share:"  # a model's anonymous requests in flight (its share)
LEASE_S = 60.0

# take(key, cap, member, lease (s), now): in the scope's set ``key``, 1: taken, 0: at the
# cap. A function, so that ``redis_admit.py``'s script runs it with other counts.
TAKE_LUA = """
local function take(key, cap, member, lease, now)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) >= cap then return 0 end
redis.call('ZADD', key, now + lease, member)
redis.call('PEXPIRE', key, math.ceil(lease * 1000) + 1000)
return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS[1] the scope's set. ARGV: cap, member, lease (s). 1: taken, 0: at the cap.
_TAKE = TAKE_LUA + "return take(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), now)\n"

# KEYS[1] the scope's set: its members whose lease has not ended (every replica's)
_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""

# KEYS: the sets, ARGV[1] the lease, ARGV[i + 1] the member of KEYS[i]: leases renewed,
# of members still there only (XX): a renewal Redis runs after the request's removal (it
# goes on another connection) must not put it back for a lease (found 2026-12-05).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, math.ceil(lease * 1000) + 1000)
end
return #KEYS
"""


class Removals:
    """Members to remove, sent together: every removal asked in one turn of the event loop
    (an anonymous request's two places, in-flight and share; the requests that end at
    once) goes to Redis in one pipeline, one round trip, in the background. A removal that
    fails is left to its lease."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._pending: dict[str, list[str]] = {}  # set -> members
        self._flush: asyncio.Task[None] | None = None

    def add(self, key: str, member: str) -> asyncio.Task[None]:
        """Remove ``member`` from ``key``: the task that will (with the rest of this turn's)."""
        self._pending.setdefault(key, []).append(member)
        flush = self._flush
        if flush is None:
            flush = self._flush = asyncio.get_running_loop().create_task(self._send())
        return flush

    async def _send(self) -> None:
        batch, self._pending, self._flush = self._pending, {}, None  # later ones: a new task
        try:
            if len(batch) == 1:
                ((key, members),) = batch.items()
                await self.client.zrem(key, *members)
                return
            pipe = self.client.pipeline(transaction=False)
            for key, members in batch.items():
                pipe.zrem(key, *members)
            await pipe.execute()
        except Exception as exc:  # their leases end them
            log.debug("Redis in-flight removal failed: %s", exc)


class SharedInFlight:
    """Requests in flight per scope in Redis, at most ``local.cap`` each, for every replica
    together; ``local`` is the fallback (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        local: InFlight,
        *,
        names: ScopeNames | None = None,
        prefix: str = PREFIX,
        lease_s: float = LEASE_S,
        retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        removals: Removals | None = None,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.client = client  # a redis.asyncio.Redis (the rate limits' own)
        self.local = local
        self.names = names or ScopeNames.random()  # the registry key's, once known
        self.prefix = prefix
        self.lease_s = lease_s
        self.retry_s = retry_s
        self.clock = clock
        # the removals' batches, shared by the counts on one client (one round trip an end)
        self.removals = removals or Removals(client)
        self.held: dict[str, str] = {}  # member -> its set: this replica's requests in Redis
        self._take = client.register_script(_TAKE)
        self._renew = client.register_script(_RENEW)
        self._count = client.register_script(_COUNT)
        self._replica = secrets.token_hex(8)
        self._ids = itertools.count()
        self._down_until = 0.0
        self._renewer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # told when Redis goes out (``redis_shown.SharedShown.forget``: the other replicas'
        # shown slots no longer count while this replica counts its own requests)
        self.on_down: Callable[[], None] | None = None

    @property
    def cap(self) -> int:
        return self.local.cap

    @property
    def out(self) -> bool:
        """Whether Redis counts as out now (the local count decides until ``retry_s`` ends)."""
        return self.clock() < self._down_until

    def key(self, scope: str) -> str:
        """The Redis set ``scope``'s requests are counted in (never ``scope`` in clear)."""
        return self.prefix + self.names.name(scope)

    def member(self) -> str:
        """A new request's member: this replica's id and a counter."""
        return f"{self._replica}:{next(self._ids)}"

    async def take(self, scope: str, cap: int | None = None) -> Callable[[], None] | None:
        """One more request of ``scope`` if every replica together has fewer than ``cap``
        (``None``: :attr:`cap`, the local count's): the function that gives it back (call
        it once, when it ends); ``None``: refused."""
        limit = self.cap if cap is None else cap
        if not self.out:
            key = self.key(scope)
            member = self.member()
            try:
                taken = await self._take(keys=[key], args=[limit, member, self.lease_s])
            except asyncio.CancelledError:  # the client left: the member may be there
                self.forget(key, member)
                raise
            except Exception as exc:  # redis.RedisError, OSError, timeouts: all mean "out"
                self.down(exc)
            else:
                return self.taken(key, member) if int(taken) else None
        return self.take_local(scope, limit)

    async def count(self, scope: str) -> int | None:
        """``scope``'s requests in flight at every replica together, one round trip (a read:
        no take); ``None`` when Redis is out (the caller's own count decides)."""
        if self.out:
            return None
        try:
            return int(await self._count(keys=[self.key(scope)]))
        except Exception as exc:  # redis.RedisError, OSError, timeouts: all mean "out"
            self.down(exc)
            return None

    def take_local(self, scope: str, cap: int) -> Callable[[], None] | None:
        """As :meth:`take`, in this replica's own count (Redis out)."""
        local = self.local
        if not local.take(scope, cap):
            return None
        return lambda: local.give(scope)

    def taken(self, key: str, member: str) -> Callable[[], None]:
        """Redis added ``member`` to ``key``: renewed while held, its give-back function."""
        self.held[member] = key
        self._keep_renewing()
        return lambda: self._give(member)

    def forget(self, key: str, member: str) -> None:
        """Remove ``member``, which a take whose answer never came may have added."""
        self._track(self.removals.add(key, member))

    def _give(self, member: str) -> None:
        key = self.held.pop(member, None)
        if key is not None:
            self._track(self.removals.add(key, member))

    def down(self, exc: BaseException) -> None:
        """Redis did not answer: the local count decides for ``retry_s`` (logged)."""
        self._down_until = self.clock() + self.retry_s
        if self.on_down is not None:
            self.on_down()
        log.warning(
            "Redis in-flight counts unavailable (%s); this replica counts on its own for %.0f s",
            exc,
            self.retry_s,
        )

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _keep_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        """Every third of a lease while this replica holds members: their leases renewed."""
        while self.held:
            await asyncio.sleep(self.lease_s / 3)
            held = list(self.held.items())
            if not held:
                break
            try:
                await self._renew(
                    keys=[key for _, key in held],
                    args=[self.lease_s, *(member for member, _ in held)],
                )
            except Exception as exc:  # the next round tries again; a lease may end first
                log.warning("Redis in-flight leases not renewed: %s", exc)

    async def aclose(self) -> None:
        """Stop renewing; wait for the removals under way (the client is the rate limits')."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
