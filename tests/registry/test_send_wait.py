"""The send stage's opt-in wait for a slot (``mesh_wait_s`` / ``X-Mesh-Wait``, keyed
requests): woken by changes, else looking again no sooner than ``slot_wait.RECHECK_S``, and
at most ``max_send_waiters`` waiting at once (found 2026-12-05: a look every 5 ms while a
fast node stayed full, any number of waiters for a key without limits).
docs/security.md, "Users and API keys"."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.slot_wait import RECHECK_S
from tests.registry.helpers import Harness, running
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key


async def _fast_full_node(h: Harness) -> None:
    """Node ``a`` full (one slot, taken), measuring 0.1 ms a request: the router's estimate
    of the wait is a fraction of a millisecond."""
    await h.register("a", max_concurrency=1, max_queue=0)
    r = await h.client.post(
        "/mesh/nodes/a/heartbeat", json={"in_flight": 1, "queued": 0, "service_s": 0.0001}
    )
    assert r.status_code == 200, r.text


def _count_picks(h: Harness) -> list[int]:
    routing = h.runtime.routing
    picks = [0]
    pick = routing.pick

    def counted(req):  # type: ignore[no-untyped-def]
        picks[0] += 1
        return pick(req)

    routing.pick = counted  # type: ignore[method-assign]
    return picks


async def test_a_keyed_wait_on_a_full_fast_node_does_not_poll(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await _fast_full_node(h)
        key, _ = await new_key(h, name="payer")
        picks = _count_picks(h)
        wait_s = 1.0
        t0 = time.monotonic()
        r = await h.client.post(
            CHAT, json=chat(), headers={"X-Mesh-Wait": str(wait_s), **bearer(key)}
        )
        took = time.monotonic() - t0
        assert r.status_code == 429 and r.json()["error"]["reason"] == "saturated", r.text
        assert took >= wait_s * 0.9
        # before: a look every 5 ms (~200 in the second, fewer on a loaded machine)
        assert picks[0] <= wait_s / RECHECK_S + 3, picks[0]
        assert h.runtime.routing.send_waiters == 0


async def test_a_keyed_waiter_is_woken_when_the_slot_frees(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        key, _ = await new_key(h, name="payer")
        routing = h.runtime.routing
        busy = routing.begin("a", MODEL)
        waiting = asyncio.create_task(
            h.client.post(CHAT, json=chat(), headers={"X-Mesh-Wait": "30", **bearer(key)})
        )
        await _until(lambda: routing.waiters == 1)
        t0 = time.monotonic()
        routing.finish(busy, Outcome.SUCCESS)
        r = await asyncio.wait_for(waiting, 10)
        assert r.status_code == 200, r.text
        assert time.monotonic() - t0 < 5.0  # woken by the change, not its 30 s wait's end


async def test_waiters_past_the_cap_are_answered_at_once(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        key, _ = await new_key(h, name="payer")
        routing = h.runtime.routing
        routing.max_send_waiters = 3
        busy = routing.begin("a", MODEL)
        wait = {"X-Mesh-Wait": "30", **bearer(key)}
        waiting = [asyncio.create_task(h.client.post(CHAT, json=chat(), headers=wait))
                   for _ in range(3)]  # fmt: skip
        await _until(lambda: routing.waiters == 3)
        t0 = time.monotonic()
        r = await asyncio.wait_for(h.client.post(CHAT, json=chat(), headers=wait), 10)
        assert time.monotonic() - t0 < 5.0  # not its 30 s
        assert r.status_code == 429, r.text
        err = r.json()["error"]
        assert err["reason"] == "saturated" and "wait already" in err["message"]
        routing.finish(busy, Outcome.SUCCESS)
        for t in waiting:
            assert (await asyncio.wait_for(t, 10)).status_code == 200
        assert routing.send_waiters == 0


async def test_a_waiter_is_not_woken_by_another_models_traffic(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await _fast_full_node(h)
        await h.register("b", models=["other-model"], max_concurrency=4)
        key, _ = await new_key(h, name="payer")
        other = {"model": "other-model", "messages": [{"role": "user", "content": "hi"}]}
        wait_s = 1.0
        waiting = asyncio.create_task(
            h.client.post(CHAT, json=chat(), headers={"X-Mesh-Wait": str(wait_s), **bearer(key)})
        )
        await _until(lambda: h.runtime.routing.waiters == 1)
        picks = _count_picks(h)
        served = 0
        while not waiting.done():  # each answer ends an attempt: a change for other-model
            r = await h.client.post(CHAT, json=other, headers=bearer(key))
            assert r.status_code == 200, r.text
            served += 1
        assert (await waiting).status_code == 429
        assert served >= 5
        # the other model's requests pick once each; the waiter looks at most every RECHECK_S
        # (before: once more per other-model answer)
        assert picks[0] - served <= wait_s / RECHECK_S + 3, (picks[0], served)
