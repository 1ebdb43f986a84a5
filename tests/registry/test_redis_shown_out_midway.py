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

import uuid
from typing import Any

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
        assert y.sums == {"n1": 3}  # the control: x's room counted at y
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
