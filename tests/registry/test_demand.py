"""GET /mesh/demand: waiting, refused over a sliding window, nodes serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.catalog import CATALOG
from LLM_Mesh.node.control import parse_demand
from LLM_Mesh.registry.demand import others_in_flight_at
from tests.registry.helpers import Harness, running

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"


def body(model: str = MODEL, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}


async def demand(h: Harness) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    r = await h.client.get("/mesh/demand")
    assert r.status_code == 200, r.text
    data = r.json()
    return data, {m["model"]: m for m in data["models"]}


async def test_every_catalog_and_custom_model_is_listed(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a", models=[MODEL, "mine"])
        data, rows = await demand(h)
        assert data["window_s"] == 600.0
        assert set(rows) == {s.id for s in CATALOG} | {"mine"}
        assert rows[MODEL]["nodes_serving"] == 1 and rows["mine"]["custom"]
        assert rows["mistral-7b"] == {**rows["mistral-7b"], "requests_waiting": 0,
                                      "requests_refused": 0, "nodes_serving": 0}  # fmt: skip
        parsed = parse_demand(data)  # what `llm-mesh node plan` reads
        assert parsed is not None and parsed["mine"].nodes_serving == 1


async def test_refusals_are_counted_over_the_window(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a")  # max_concurrency 2, max_queue 4
        for _ in range(3):  # nobody serves it: 503 no_node
            assert (await h.client.post(CHAT, json=body("mistral-7b"))).status_code == 503
        routing = h.runtime.routing
        held = [routing.begin("a", MODEL) for _ in range(6)]  # a is saturated
        r = await h.client.post(CHAT, json=body())
        assert r.status_code == 429 and r.json()["error"]["reason"] == "saturated"
        _, rows = await demand(h)
        assert rows["mistral-7b"]["requests_refused"] == 3
        assert rows["mistral-7b"]["refused_no_node"] == 3
        assert rows[MODEL]["requests_refused"] == 1 and rows[MODEL]["refused_saturated"] == 1
        # six of ours on a node that runs two at once: four wait there
        assert rows[MODEL]["requests_waiting"] == 4 and rows[MODEL]["gateway_in_flight"] == 6
        for att in held:
            routing.finish(att, Outcome.SUCCESS)
        h.clock.advance(300)
        await h.client.post("/mesh/nodes/a/heartbeat", json={})
        _, rows = await demand(h)
        assert rows[MODEL]["requests_waiting"] == 0 and rows[MODEL]["gateway_in_flight"] == 0
        assert rows["mistral-7b"]["requests_refused"] == 3
        h.clock.advance(310)  # the window has passed
        _, rows = await demand(h)
        assert rows["mistral-7b"]["requests_refused"] == 0
        assert rows[MODEL]["requests_refused"] == 0


async def test_node_429s_everywhere_count_as_refused(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a", behavior="429")
        r = await h.client.post(CHAT, json=body())
        assert r.status_code == 429
        _, rows = await demand(h)
        assert rows[MODEL]["requests_refused"] == 1
        assert rows[MODEL]["gateway_in_flight"] == 0  # the attempt ended


async def test_successes_and_node_errors_are_not_refusals(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a")
        await h.register("b", behavior="500")
        for _ in range(4):
            assert (await h.client.post(CHAT, json=body())).status_code == 200
        _, rows = await demand(h)
        assert rows[MODEL]["requests_refused"] == 0 and rows[MODEL]["requests_waiting"] == 0


async def test_heartbeat_queues_count_as_waiting(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a", models=[MODEL, "mine"])
        await h.register("b")
        held = [h.runtime.routing.begin("a", MODEL) for _ in range(5)]  # what a's load is
        hb = {"in_flight": 2, "queued": 3}
        assert (await h.client.post("/mesh/nodes/a/heartbeat", json=hb)).status_code == 200
        for att in held:
            h.runtime.routing.finish(att, Outcome.SUCCESS)
        _, rows = await demand(h)
        assert rows[MODEL]["requests_waiting"] == 3 and rows[MODEL]["queued_on_nodes"] == 3
        assert rows["mine"]["requests_waiting"] == 3  # a's queue is shared by its models
        assert rows[MODEL]["nodes_serving"] == 2 and rows[MODEL]["concurrency"] == 4
        h.clock.advance(31)  # both heartbeats expired: nobody serves, nothing reported
        _, rows = await demand(h)
        assert rows[MODEL]["nodes_serving"] == 0 and rows[MODEL]["requests_waiting"] == 0


async def test_requests_held_in_the_opt_in_wait_count_as_waiting(tmp_path: Path) -> None:
    import asyncio

    async with running(tmp_path) as h:
        await h.register("a")
        routing = h.runtime.routing
        held = [routing.begin("a", MODEL) for _ in range(6)]
        task = asyncio.create_task(h.client.post(CHAT, json=body(mesh_wait_s=5)))
        for _ in range(100):
            await asyncio.sleep(0.005)
            if routing.demand.waiting.get(MODEL):
                break
        _, rows = await demand(h)
        assert rows[MODEL]["gateway_waiting"] == 1 and rows[MODEL]["requests_waiting"] == 5
        routing.finish(held.pop(), Outcome.SUCCESS)  # a slot frees: the waiter goes
        r = await task
        assert r.status_code == 200, r.text
        assert routing.demand.waiting == {}
        for att in held:
            routing.finish(att, Outcome.SUCCESS)
        _, rows = await demand(h)
        assert rows[MODEL]["requests_refused"] == 0


def test_other_replicas_in_flight_at_a_node_is_their_count_for_it() -> None:
    """What explains a node's claimed load (``core/rewards.explained_load_credit_s``): other
    replicas' published in-flight counts for that node, not for its models; a replica
    without per-node counts (older), or that left the node out of its bounded list, counts
    its requests for the node's models (they may be there)."""
    models = ["m"]
    assert others_in_flight_at([], "n", models) == 0
    assert others_in_flight_at([{"in_flight": {"m": 5}, "nodes": {"x": 5}}], "n", models) == 0
    assert others_in_flight_at([{"in_flight": {"m": 5}, "nodes": {"n": 2}}], "n", models) == 2
    snaps = [{"in_flight": {"m": 5}, "nodes": {"n": 2, "x": 3}}, {"nodes": {"n": 1}}]
    assert others_in_flight_at(snaps, "n", models) == 3
    assert others_in_flight_at([{"in_flight": {"m": 5, "k": 4}}], "n", models) == 5  # older
    cut = {"in_flight": {"m": 5}, "nodes": {"x": 5}, "nodes_truncated": True}
    assert others_in_flight_at([cut], "n", models) == 5
    listed = {"in_flight": {"m": 5}, "nodes": {"n": 1}, "nodes_truncated": True}
    assert others_in_flight_at([listed], "n", models) == 1
    bad = {"in_flight": {"m": 5}, "nodes": {"n": -3, "x": True}}
    assert others_in_flight_at([bad], "n", models) == 0
    assert others_in_flight_at([bad], "x", models) == 0


async def test_a_queue_nobody_sent_is_not_demand(tmp_path: Path) -> None:
    """A node that reports a queue of 10^6 requests the mesh never sent it (its load report
    is its own word) made every model it lists look wanted in ``GET /mesh/demand``, the
    figure `llm-mesh node plan` ranks models by for other operators and the dashboard
    shows (found 2026-12-05): one operator steered others' hardware to models nobody asks
    for. A node's reported queue now counts up to the load the mesh knew it had sent it
    when the report arrived (``entry.known_load``, as for its uptime credit)."""
    async with running(tmp_path) as h:
        await h.register("liar", models=[MODEL, "mine"])
        await h.register("b")
        hb = {"in_flight": 0, "queued": 10**6}
        assert (await h.client.post("/mesh/nodes/liar/heartbeat", json=hb)).status_code == 200
        data, rows = await demand(h)
        assert rows[MODEL]["requests_waiting"] == 0 and rows[MODEL]["queued_on_nodes"] == 0
        assert rows["mine"]["requests_waiting"] == 0
        parsed = parse_demand(data)  # what `llm-mesh node plan` reads
        assert parsed is not None and parsed[MODEL].requests_waiting == 0
