"""Failover through the Router: costs the client nothing, bounded by attempts and budget;
ejection and slow start, constraints, saturation (429 / bounded wait), views."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.retry import RetryBudget
from tests.registry.helpers import running
from tests.waiting import SOON_S, scaled

CHAT = "/v1/chat/completions"


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}], **kw}


@pytest.mark.parametrize("behavior", ["500", "connect_error", "429", "timeout"])
async def test_failover_costs_the_client_nothing(tmp_path: Path, behavior: str) -> None:
    async with running(tmp_path, max_attempts=3) as h:
        await h.register("bad", behavior=behavior)
        await h.register("good")
        for _ in range(10):
            r = await h.client.post(CHAT, json=chat())
            assert r.status_code == 200, r.text
            assert r.json()["mesh"]["node_id"] == "good"
        assert h.in_flight("bad") == 0 and h.in_flight("good") == 0


async def test_hard_failure_ejects_then_slow_start(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        bad = await h.register("bad", behavior="500")
        await h.register("good")
        busy = h.runtime.routing.begin("good", "gemma-3-270m")  # make "bad" look best once
        assert (await h.client.post(CHAT, json=chat())).status_code == 200
        h.runtime.routing.finish(busy, Outcome.CANCELLED)
        assert len(bad.calls) == 1
        view = {v["node_id"]: v for v in (await h.client.get("/mesh/nodes")).json()["nodes"]}
        assert view["bad"]["ejected"] is True and view["bad"]["health_score"] < 1.0
        assert view["good"]["ttft_ms_ewma"] is not None and view["good"]["load"] == 0
        for _ in range(5):  # ejected: never tried while ejected
            assert (await h.client.post(CHAT, json=chat())).status_code == 200
        assert len(bad.calls) == 1
        bad.behavior = "ok"
        h.clock.advance(31.0)  # ejection (30 s) over: back with a slow-start weight
        view = {v["node_id"]: v for v in (await h.client.get("/mesh/nodes")).json()["nodes"]}
        assert view["bad"]["ejected"] is False
        assert 0.0 < view["bad"]["slow_start_weight"] < 0.2


async def test_retry_budget_stops_a_storm(tmp_path: Path) -> None:
    async with running(tmp_path, max_attempts=5) as h:
        h.runtime.routing.retry_budget = RetryBudget(ratio=0.0, min_per_s=0.3, window_s=10.0)
        for n in ("n1", "n2", "n3", "n4", "n5"):
            await h.register(n, behavior="500")
        statuses = [(await h.client.post(CHAT, json=chat())).status_code for _ in range(6)]
        assert statuses == [502] * 6
        # 6 requests, a budget of 3 retries in the window: 9 node calls, not 30
        assert h.nodes.calls() == 6 + 3


async def test_constraints_are_honoured_and_stripped(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        a = await h.register("a", region="eu")
        b = await h.register("b", region="us")
        c = await h.register("c", region="us")
        for _ in range(6):
            r = await h.client.post(CHAT, json=chat(avoid_regions=["us"]))
            assert r.json()["mesh"]["node_id"] == "a"
        for _ in range(6):
            r = await h.client.post(CHAT, json=chat(deny_nodes=["a", "b"]))
            assert r.json()["mesh"]["node_id"] == "c"
        r = await h.client.post(CHAT, json=chat(allow_nodes=["b"]))
        assert r.json()["mesh"]["node_id"] == "b"
        for node in (a, b, c):
            for call in node.calls:
                assert not {"avoid_regions", "deny_nodes", "allow_nodes"} & set(call["body"])
        r = await h.client.post(CHAT, json=chat(allow_nodes=["zzz"]))
        assert r.status_code == 503 and "constraints" in r.json()["error"]["message"]
        r = await h.client.post(CHAT, json=chat(deny_nodes="a"))
        assert r.status_code == 400 and r.json()["error"]["param"] == "deny_nodes"


async def test_saturated_is_429_with_retry_after_and_wait_is_bounded(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        routing = h.runtime.routing
        busy = routing.begin("a", "gemma-3-270m")
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        err = r.json()["error"]
        assert err["reason"] == "saturated" and err["wait_s"] > 0
        # opt-in wait: the slot frees while the request waits
        task = asyncio.create_task(h.client.post(CHAT, json=chat(), headers={"X-Mesh-Wait": "5"}))
        await asyncio.sleep(0.05)
        assert not task.done()
        routing.finish(busy, Outcome.SUCCESS)
        r = await asyncio.wait_for(task, scaled(SOON_S))
        assert r.status_code == 200
        # a bounded wait that ends without a slot: 429 after about the wait
        busy = routing.begin("a", "gemma-3-270m")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = await asyncio.wait_for(h.client.post(CHAT, json=chat(mesh_wait_s=0.1)), 5)
        assert r.status_code == 429 and 0.09 <= loop.time() - t0 < 2.0
        routing.finish(busy, Outcome.CANCELLED)


async def test_heartbeat_load_and_draining_reach_the_router(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a")
        await h.register("b")
        await h.client.post("/mesh/nodes/a/heartbeat", json={"state": "draining"})
        for _ in range(4):
            assert (await h.client.post(CHAT, json=chat())).json()["mesh"]["node_id"] == "b"
        assert (await h.client.delete("/mesh/nodes/b")).status_code == 204
        assert (await h.client.post(CHAT, json=chat())).status_code == 503
        await h.client.post("/mesh/nodes/a/heartbeat", json={"in_flight": 2, "queued": 4})
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 429  # reported load = capacity (2 + 4)


async def test_expired_node_leaves_routing_without_a_sweep(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a")
        await h.register("b")
        h.clock.advance(20.0)
        await h.client.post("/mesh/nodes/b/heartbeat", json={})
        h.clock.advance(11.0)  # a: 31 s silent, b: 11 s
        for _ in range(4):
            assert (await h.client.post(CHAT, json=chat())).json()["mesh"]["node_id"] == "b"
        assert h.nodes.nodes["a:8801"].calls == []


async def test_refused_connections_fail_over_past_max_attempts(tmp_path: Path) -> None:
    """Nodes that did nothing (refused, 429) don't use up the attempts meant for work."""
    async with running(tmp_path, max_attempts=2, max_failovers=10) as h:
        dead = [await h.register(f"dead{i}", behavior="connect_error") for i in range(4)]
        busy = await h.register("busy", behavior="429")
        await h.register("good")
        # teach the router that the others were fast and "good" slow, so they are tried first
        routing = h.runtime.routing
        for node in [*(n.node_id for n in dead), "busy", "good"]:
            att = routing.begin(node, "gemma-3-270m")
            slow = node == "good"
            h.clock.advance(5.0 if slow else 0.001)
            routing.finish(
                att, Outcome.SUCCESS, completion_tokens=1, ttft_ms=5000.0 if slow else 1.0
            )
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 200, r.text
        assert r.json()["mesh"]["node_id"] == "good"
        tried = sum(len(n.calls) for n in dead) + len(busy.calls)
        assert tried >= 3  # more nodes than max_attempts allows for work
        assert r.json()["mesh"]["attempts"] == tried + 1


async def test_max_failovers_bounds_refused_connections(tmp_path: Path) -> None:
    async with running(tmp_path, max_attempts=3, max_failovers=2) as h:
        dead = [await h.register(f"dead{i}", behavior="connect_error") for i in range(6)]
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 502, r.text
        assert r.json()["error"]["attempts"] == 3  # the first try + 2 failovers
        assert sum(len(n.calls) for n in dead) == 3


async def test_saturated_retry_after_is_the_nodes_queue_drain_time(tmp_path: Path) -> None:
    """Defect 11, gateway side: 1 running + 8 queued at the node's measured 2 s is 18 s."""
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=8)
        hb = {"in_flight": 1, "queued": 8, "service_s": 2.0}
        r = await h.client.post("/mesh/nodes/a/heartbeat", json=hb)
        assert r.status_code == 200, r.text
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 429 and r.headers["retry-after"] == "18"
        assert r.json()["error"]["wait_s"] == pytest.approx(18.0)
