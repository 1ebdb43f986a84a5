"""A model whose only node is quarantined for it is not "up": a 503 must not name it among
the models that would answer (found 2026-12-05 by the admin's walk, ops31: "no healthy node
serves 'gemma-3-270m' right now (models up: gemma-3-270m)", contradicting itself;
``Routing.models_within`` read every healthy node listing the model, the quarantined one
too, as ``keyed_at`` did before attack31)."""

from __future__ import annotations

from pathlib import Path

from tests.registry.helpers import running
from tests.registry.test_access import CHAT, MODEL, chat


async def test_a_model_whose_only_node_is_quarantined_is_not_named_up(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("only", max_concurrency=1, max_queue=0)
        h.runtime.routing.set_quarantined("only", frozenset({MODEL}))
        r = await h.client.post(CHAT, json=chat("anyone there?"))
        assert r.status_code == 503, r.text
        message = r.json()["error"]["message"]
        assert "models up: none" in message, message
        assert r.headers["x-should-retry"] == "false"  # nothing will serve it soon
