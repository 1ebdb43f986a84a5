"""Node ids that come and go no longer grow the gateway's metrics (attack33, found
2026-12-06): every node label a request, an attempt, a blame or an ejection made was kept
for ever, so an operator churning node keys (a registration and one request each: a key
costs nothing) grew the registry's memory and ``/metrics`` without bound (10,000 ids gone:
15 MB, every scrape 0.7 s of the gateway's loop on the shared box). The app's upkeep after
each health-check pass now drops the children of nodes gone offline or not heard from
within the heartbeat expiry. docs/security.md, "Hostile nodes"."""

from __future__ import annotations

from pathlib import Path

from tests.registry.helpers import running
from tests.registry.test_metrics import CHAT, LOCAL, chat, scrape


async def test_node_ids_that_left_leave_the_metrics(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("stay")
        silent: list[str] = []
        for i in range(30):  # each a new key: registered, one request, then gone
            node = f"churn{i}"
            await h.register(node)
            r = await h.client.post(CHAT, json=chat(allow_nodes=[node]))
            assert r.status_code == 200 and r.headers["x-mesh-node"] == node, r.text
            if i % 2:  # a goodbye
                assert (await h.client.delete(f"/mesh/nodes/{node}")).status_code == 204
            else:  # or its heartbeats stop (below)
                silent.append(node)
        r = await h.client.post(CHAT, json=chat(allow_nodes=["stay"]))
        assert r.status_code == 200, r.text
        text = (await h.client.get("/metrics", headers=LOCAL)).text
        assert "churn29" in text  # before the upkeep: every id gone is still there
        for node in silent:  # not heard from within the expiry (no await until the upkeep:
            entry = h.table.get(node)  # the store's poll would bring its time back)
            assert entry is not None
            entry.last_heartbeat = h.table.clock() - h.table.expiry_s - 1
        h.app.state.health.upkeep()  # after a health-check pass
        text = (await h.client.get("/metrics", headers=LOCAL)).text
        assert "churn" not in text  # before the fix: 30 ids, kept for ever
        s = await scrape(h)
        ok = {"model": chat()["model"], "node": "stay", "outcome": "ok", "code": ""}
        assert s.value("llm_mesh_gateway_requests_total", **ok) == 1  # a live node's stay
        assert s.value("llm_mesh_gateway_attempts_total", node="stay", outcome="success") == 1
        # a node back counts from 0 (a counter reset), and is kept while it beats
        await h.register("churn0")
        r = await h.client.post(CHAT, json=chat(allow_nodes=["churn0"]))
        assert r.status_code == 200, r.text
        h.app.state.health.upkeep()
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_attempts_total", node="churn0", outcome="success") == 1
