"""Clients' rate-limit buckets shared by every replica, in Redis.

With ``--redis-url`` (``Settings.redis_url``, ``LLM_MESH_REDIS_URL``) the gateway keeps
each scope's buckets (``core/ratelimit.py``'s arithmetic: a minute's worth, refilled
evenly; a token estimate charged first and settled with the real usage) in one Redis hash
``llm-mesh:rl:<scope>`` (kept until its buckets are full again: at least a minute, at most
an hour) and decides in one Lua script, atomically, on Redis' clock
(``TIME``), so N replicas give a client one limit, not N. ``<scope>`` is never the scope
itself (an anonymous client's is its address) but its keyed hash
(:class:`~LLM_Mesh.core.scope_names.ScopeNames`, from ``registry.key``: replicas sharing
a Redis must share that file, as they do for the ledger; the app sets it at its start,
:func:`~LLM_Mesh.registry.app_keys.start_keys`). Without a Redis URL the buckets
live in the process (zero-config). When Redis does not answer, the check falls back to
the process's own buckets (logged) and tries Redis again after ``retry_s``: a Redis
outage loosens the limit to one per replica, it does not stop the gateway. A decision
says where it was charged (``Decision.shared``) and is settled there only: a charge of
the local buckets is settled in them even once Redis answers again (it never charged
Redis), a charge of Redis in Redis (the local buckets are left as they are).

The script's arithmetic is :class:`~LLM_Mesh.core.ratelimit.Bucket`'s;
``tests/registry/test_redis_limits.py`` runs one sequence of checks through both, on one
clock, and compares every verdict.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from LLM_Mesh.core.ratelimit import Bucket, Decision, Limits, RateLimiter, limit_headers
from LLM_Mesh.core.scope_names import ScopeNames

__all__ = ["LIMIT_LUA", "RedisLimiter", "decision", "texts"]

log = logging.getLogger(__name__)

PREFIX = "llm-mesh:rl:"

# limit(key, a): the scope's hash ``key``; ``a`` ARGV from its first: rpm (0: none), tpm
# (0: none), limits signature, "check" | "settle", n (check: tokens to charge; settle:
# used - charged), now ("" for Redis' own TIME). Returns {allowed, exceeded, wait_s,
# requests level, tokens level} as strings (a Lua number would come back truncated to an
# integer). A function, so that ``redis_admit.py``'s script runs it with other counts.
LIMIT_LUA = """
local function limit(key, a)
local now
if a[6] ~= '' then now = tonumber(a[6]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local rpm, tpm, sig, mode, n = tonumber(a[1]), tonumber(a[2]), a[3], a[4], tonumber(a[5])
local h = redis.call('HMGET', key, 'sig', 'rl', 'ra', 'tl', 'ta')
local rl, ra, tl, ta
if h[1] == sig then
  rl, ra, tl, ta = tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5])
else
  -- other limits: not this charge's buckets. None (expired once full): full buckets
  if mode == 'settle' and h[1] then return {'0', '', '0', '0', '0'} end
  rl, ra, tl, ta = rpm, now, tpm, now
end
local function f(x) return string.format('%.17g', x) end
local function level(l, at, cap)
  local v = l + math.max(0, now - at) * cap / 60
  if v > cap then v = cap end
  return v
end
local rlev, tlev = 0, 0
if rpm > 0 then rlev = level(rl, ra, rpm) end
if tpm > 0 then tlev = level(tl, ta, tpm) end
if mode == 'settle' then
  if tpm > 0 then
    tlev = tlev - n
    if tlev > tpm then tlev = tpm end
  end
else
  if rpm > 0 then
    if rlev < 1 then
      return {'0', 'requests', f((1 - rlev) / (rpm / 60)), f(rlev), f(tlev)}
    end
  end
  if tpm > 0 then
    if n > tpm then return {'0', 'tokens', 'inf', f(rlev), f(tlev)} end
    if tlev < n then
      return {'0', 'tokens', f((n - tlev) / (tpm / 60)), f(rlev), f(tlev)}
    end
    tlev = tlev - n
  end
  if rpm > 0 then rlev = rlev - 1 end
end
redis.call('HSET', key, 'sig', sig, 'rl', f(rlev), 'ra', f(now),
  'tl', f(tlev), 'ta', f(now))
-- kept until its buckets are full again (then no key is the same), at least a minute,
-- at most an hour (a debt of tokens longer than that is forgiven)
local full = 0
if rpm > 0 then full = math.max(full, (rpm - rlev) * 60 / rpm) end
if tpm > 0 then full = math.max(full, (tpm - tlev) * 60 / tpm) end
redis.call('EXPIRE', key, math.min(3600, math.max(60, math.ceil(full) + 1)))
return {'1', '', '0', f(rlev), f(tlev)}
end
"""

# KEYS[1] the scope's hash, ARGV as ``limit``'s ``a``
_SCRIPT = LIMIT_LUA + "return limit(KEYS[1], ARGV)\n"


def _sig(limits: Limits) -> str:
    return f"{limits.rpm or 0}/{limits.tpm or 0}"


def texts(raw: Any) -> list[str]:
    """A script's answer, a list of Redis strings, as text."""
    return [x.decode() if isinstance(x, bytes) else str(x) for x in raw]


def decision(out: list[str], limits: Limits, now: float, charge: int) -> Decision:
    """The :class:`Decision` of ``limit``'s answer ``out`` (its first five strings) to a
    check that asked to charge ``charge`` tokens; ``now`` the local clock (headers)."""
    allowed, exceeded, wait, rlev, tlev = out[:5]
    headers = limit_headers(
        limits,
        _bucket(limits.rpm, float(rlev), now),
        _bucket(limits.tpm, float(tlev), now),
        now,
    )
    if allowed == "1":
        return Decision(True, headers, charged=charge, shared=True)
    limit = (limits.rpm if exceeded == "requests" else limits.tpm) or 0
    return Decision(
        False, headers, retry_after_s=math.inf if wait == "inf" else float(wait),
        exceeded=exceeded, limit=limit, requested=1 if exceeded == "requests" else charge,
    )  # fmt: skip


def _bucket(capacity: int | None, level: float, now: float) -> Bucket | None:
    if capacity is None:
        return None
    b = Bucket(capacity, now)
    b.level_at = level
    return b


class RedisLimiter:
    """Buckets per scope in Redis (see the module docstring); ``local`` is the fallback."""

    def __init__(
        self,
        client: Any,
        local: RateLimiter,
        *,
        retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        redis_clock: Callable[[], float] | None = None,
        names: ScopeNames | None = None,
    ) -> None:
        self.client = client  # a redis.asyncio.Redis
        self.local = local
        self.retry_s = retry_s
        self.clock = clock
        self._redis_clock = redis_clock  # tests: a clock instead of Redis' TIME
        self.names = names or ScopeNames.random()  # the registry key's, once known
        self._script = client.register_script(_SCRIPT)
        self._down_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(cls, url: str, local: RateLimiter, **kw: Any) -> RedisLimiter:
        import redis.asyncio as redis_asyncio  # optional: only with a Redis URL

        client = redis_asyncio.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return cls(client, local, **kw)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
        await self.client.aclose()

    def key(self, scope: str) -> str:
        """The Redis hash ``scope``'s buckets are kept in (never ``scope`` in clear)."""
        return PREFIX + self.names.name(scope)

    def _now_arg(self) -> str:
        return "" if self._redis_clock is None else repr(self._redis_clock())

    @property
    def out(self) -> bool:
        """Whether Redis counts as out now (the local buckets decide until ``retry_s`` ends)."""
        return self.clock() < self._down_until

    def args(self, limits: Limits, mode: str, n: int) -> list[str | int]:
        """The script's ARGV (``LIMIT_LUA``'s ``a``) for a check or a settlement."""
        return [limits.rpm or 0, limits.tpm or 0, _sig(limits), mode, n, self._now_arg()]

    def down(self, exc: BaseException) -> None:
        """Redis did not answer: the local buckets decide for ``retry_s`` (logged)."""
        self._down_until = self.clock() + self.retry_s
        log.warning(
            "Redis rate limits unavailable (%s); this replica limits on its own for %.0f s",
            exc,
            self.retry_s,
        )

    async def _run(self, scope: str, limits: Limits, mode: str, n: int) -> list[str] | None:
        """The script's answer, or ``None`` when Redis is out (use the local buckets)."""
        if self.out:
            return None
        try:
            raw = await self._script(keys=[self.key(scope)], args=self.args(limits, mode, n))
        except Exception as exc:  # redis.RedisError, OSError, timeouts: all mean "out"
            self.down(exc)
            return None
        return texts(raw)

    async def check(self, scope: str, limits: Limits, now: float, tokens: int = 0) -> Decision:
        """As :meth:`RateLimiter.check`, shared; ``now`` is the local clock (headers, fallback)."""
        if limits.unlimited:
            return Decision(True)
        charge = max(0, tokens) if limits.tpm else 0
        out = await self._run(scope, limits, "check", charge)
        if out is None:
            return self.local.check(scope, limits, now, tokens)
        return decision(out, limits, now, charge)

    def settle(self, scope: str, limits: Limits, now: float, charged: int, used: int) -> None:
        """As :meth:`RateLimiter.settle`, in Redis only, in the background (the answer is
        not held back): for a charge Redis made (``Decision.shared``); one the local buckets
        made while Redis was out is settled there (``RateLimiter.settle``), never here
        (Redis never charged it). ``now`` is unused (Redis' clock)."""
        if limits.tpm is None or used == charged:
            return

        async def run() -> None:
            await self._run(scope, limits, "settle", used - charged)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
