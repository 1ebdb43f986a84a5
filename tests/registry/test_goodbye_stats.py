"""A node's routing statistics across its goodbye and a registration, through the API
(``DELETE /mesh/nodes/{id}``, ``POST /mesh/nodes``; ``core/left_stats.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.registry.helpers import Harness, registration, running

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"


def chat() -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


async def views(h: Harness) -> dict[str, dict[str, Any]]:
    return {v["node_id"]: v for v in (await h.client.get("/mesh/nodes")).json()["nodes"]}


async def test_a_goodbye_and_a_registration_do_not_clear_a_nodes_failures(
    tmp_path: Path,
) -> None:
    """The attack (found 2026-12-05, ewma31): a node whose answers failed (the router's
    success EWMA 0: its cost × 11, sent nothing while another node has room) says goodbye
    (signed by its own key) and registers again at once. The goodbye dropped the router's
    statistics of it, so it came back a newcomer: health 1, as cheap as an honest node.
    They wait for it now: it comes back as it left."""
    async with running(tmp_path) as h:
        flaky = await h.register("flaky", behavior="500")
        assert (await h.client.post(CHAT, json=chat())).status_code == 502  # alone: not ejected
        before = (await views(h))["flaky"]
        assert before["health_score"] == 0.0 and before["ejected"] is False
        assert (await h.client.delete("/mesh/nodes/flaky")).status_code == 204
        r = await h.client.post("/mesh/nodes", json=registration("flaky"))
        assert r.status_code == 200, r.text
        after = (await views(h))["flaky"]
        assert after["health_score"] == 0.0
        assert after["cost_ms"] == before["cost_ms"]
        # an operator who fixed it is judged on its answers from there: health back
        flaky.behavior = "ok"
        h.clock.advance(60.0)
        hb = {"in_flight": 0, "queued": 0}
        assert (await h.client.post("/mesh/nodes/flaky/heartbeat", json=hb)).status_code == 200
        assert (await h.client.post(CHAT, json=chat())).status_code == 200
        assert (await views(h))["flaky"]["health_score"] > 0.8
