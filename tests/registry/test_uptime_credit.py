"""Uptime credit for a node that says it is full (``registry/uptime_credit.py``,
``core/rewards.full_claim_credit_s``): a node reporting itself at its capacity in every
heartbeat is sent nothing, so it refuses nothing, and was credited full uptime for no
work (found 2026-12-03). An interval its previous report claimed full is credited only
with evidence that it serves: a request this replica sent it still in flight, one it
answered here within the heartbeat expiry, or requests in flight at another live replica
for a model it hosts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from LLM_Mesh.core.route_types import Outcome
from LLM_Mesh.registry.ports import ReplicaRecord
from LLM_Mesh.registry.replicas import ReplicaBeat
from tests.registry.helpers import Harness, running

FULL = {"in_flight": 2, "queued": 4}  # registration(): max_concurrency 2, max_queue 4
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


async def ask(h: Harness, node_id: str) -> int:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
            "allow_nodes": [node_id]}  # fmt: skip
    return (await h.client.post("/v1/chat/completions", json=body)).status_code


async def test_a_node_reporting_itself_full_while_serving_nothing_earns_no_uptime(
    tmp_path: Path,
) -> None:
    """The attack: a node heartbeats ``in_flight`` + ``queued`` at its capacity for a whole
    period. The router sends it nothing (a request for it alone is 429 at the gateway, it
    sees no call), so it refuses nothing; it was credited every heartbeat (found
    2026-12-03: 5 s per 5 s beat, the full rate). Now only the interval after its
    registration (no full report yet: it was open) is credited; a node reporting room is
    credited throughout."""
    async with running(tmp_path) as h:
        liar = await h.register("liar")
        await h.register("open")
        liar_ms = [await beat(h, "liar", FULL)]  # vouches for the time since registering
        open_ms = [await beat(h, "open", ROOM)]
        for _ in range(60):  # five minutes of 5 s heartbeats
            assert await ask(h, "liar") == 429  # saturated by its own word: not sent
            liar_ms.append(await beat(h, "liar", FULL))
            open_ms.append(await beat(h, "open", ROOM))
        assert liar.calls == []  # it served nothing
        assert 5_000 <= liar_ms[0] < 6_000
        assert liar_ms[1:] == [0] * 60
        assert all(5_000 <= ms < 6_000 for ms in open_ms)


async def test_an_honest_node_full_of_this_replicas_requests_keeps_its_uptime(
    tmp_path: Path,
) -> None:
    """A node full because it serves this replica's requests: while they are in flight
    (the router's own count, not the node's word), and until the heartbeat expiry after
    its last answer here, its full reports are credited."""
    async with running(tmp_path) as h:
        await h.register("busy")
        routing = h.runtime.routing
        held = [routing.begin("busy", MODEL) for _ in range(2)]  # long generations
        assert 5_000 <= await beat(h, "busy", FULL) < 6_000
        for _ in range(12):  # a minute full of this replica's requests
            assert h.in_flight("busy") == 2
            assert 5_000 <= await beat(h, "busy", FULL) < 6_000
        for att in held:  # they end: answered here
            routing.finish(att, Outcome.SUCCESS, completion_tokens=100)
        assert h.in_flight("busy") == 0
        # its next reports may still say full (they lag): answered within the expiry
        assert 5_000 <= await beat(h, "busy", FULL) < 6_000
        assert 5_000 <= await beat(h, "busy", ROOM) < 6_000  # that interval it claimed full
        assert 5_000 <= await beat(h, "busy", ROOM) < 6_000
        assert await ask(h, "busy") == 200  # it has room: sent requests again


async def test_mixed_periods_credit_only_full_reports_backed_by_serving(tmp_path: Path) -> None:
    """A node serves for a while, then keeps reporting itself full with nothing of this
    replica's in flight and no answer here: credited up to the heartbeat expiry (30 s)
    after its last answer, then nothing until it reports room again (found 2026-12-03:
    credited throughout)."""
    async with running(tmp_path) as h:
        await h.register("mixed")
        assert 5_000 <= await beat(h, "mixed", ROOM) < 6_000
        for _ in range(4):  # serving: answered requests, room in its reports
            assert await ask(h, "mixed") == 200
            assert 5_000 <= await beat(h, "mixed", ROOM) < 6_000
        assert 5_000 <= await beat(h, "mixed", FULL) < 6_000  # the interval before: room
        credited = [await beat(h, "mixed", FULL) for _ in range(12)]  # a minute "full"
        # its last answer was 10 s before the first of these: 30 s of them keep the credit
        assert all(5_000 <= ms < 6_000 for ms in credited[:4])
        assert credited[4:] == [0] * 8
        assert await beat(h, "mixed", ROOM) == 0  # its interval was claimed full
        assert 5_000 <= await beat(h, "mixed", ROOM) < 6_000  # room: open, credited
        assert await ask(h, "mixed") == 200


async def test_with_replicas_a_full_node_is_credited_only_while_they_serve_its_models(
    tmp_path: Path,
) -> None:
    """Several replicas on one store: the node heartbeats to this one only, and the others
    do not hold its load report (``Router.heard``), so it may be full of their requests.
    They publish their in-flight requests per model (``registry/replicas.py``): a full report
    is credited while another live replica has requests in flight for a model the node hosts
    (it may be full of those: this replica cannot tell), not when they have none for its
    models (found 2026-12-03: credited either way)."""
    async with running(tmp_path) as h:
        await h.register("node")
        beat_task = ReplicaBeat(h.store, replica_id="replica-here")
        h.runtime.replicas = beat_task
        now = datetime.now(timezone.utc)

        def others(in_flight: dict[str, int]) -> None:
            beat_task.live = {
                "replica-other": ReplicaRecord(
                    "replica-other", now, now, "test", {"in_flight": in_flight}
                )
            }

        await beat(h, "node", FULL)
        others({MODEL: 3})
        assert 5_000 <= await beat(h, "node", FULL) < 6_000
        others({"mistral-7b": 3})  # busy, but not with a model this node hosts
        assert await beat(h, "node", FULL) == 0
        others({})
        assert await beat(h, "node", FULL) == 0
        beat_task.live = {}
        assert await beat(h, "node", FULL) == 0
