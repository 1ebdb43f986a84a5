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
from LLM_Mesh.core.slot_wait import RECHECK_S, key_cap
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
        now = await h.client.post(CHAT, json=chat(), headers=bearer(key))  # no wait sent
        assert now.status_code == 429 and "send X-Mesh-Wait" in now.json()["error"]["message"]
        picks = _count_picks(h)
        wait_s = 1.0
        t0 = time.monotonic()
        r = await h.client.post(
            CHAT, json=chat(), headers={"X-Mesh-Wait": str(wait_s), **bearer(key)}
        )
        took = time.monotonic() - t0
        assert r.status_code == 429 and r.json()["error"]["reason"] == "saturated", r.text
        # it sent a wait (found 2026-12-05: told to send X-Mesh-Wait or mesh_wait_s)
        assert "X-Mesh-Wait or mesh_wait_s of 1 s ran out" in r.json()["error"]["message"]
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
        keys = [(await new_key(h, name=f"payer{i}"))[0] for i in range(4)]  # each its share
        routing = h.runtime.routing
        routing.max_send_waiters = 3
        busy = routing.begin("a", MODEL)
        waits = [{"X-Mesh-Wait": "30", **bearer(key)} for key in keys]
        waiting = [asyncio.create_task(h.client.post(CHAT, json=chat(), headers=wait))
                   for wait in waits[:3]]  # fmt: skip
        await _until(lambda: routing.waiters == 3)
        t0 = time.monotonic()
        r = await asyncio.wait_for(h.client.post(CHAT, json=chat(), headers=waits[3]), 10)
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


async def test_one_keys_flood_of_waiters_leaves_places_for_another_key(tmp_path: Path) -> None:
    """One key's requests hold at most ``key_cap`` (a quarter) of the places; found
    2026-12-05: one key's flood took them all and every other key's wait was refused."""
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        flood, _ = await new_key(h, name="flood")
        other, _ = await new_key(h, name="other")
        routing = h.runtime.routing
        routing.max_send_waiters = 8
        share = key_cap(8)
        assert share == 2
        busy = routing.begin("a", MODEL)
        wait = {"X-Mesh-Wait": "30"}
        flooding = [
            asyncio.create_task(h.client.post(CHAT, json=chat(), headers={**wait, **bearer(flood)}))
            for _ in range(routing.max_send_waiters)
        ]
        await _until(lambda: sum(t.done() for t in flooding) == len(flooding) - share)
        for t in [t for t in flooding if t.done()]:  # answered at once, as without a wait
            r = t.result()
            assert r.status_code == 429, r.text
            assert "this API key" in r.json()["error"]["message"]
        assert routing.waiters == share
        theirs = asyncio.create_task(
            h.client.post(CHAT, json=chat(), headers={**wait, **bearer(other)})
        )
        await _until(lambda: routing.waiters == share + 1)  # it waits: places were left
        assert not theirs.done()
        routing.finish(busy, Outcome.SUCCESS)
        assert (await asyncio.wait_for(theirs, 10)).status_code == 200
        for t in flooding:
            assert (await asyncio.wait_for(t, 10)).status_code in (200, 429)
        assert routing.send_waiters == 0 and routing.key_waiters == {}


async def test_four_keys_waiting_leave_a_place_for_a_fifth(tmp_path: Path) -> None:
    """Found open 2026-12-05: four keys, each at its quarter (64), filled the 256 places
    and a fifth key's wait was refused at once; now the last places are kept for keys not
    waiting yet (``core/slot_wait.kept_for_new``), one each."""
    async with running(tmp_path) as h:
        routing = h.runtime.routing
        taken = {key: 0 for key in ("k1", "k2", "k3", "k4")}
        for key in taken:
            while not routing.take_place(key):
                taken[key] += 1
        assert sum(taken.values()) < routing.max_send_waiters, taken  # before: 4 x 64 = 256
        said = routing.take_place("k4")
        assert "kept for API keys" in said, said
        assert routing.take_place("k5") == ""  # the fifth key waits
        for key, n in [*taken.items(), ("k5", 1)]:
            for _ in range(n):
                routing.leave_place(key)
        assert routing.send_waiters == 0 and routing.key_waiters == {}
