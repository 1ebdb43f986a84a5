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
from LLM_Mesh.registry.routing import WaitPlace
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
    """One key's requests may take every place while no other key waits, and give one up
    to another key's request (push-out, core/slot_wait.place_for); found 2026-12-05: one
    key's flood took them all and every other key's wait was refused."""
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        flood, _ = await new_key(h, name="flood")
        other, _ = await new_key(h, name="other")
        routing = h.runtime.routing
        routing.max_send_waiters = 8
        busy = routing.begin("a", MODEL)
        wait = {"X-Mesh-Wait": "30"}
        flooding = [
            asyncio.create_task(h.client.post(CHAT, json=chat(), headers={**wait, **bearer(flood)}))
            for _ in range(routing.max_send_waiters + 1)
        ]
        await _until(lambda: sum(t.done() for t in flooding) == 1)
        await _until(lambda: routing.waiters == 8)  # every place: nobody else waits
        late = next(t for t in flooding if t.done()).result()
        assert late.status_code == 429, late.text
        assert "8 of them by this API key's requests" in late.json()["error"]["message"]
        theirs = asyncio.create_task(
            h.client.post(CHAT, json=chat(), headers={**wait, **bearer(other)})
        )
        # a flood request gives up its place at once (woken, not at its next look)
        await _until(lambda: sum(t.done() for t in flooding) == 2)
        pushed = [t.result() for t in flooding if t.done() and t.result() is not late]
        assert [r.status_code for r in pushed] == [429], pushed
        assert "went to a request of another API key" in pushed[0].json()["error"]["message"]
        await _until(lambda: routing.waiters == 8)
        assert not theirs.done()
        assert sorted(len(p) for p in routing.key_waiters.values()) == [1, 7]
        routing.finish(busy, Outcome.SUCCESS)
        assert (await asyncio.wait_for(theirs, 10)).status_code == 200
        for t in flooding:
            assert (await asyncio.wait_for(t, 10)).status_code in (200, 429)
        assert routing.send_waiters == 0 and routing.key_waiters == {}


async def test_forty_keys_flooding_leave_a_place_for_a_forty_first(tmp_path: Path) -> None:
    """Found open 2026-12-05: four keys at their quarter and 32 more (33 keys and more in
    all) filled the 256 places, so a further key's wait was refused at once; now forty keys
    flooding one after another end within one place of each other and the 41st waits, a
    flood's newest waiter answered at once (woken, not at its next look)."""
    async with running(tmp_path) as h:
        routing = h.runtime.routing
        places: dict[str, list[WaitPlace]] = {}
        for k in range(40):
            mine = places.setdefault(f"k{k}", [])
            while not isinstance(got := routing.take_place(f"k{k}"), str):
                mine.append(got)
        held = {key: len(p) for key, p in routing.key_waiters.items()}
        assert routing.send_waiters == routing.max_send_waiters == sum(held.values())
        assert len(held) == 40 and max(held.values()) <= 7, held  # ceil(256 / 40)
        victim = max(held, key=lambda k: held[k])
        newest = next(reversed(routing.key_waiters[victim]))
        assert newest is [p for p in places[victim] if not p.out][-1]
        sleeper = asyncio.create_task(routing.wait_change(30.0, MODEL, newest))
        await _until(lambda: newest.wake is not None)  # asleep in its look
        last = routing.take_place("k40")
        assert isinstance(last, WaitPlace), last  # before: refused, 36 keys filled them
        assert "went to a request of another API key" in newest.out
        await asyncio.wait_for(sleeper, 20)  # woken at once: not its 30 s (5 s before flakes40)
        assert len(routing.key_waiters[victim]) == held[victim] - 1
        for p in [q for ps in places.values() for q in ps] + [last]:  # pushed out: no-op
            routing.leave_place(p)
        assert routing.send_waiters == 0 and routing.key_waiters == {}
