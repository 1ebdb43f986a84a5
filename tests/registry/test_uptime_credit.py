"""Uptime credit for load a node claims that nobody sent it (``registry/uptime_credit.py``,
``core/rewards.explained_load_credit_s``): a node's load report steers the router (at its
capacity it is sent nothing, near it little), so a node reporting load it does not have
refuses nothing and was credited full uptime for little or no work (found 2026-12-03). A
registered node serves only its gateways' requests, which they count in flight, so the
interval a report steered the router is credited for the share of its claimed load the
mesh knows it sent (this replica's in flight there, and the in-flight counts per node the
other live replicas publish), with a slack of 2 requests that never reaches the capacity."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from LLM_Mesh.core.route_types import Outcome
from LLM_Mesh.registry.ports import ReplicaRecord
from LLM_Mesh.registry.replicas import ReplicaBeat
from tests.registry.helpers import Harness, ManualClock, registration, running

FULL = {"in_flight": 2, "queued": 4}  # registration(): max_concurrency 2, max_queue 4
ONE_SHORT = {"in_flight": 2, "queued": 3}
ROOM = {"in_flight": 0, "queued": 0}
MODEL = "gemma-3-270m"


async def beat(h: Harness, node_id: str, load: dict[str, int], back_s: float = 5.0) -> int:
    """One heartbeat ``back_s`` after the node's previous one; the ms it credited."""
    h.clock.advance(back_s)
    rec = h.store.nodes[node_id]
    before = rec.healthy_ms
    assert rec.last_heartbeat_at is not None
    rec.last_heartbeat_at -= timedelta(seconds=back_s)
    r = await h.client.post(f"/mesh/nodes/{node_id}/heartbeat", json=load)
    assert r.status_code == 200, r.text
    await h.runtime.heartbeats.flush()  # type: ignore[union-attr]  # written behind
    return rec.healthy_ms - before


def full_credit(ms: int) -> bool:
    return 5_000 <= ms < 6_000


async def ask(h: Harness, node_id: str) -> int:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
            "allow_nodes": [node_id]}  # fmt: skip
    return (await h.client.post("/v1/chat/completions", json=body)).status_code


def other_replica(h: Harness, demand: dict[str, object] | None) -> None:
    """Another live replica on the store publishing ``demand`` (None: none alive)."""
    beat_task = ReplicaBeat(h.store, replica_id="replica-here")
    h.runtime.replicas = beat_task
    now = datetime.now(timezone.utc)
    beat_task.live = (
        {}
        if demand is None
        else {"replica-other": ReplicaRecord("replica-other", now, now, "test", demand)}
    )


async def test_a_node_reporting_itself_full_after_serving_earns_nothing_for_it(
    tmp_path: Path,
) -> None:
    """The attack: a node answers a request, then heartbeats ``in_flight`` + ``queued`` at its
    capacity with nothing sent to it. The router sends it nothing (429 at the gateway), so
    it refuses nothing. It was credited in full for the heartbeat expiry (30 s) after its
    answer, then nothing (found 2026-12-03); now nothing from the first interval its report
    steered: nobody sent the load it claimed. A node reporting room is credited throughout."""
    async with running(tmp_path) as h:
        liar = await h.register("liar")
        await h.register("open")
        assert full_credit(await beat(h, "liar", ROOM))
        assert await ask(h, "liar") == 200  # it answered one: no excuse for what follows
        assert full_credit(await beat(h, "liar", FULL))  # the interval before: room
        liar_ms, open_ms = [], []
        for _ in range(60):  # five minutes of 5 s heartbeats
            assert await ask(h, "liar") == 429  # saturated by its own word: not sent
            liar_ms.append(await beat(h, "liar", FULL))
            open_ms.append(await beat(h, "open", ROOM))
        assert len(liar.calls) == 1  # it served the one request
        assert liar_ms == [0] * 60
        assert all(full_credit(ms) for ms in open_ms)


async def test_a_node_reporting_itself_one_short_of_full_earns_nothing_for_it(
    tmp_path: Path,
) -> None:
    """The attack beside it: one short of its capacity is not full, so the full-claim rule
    let it be (found 2026-12-03: credited in full), while the router, counting it nearly
    full, sends it little. Its claimed load is nobody's: nothing credited. Sent a request
    in the slot it leaves, the share it serves is credited (1 of 5 claimed)."""
    async with running(tmp_path) as h:
        await h.register("liar")
        assert full_credit(await beat(h, "liar", ONE_SHORT))  # after registering: room
        assert [await beat(h, "liar", ONE_SHORT) for _ in range(12)] == [0] * 12
        att = h.runtime.routing.begin("liar", MODEL)  # a long one, in the slot it leaves
        assert 1_000 <= await beat(h, "liar", ONE_SHORT) < 1_200  # 1 of the 5 explained
        assert 1_000 <= await beat(h, "liar", ONE_SHORT) < 1_200
        h.runtime.routing.finish(att, Outcome.SUCCESS, completion_tokens=10)


async def test_with_replicas_a_full_node_is_not_credited_for_requests_at_other_nodes(
    tmp_path: Path,
) -> None:
    """Several replicas on one store: the node heartbeats to this one only, and the others
    send it requests without its load report. Their in-flight requests for a model it hosts
    were evidence enough (found 2026-12-03: credited whenever another replica had any
    request in flight for its model, at any node). They publish their counts per node now:
    requests at other nodes of the model explain nothing."""
    async with running(tmp_path) as h:
        await h.register("liar")
        await h.register("worker")
        await beat(h, "liar", FULL)
        other_replica(h, {"in_flight": {MODEL: 6}, "nodes": {"worker": 6}})
        assert await beat(h, "liar", FULL) == 0
        assert await beat(h, "liar", ONE_SHORT) == 0
        assert await beat(h, "liar", FULL) == 0
        other_replica(h, {"in_flight": {MODEL: 6}, "nodes": {"liar": 3, "worker": 3}})
        assert 2_500 <= await beat(h, "liar", FULL) < 3_000  # 3 of the 6 explained
        assert 2_500 <= await beat(h, "liar", FULL) < 3_000
        # a replica that publishes no per-node counts (older): its per-model count may be here
        other_replica(h, {"in_flight": {MODEL: 6}})
        assert full_credit(await beat(h, "liar", FULL))
        # ... as may one that left this node out of its bounded list
        other_replica(h, {"in_flight": {MODEL: 6}, "nodes": {"w": 6}, "nodes_truncated": True})
        assert full_credit(await beat(h, "liar", FULL))
        other_replica(h, None)  # gone: the report before arrived when they were there
        assert full_credit(await beat(h, "liar", FULL))
        assert await beat(h, "liar", FULL) == 0


async def test_an_honest_node_busy_with_this_and_another_replicas_requests_keeps_its_uptime(
    tmp_path: Path,
) -> None:
    """A node full of requests from this replica (the router's own count) and another (its
    published count for this node) is credited in full, and so is its report that lags a
    little behind the requests' ends (the slack); the same claim with the other replica's
    requests at another node is half explained (it claims 3 nobody sent)."""
    async with running(tmp_path) as h:
        await h.register("busy")
        routing = h.runtime.routing
        held = [routing.begin("busy", MODEL) for _ in range(3)]  # long generations
        other_replica(h, {"in_flight": {MODEL: 3}, "nodes": {"busy": 3}})
        assert full_credit(await beat(h, "busy", FULL))
        for _ in range(12):  # a minute full of both replicas' requests
            assert h.in_flight("busy") == 3
            assert full_credit(await beat(h, "busy", FULL))
        for att in held:  # this replica's end; the node's next report lags behind by 2
            routing.finish(att, Outcome.SUCCESS, completion_tokens=100)
        assert full_credit(await beat(h, "busy", {"in_flight": 2, "queued": 3}))
        assert full_credit(await beat(h, "busy", {"in_flight": 2, "queued": 1}))  # 5: 3 + slack
        assert full_credit(await beat(h, "busy", ROOM))
        assert await ask(h, "busy") == 200  # it has room: sent requests again
        held = [routing.begin("busy", MODEL) for _ in range(3)]
        other_replica(h, {"in_flight": {MODEL: 3}, "nodes": {"elsewhere": 3}})
        await beat(h, "busy", FULL)
        assert 2_500 <= await beat(h, "busy", FULL) < 3_000  # 3 of the 6 explained
        for att in held:
            routing.finish(att, Outcome.SUCCESS, completion_tokens=100)


async def test_a_replica_publishes_its_in_flight_requests_per_node(tmp_path: Path) -> None:
    """What another replica reads: the app's beat publishes, with its per-model counts, its
    requests in flight per node (only nodes with some, ``Router.in_flight_by_node``)."""
    async with running(tmp_path) as h:
        await h.register("a")
        await h.register("b")
        beat_task = h.runtime.replicas
        assert beat_task is not None
        routing = h.runtime.routing
        held = [routing.begin("a", MODEL), routing.begin("a", MODEL), routing.begin("b", MODEL)]
        snap = beat_task._demand()
        assert snap["in_flight"] == {MODEL: 3}
        assert snap["nodes"] == {"a": 2, "b": 1}
        assert snap["nodes_truncated"] is False
        for att in held[:2]:
            routing.finish(att, Outcome.SUCCESS, completion_tokens=1)
        assert beat_task._demand()["nodes"] == {"b": 1}
        assert routing.router.in_flight_by_node(0) == ({}, True)
        routing.finish(held[2], Outcome.SUCCESS, completion_tokens=1)
        assert beat_task._demand()["nodes"] == {}


async def answered_on_the_way(
    h: Harness, node_id: str, load: dict[str, int], n: int, ago_s: float
) -> int:
    """``n`` requests of this replica at ``node_id`` end ``ago_s`` before its heartbeat (5 s
    after its previous one, claiming ``load``, which counted them) arrives; the ms credited."""
    routing = h.runtime.routing
    held = [routing.begin(node_id, MODEL) for _ in range(n)]
    h.clock.advance(5.0 - ago_s)
    for att in held:
        routing.finish(att, Outcome.SUCCESS, completion_tokens=10)
    h.store.nodes[node_id].last_heartbeat_at -= timedelta(seconds=5.0 - ago_s)  # type: ignore[operator]
    return await beat(h, node_id, load, back_s=ago_s)


async def test_an_honest_node_whose_report_passed_its_answers_keeps_its_uptime(
    tmp_path: Path,
) -> None:
    """An honest node reports the 4 requests it is running; their answers reach the gateway
    just before the report does, so the router counted none of them in flight when it came
    and the interval that report steered was cut to nothing (found 2026-12-03: a burst
    between two heartbeats, gone before the report). The router's peak in flight since the
    node's previous report explains it when one of them ended within LOAD_TRANSIT_S of its
    arrival; a burst that ended earlier explains nothing (the node knew it was done)."""
    async with running(tmp_path) as h:
        await h.register("busy")
        assert full_credit(await beat(h, "busy", ROOM))
        four = {"in_flight": 2, "queued": 2}
        assert full_credit(await answered_on_the_way(h, "busy", four, 4, ago_s=0.2))
        assert full_credit(await beat(h, "busy", ROOM))  # the interval its 4 steered
        # the same burst answered 3 s before the report: the node knew, it explains nothing
        assert full_credit(await answered_on_the_way(h, "busy", four, 4, ago_s=3.0))
        assert await beat(h, "busy", ROOM) == 0


async def register_again(h: Harness, node_id: str) -> None:
    """The node's signed registration once more (a node may register whenever it likes)."""
    r = await h.client.post("/mesh/nodes", json=registration(node_id))
    assert r.status_code == 200, r.text


async def test_registering_again_before_each_heartbeat_does_not_clear_a_full_report(
    tmp_path: Path,
) -> None:
    """The attack (found 2026-12-05, attack30): a node reports itself full in every
    heartbeat, as in the first test, and registers again just before each one. A
    registration made the table's entry anew, so the load report that steered the router
    (which kept it: ``Router.upsert_node``'s kept fields, full, sending nothing) read as 0
    claimed, and every heartbeat was credited in full (5 s of 5). The report stands across a
    registration as the router's view of it does: nothing credited."""
    async with running(tmp_path) as h:
        liar = await h.register("liar")
        assert full_credit(await beat(h, "liar", ROOM))
        assert full_credit(await beat(h, "liar", FULL))  # the interval before: room
        credited = []
        for _ in range(12):
            assert await ask(h, "liar") == 429  # saturated by its own word: not sent
            await register_again(h, "liar")
            credited.append(await beat(h, "liar", FULL))
        assert credited == [0] * 12
        assert liar.calls == []


async def test_registering_again_does_not_clear_a_nodes_refusals(tmp_path: Path) -> None:
    """The attack beside it (found 2026-12-05, attack30): a node refusing every request it
    is sent (429) registers again before each heartbeat. A fresh entry forgot its refusals
    (the share it answered, and since when it refuses), so it was credited in full, where
    its twin that does not register again is credited its answered share, then nothing once
    it has refused for ``REFUSAL_NO_CREDIT_S``. Registering again gains nothing now: the
    one registering is credited no more than its twin (less: a registration counts as a
    heartbeat here, so the share cuts a shorter interval), and nothing at the end."""
    clock = ManualClock(time.time())  # the table's clock and the wall clock move together
    async with running(tmp_path, clock=clock, wall_clock=clock) as h:
        for node_id in ("again", "twin"):
            await h.register(node_id, behavior="429")
            assert full_credit(await beat(h, node_id, ROOM))
        again, twin = [], []
        for _ in range(30):  # 20 s a round: 10 minutes
            for node_id, got in (("again", again), ("twin", twin)):
                h.clock.advance(5.0)  # past the refusal's Retry-After (3 s)
                assert await ask(h, node_id) == 429
                if node_id == "again":
                    await register_again(h, node_id)
                got.append(await beat(h, node_id, ROOM))
        assert twin[-10:] == [0] * 10  # refusing for 5 minutes: nothing
        assert sum(twin) < 5_000 * 30 // 3
        assert all(a <= t + 20 for a, t in zip(again, twin, strict=True)), (again, twin)
        assert again[-10:] == [0] * 10


async def test_a_goodbye_and_a_registration_do_not_end_an_ejection(tmp_path: Path) -> None:
    """The attack (found 2026-12-05, attack30): a node ejected as an outlier (a 5xx: out of
    routing for 30 s, doubling with each one, and no uptime credit meanwhile) says goodbye
    (``DELETE``, signed by its own key) and registers again at once. The goodbye dropped
    its statistics and its ejection with them (``Router.remove_node``), so it was back in
    routing, clear, and credited in full at its next heartbeat: ejection cost a failing
    node nothing. Its ejection stands across the goodbye, and so does its count."""
    async with running(tmp_path) as h:
        broken = await h.register("broken", behavior="500")
        await h.register("good")
        outliers = h.runtime.routing.router.outliers
        assert await ask(h, "broken") == 502  # a 5xx: ejected at once
        assert outliers.is_ejected("broken") and outliers.ejection_count("broken") == 1
        assert await beat(h, "broken", ROOM) == 0
        assert (await h.client.delete("/mesh/nodes/broken")).status_code == 204
        await register_again(h, "broken")
        assert outliers.is_ejected("broken")  # still out of routing
        assert await beat(h, "broken", ROOM) == 0
        assert await ask(h, "broken") == 503  # not sent: the only node it may go to is out
        assert len(broken.calls) == 1
        h.clock.advance(16)  # 31 s since: the ejection is over, back (slowly), count kept
        await beat(h, "broken", ROOM)
        assert await ask(h, "broken") == 502
        assert outliers.ejection_count("broken") == 2
