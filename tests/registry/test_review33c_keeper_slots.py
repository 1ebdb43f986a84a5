"""The slots of nodes that may keep prompts lent to the anonymous share (review33c, found
2026-12-06): private33 holds such a node out of every request that does not opt in
(``allow_prompt_keeping``), but attack33's count of a model's slots (``Routing.slots``,
the anonymous share's base) still summed its ``max_concurrency``. One registration with
``keeps_no_prompts: false`` and 2^31 - 1 slots (or any honest ``openai`` node beside
small ones) raised the anonymous cap past every slot the anonymous requests may use: a
flood held all of them and keyed requests got 429. docs/security.md, "Users and API
keys"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.registry.helpers import running
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key
from tests.registry.test_anonymous_share import HoldAnonymous, _flood, _last

HUGE = 2**31 - 1


@pytest.mark.parametrize("slots", [HUGE, 4])
async def test_a_prompt_keeping_nodes_slots_are_not_lent_to_anonymous_requests(
    tmp_path: Path, slots: int
) -> None:
    nodes = HoldAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        for n in ("a", "b"):
            await h.register(n, max_concurrency=2, max_queue=0)  # 4 honest slots: 3 anonymous
        z = await h.register("z", max_concurrency=slots, max_queue=0, keeps_no_prompts=False)
        routing = h.runtime.routing
        assert routing.slots(MODEL) == 4  # before the fix: 4 + slots
        assert routing.slots(MODEL, True) == 4 + slots  # a request that opted in may use z
        key, _ = await new_key(h, name="payer")
        flood = asyncio.create_task(_flood(h, 40, stop, refused))
        try:
            await _until(lambda: nodes.held >= 3 and len(refused) > 40, 10)
            r = await asyncio.wait_for(
                h.client.post(CHAT, json=chat("keyed"), headers=bearer(key)), 20
            )
            assert r.status_code == 200, r.text  # before the fix: 429 saturated
            assert r.headers["x-mesh-node"] in ("a", "b")
            assert nodes.most_held == 3  # before: 4, every slot they may use
            assert not z.calls  # no request opted in
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})


async def test_the_nodes_held_out_are_made_once_per_change_not_per_request(
    tmp_path: Path,
) -> None:
    """``Routing.keepers_for`` runs for every anonymous request's admission and every
    attempt; it walked every node that may keep prompts each time (1.4 ms a call with
    10,000 of them): now once per model until one registers, changes or leaves."""
    async with running(tmp_path) as h:
        routing = h.runtime.routing
        await h.register("z", keeps_no_prompts=False)
        first = routing.keepers_for(MODEL)
        assert first == {"z"}
        assert routing.keepers_for(MODEL) is first  # before the fix: made again each call
        assert routing.keepers_for(MODEL, True) == frozenset()
        await h.register("y", keeps_no_prompts=False)
        assert routing.keepers_for(MODEL) == {"z", "y"}
        await h.register("z", keeps_no_prompts=True)  # it says it keeps none now
        assert routing.keepers_for(MODEL) == {"y"}
        routing.remove("y")
        assert routing.keepers_for(MODEL) == frozenset()
        await h.register("x", models=["other-model"], keeps_no_prompts=False)
        assert routing.keepers_for(MODEL) == frozenset()
        assert routing.keepers_for("other-model") == {"x"}
