"""What each node has shown it serves at every replica, shared through Redis, for the
anonymous share's count (``core/fleet_shown.py`` decides; this does the I/O).

With a Redis URL every replica's anonymous requests of a model are held to one cap
(``redis_inflight.SharedInFlight``), so the slots that cap is a share of must be the fleet's
too: until 2026-12-06 (review35c) each replica counted what the nodes had shown at it
alone, then the declared slots, so an open phantom lifted the cap again (share35's gap A;
closed here, redisshare36). :class:`SharedShown`, one per replica, every
:data:`~LLM_Mesh.core.fleet_shown.PUBLISH_S` (2 s), runs one Lua script, one round trip,
none per request:

- this replica's own view of each node answered here (``fleet_shown.published``: what it
  has shown it serves here, and the requests this replica holds there) goes to
  a hash of its own, ``<prefix><keyed name of "replica:"><id>``, the changed fields only
  (the whole hash when Redis' copy may differ: the first time, after a failure, or when
  its length is not what was sent), expiring after ``FADE_S`` (6 s): a replica that dies
  or loses Redis fades within that;
- the replica is scored in the set of replicas (``<prefix><keyed name of "replicas">``)
  with Redis' time; those older than ``FADE_S`` leave it;
- the other live replicas' hashes come back with their times and Redis' now:
  ``fleet_shown.fleet_sums`` takes per node the most any of them saw it serve at once
  (not their sum: trust37) and adds the requests they hold there, ``Router.fleet_shown``
  sets each node's ``shown_elsewhere`` and ``held_elsewhere`` and the pools recount it.

The names are keyed by the registry key as the in-flight counts' are (``ScopeNames``), so
meshes on one Redis do not mix; node ids are fields (public ids). The script reads other
replicas' hashes by name (not in ``KEYS``): a single Redis, as the rest of the counts.

Redis out (this script failing, or ``SharedInFlight.out`` of the share's counts, which tells
:meth:`SharedShown.forget` at once through ``on_down``): the other replicas' rooms are
dropped, this replica's own shown slots count (review35d), and the share's next tick after
``retry_s`` publishes the whole hash again. A tick that finds Redis marked out when its
script returns (a take failed meanwhile) keeps nothing it read (found 2026-12-06, review36b:
it set the others' rooms again, counted against this replica's requests alone until the
next tick). A tick that fails otherwise (an answer it cannot read) forgets too, and a
replica's view that cannot be read (not UTF-8, a time that is no number) is left out alone
(review36b: the loop kept the last sums, set again at every tick, never fading).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from LLM_Mesh.core.fleet_shown import FADE_S, PUBLISH_S, Elsewhere, changes, fleet_sums
from LLM_Mesh.registry.redis_inflight import SharedInFlight

__all__ = ["SHOWN_PREFIX", "SharedShown"]

log = logging.getLogger(__name__)

SHOWN_PREFIX = "llm-mesh:shown:"

# KEYS[1] the replicas' set, KEYS[2] this replica's hash. ARGV[1] this replica's id,
# ARGV[2] the other hashes' name prefix (+ id), ARGV[3] the fade (ms), ARGV[4] "1": write
# the hash whole, ARGV[5] n fields to set, then n (field, value) pairs, then fields to
# delete. Returns Redis' now, this hash's length, then (id, time, its fields flat) each.
_PUBLISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local fade = tonumber(ARGV[3])
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do redis.call('HSET', KEYS[2], ARGV[6 + 2 * i], ARGV[7 + 2 * i]) end
for j = 6 + 2 * n, #ARGV do redis.call('HDEL', KEYS[2], ARGV[j]) end
redis.call('PEXPIRE', KEYS[2], fade)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - fade / 1000)
redis.call('PEXPIRE', KEYS[1], fade)
local out = {tostring(now), redis.call('HLEN', KEYS[2])}
local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #live, 2 do
  if live[i] ~= ARGV[1] then
    out[#out + 1] = {live[i], live[i + 1], redis.call('HGETALL', ARGV[2] .. live[i])}
  end
end
return out
"""


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class SharedShown:
    """This replica's publisher and reader of the nodes' shown slots (module docstring).
    ``fleet``: ``Router.fleet_shown``; ``share``: the share's Redis counts, whose names
    (``ScopeNames``) and state (``out``, ``down``) it follows."""

    def __init__(
        self,
        client: Any,
        fleet: Callable[[Mapping[str, Elsewhere] | None], dict[str, str]],
        share: SharedInFlight,
        *,
        prefix: str = SHOWN_PREFIX,
        period_s: float = PUBLISH_S,
        fade_s: float = FADE_S,
    ) -> None:
        if period_s <= 0 or fade_s <= 0:
            raise ValueError("period_s and fade_s must be positive")
        self.fleet = fleet
        self.share = share
        self.prefix = prefix
        self.period_s = period_s
        self.fade_s = fade_s
        self.replica = secrets.token_hex(8)
        self.sums: dict[str, Elsewhere] | None = None  # the other replicas' views, last read
        self._sent: dict[str, str] | None = None  # what Redis holds of ours (None: unknown)
        self._script = client.register_script(_PUBLISH)
        self._task: asyncio.Task[None] | None = None
        share.on_down = self.forget

    def _name(self, what: str) -> str:
        return self.prefix + self.share.names.name(what)

    def forget(self) -> None:
        """Redis out: only this replica's own shown slots count; the next tick writes whole."""
        self._sent = None
        if self.sums is not None:
            self.sums = None
            self.fleet(None)

    async def tick(self) -> None:
        """Publish this replica's rooms and read the others' (one round trip)."""
        if self.share.out:
            self.forget()
            return
        own = self.fleet(self.sums)
        sets, dels = changes(self._sent, own)
        hashes = self._name("replica:")  # + a replica's id: its hash
        args: list[Any] = [self.replica, hashes, int(self.fade_s * 1000)]
        args += ["1" if self._sent is None else "0", len(sets)]
        for node, room in sets.items():
            args += [node, room]
        args += dels
        try:
            keys = [self._name("replicas"), hashes + self.replica]
            out = await self._script(keys=keys, args=args)
        except Exception as exc:  # redis.RedisError, OSError, timeouts: all mean "out"
            self.share.down(exc)  # (forget, through on_down)
            return
        if self.share.out:  # marked out meanwhile (a take failed): forgotten, keep nothing
            self.forget()  # read (found 2026-12-06, review36b: set again until the next tick)
            return
        self._sent = own if int(out[1]) == len(own) else None  # else: whole next time
        now = float(_text(out[0]))
        views = []
        for rid, at, flat in out[2:]:
            try:  # one view that cannot be read is left out, not the rest (review36b)
                pairs = [_text(x) for x in flat]
                views.append((float(_text(at)), dict(zip(pairs[::2], pairs[1::2], strict=False))))
            except (UnicodeError, ValueError, TypeError):
                log.warning("shown slots of replica %r not read: not what a replica writes", rid)
        self.sums = fleet_sums(views, now, self.fade_s)
        self.fleet(self.sums)

    def start(self) -> None:
        """Tick every ``period_s`` (in the server's loop) until :meth:`aclose`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # never stop publishing for a bad answer; keep no old view
                log.warning("shown slots not shared this round", exc_info=True)
                with contextlib.suppress(Exception):  # (the loop goes on whatever happens)
                    self.forget()  # (found 2026-12-06, review36b: the last sums, set for ever)
            await asyncio.sleep(self.period_s)

    async def aclose(self) -> None:
        """Stop ticking (the client is the rate limits')."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
