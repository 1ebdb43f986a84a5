"""Anonymous requests that opt into a wait on a saturated model: at most
``MAX_ANONYMOUS_WAITERS`` wait in a process at once, one more is refused at once (found
2026-12-05: any number waited, each looking again every 50 ms, so a minute of anonymous
requests from a few addresses stalled the gateway's loop). docs/security.md, "Users and
API keys"."""

from __future__ import annotations

import asyncio
from pathlib import Path

from LLM_Mesh.core.anonymous_wait import MAX_ANONYMOUS_WAITERS
from LLM_Mesh.core.balancer import Outcome
from tests.registry.helpers import running
from tests.registry.test_access import CHAT, MODEL, _until, chat

EXTRA = 3


async def test_anonymous_waiters_past_the_cap_are_refused_at_once(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        routing = h.runtime.routing
        busy = routing.begin("a", MODEL)  # the model saturated
        waiting = [
            asyncio.create_task(h.client.post(CHAT, json=chat(mesh_wait_s=60)))
            for _ in range(MAX_ANONYMOUS_WAITERS)
        ]
        try:
            await _until(lambda: routing.demand.waiting.get(MODEL, 0) == MAX_ANONYMOUS_WAITERS,
                         timeout_s=60.0)  # fmt: skip
            for _ in range(EXTRA):  # before: each waited too (up to its 60 s)
                r = await asyncio.wait_for(h.client.post(CHAT, json=chat(mesh_wait_s=60)), 10)
                assert r.status_code == 429, r.text
                err = r.json()["error"]
                assert err["code"] == "overloaded" and err["anonymous"] is True
                assert "wait already" in err["message"]
            assert routing.demand.waiting.get(MODEL, 0) == MAX_ANONYMOUS_WAITERS
            routing.finish(busy, Outcome.SUCCESS)  # a slot frees: a waiter is served
            first = await asyncio.wait_for(
                next(asyncio.as_completed(waiting)), 10
            )  # fmt: skip
            assert first.status_code == 200
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
