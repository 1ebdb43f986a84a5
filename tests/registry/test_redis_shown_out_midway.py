"""Redis marked out while a publication is on its way (found 2026-12-06, review36b).

``SharedShown.tick`` awaits its script; meanwhile a request's take of the share's counts may
fail and mark Redis out (``SharedInFlight.down``, which calls ``SharedShown.forget``: from
then this replica counts its own requests alone, so only its own shown slots may count,
review35d). The tick then came back and set the other replicas' rooms again on the router
(``fleet(sums)``) while the share still counted locally: the cap was a share of the fleet's
slots held against this replica's requests alone, until the next tick (2 s later) forgot
them again. Now a tick that finds Redis out on its return keeps nothing it read.

Needs Redis as ``test_redis_limits.py`` does (skipped when it does not answer)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from LLM_Mesh.core.fleet_shown import Elsewhere
from tests.registry.redis_keys import swept
from tests.registry.test_redis_limits import redis_url  # noqa: F401 (fixture)
from tests.registry.test_redis_shown import _close, _replica


async def test_redis_out_during_a_publication_keeps_the_others_rooms_out(
    redis_url: str,  # noqa: F811
) -> None:
    prefix = f"review36b:{uuid.uuid4().hex}:"
    x, _, _ = _replica(redis_url, prefix, {"n1": 3})
    y, fy, _ = _replica(redis_url, prefix, {"n1": 1})
    try:
        await x.tick()
        await y.tick()
        assert y.sums == {"n1": Elsewhere(3, 0)}  # the control: x's room counted at y
        script = y._script

        async def out_midway(**kw: Any) -> Any:
            answer = await script(**kw)
            y.share.down(ConnectionError("a take failed meanwhile"))  # forget(), at once
            return answer

        y._script = out_midway
        await y.tick()
        assert y.share.out
        # before the fix: {"n1": 3} set again on the router while the share counted locally
        assert y.sums is None and fy.given[-1] is None
        y._script = script
        await y.tick()  # still out: nothing asked, nothing set
        assert y.sums is None and fy.given[-1] is None
    finally:
        await _close(x, y)
        await swept(redis_url, prefix)  # nothing left under it (hygiene44)


async def test_a_view_that_cannot_be_read_is_left_out_and_the_rest_still_counts(
    redis_url: str,  # noqa: F811
) -> None:
    """Found 2026-12-06 (review36b): one replica's hash holding a field that is not UTF-8
    (a corrupt or foreign writer on the shared Redis) made every tick raise after its
    write, so the loop logged and went on with the *last* sums, set on the router at each
    tick's start for ever: views that should fade (a replica gone, a room that shrank)
    never did. Now that view alone is left out."""
    prefix = f"review36b:{uuid.uuid4().hex}:"
    x, fx, _ = _replica(redis_url, prefix, {"n1": 3})
    y, _, _ = _replica(redis_url, prefix, {})
    client = y.share.client
    bad = y._name("replica:") + "bad"
    try:
        await x.tick()
        await y.tick()
        assert y.sums == {"n1": Elsewhere(3, 0)}
        now = float((await client.time())[0])
        # written here, with no TTL: deleted here (found 2026-12-07, hygiene44: one key
        # more in Redis at every run)
        await client.hset(bad, mapping={b"\xff\xfe": b"9"})
        await client.zadd(y._name("replicas"), {"bad": now})
        fx.own = {"n1": 1}  # x's room shrank
        await x.tick()
        await y.tick()  # before the fix: UnicodeDecodeError, the sums left at {"n1": 3}
        assert y.sums == {"n1": Elsewhere(1, 0)}
    finally:
        await client.delete(bad)
        await _close(x, y)
        await swept(redis_url, prefix)  # nothing left under it (hygiene44)


async def test_a_tick_that_fails_unexpectedly_drops_the_other_replicas_rooms(
    redis_url: str,  # noqa: F811
) -> None:
    """Found 2026-12-06 (review36b): the publishing loop logged any other failure of a tick
    (an answer it could not read) and kept the last sums, set again at each tick's start:
    the other replicas' rooms never faded while ticks kept failing. Now the loop forgets
    them (this replica's own shown slots count, as while Redis is out)."""
    prefix = f"review36b:{uuid.uuid4().hex}:"
    x, _, _ = _replica(redis_url, prefix, {"n1": 3})
    y, fy, _ = _replica(redis_url, prefix, {}, period_s=0.05)
    try:
        await x.tick()
        await y.tick()
        assert y.sums == {"n1": Elsewhere(3, 0)}

        async def garbled(**_kw: Any) -> Any:
            return ["not a time", 0]

        y._script = garbled
        y.start()
        for _ in range(100):
            if y.sums is None:
                break
            await asyncio.sleep(0.02)
        # before the fix: {"n1": 3} for ever, set again at every tick
        assert y.sums is None and fy.given[-1] is None
        assert not y.share.out  # Redis itself answered: the share's counts stay shared
    finally:
        await _close(x, y)
        await swept(redis_url, prefix)  # nothing left under it (hygiene44)
