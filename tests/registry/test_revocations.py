"""Revocations written by another process (the admin CLI) reach a running registry's routing."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.registry.revocations import RevocationWatcher
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import running


async def test_revocation_by_another_store_handle_takes_the_node_out(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_store, admin_store = SqlStore(url), SqlStore(url)
    async with admin_store, running(tmp_path, store=registry_store) as h:  # type: ignore[arg-type]
        await h.register("node-a")
        await h.register("node-b")
        await registry_store.claim_node_key("node-a", "pk", "alice", 1, datetime.now(timezone.utc))
        watcher = RevocationWatcher(registry_store, h.table, h.runtime.routing)
        assert await watcher.poll() == []
        # the admin CLI, another process: only the database is shared
        assert await admin_store.revoke_node("node-a", datetime.now(timezone.utc))
        assert await watcher.poll() == ["node-a"]
        assert h.runtime.routing.router.node("node-a") is None
        assert h.runtime.routing.router.node("node-b") is not None
        assert await watcher.poll() == []
        r = await h.client.post(
            "/v1/chat/completions",
            json={"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200 and r.json()["mesh"]["node_id"] == "node-b"


async def test_the_listing_says_a_revoked_node_is_revoked(tmp_path: Path) -> None:
    """Found 2026-12-04: ``llm-mesh status`` showed a revoked node as "down offline", as
    if it had crashed; a registry that starts after the revocation says so too."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_store, admin_store = SqlStore(url), SqlStore(url)
    async with admin_store, running(tmp_path, store=registry_store) as h:  # type: ignore[arg-type]
        await h.register("node-a")
        await h.register("node-b")
        await registry_store.claim_node_key("node-a", "pk", "alice", 1, datetime.now(timezone.utc))
        watcher = RevocationWatcher(registry_store, h.table, h.runtime.routing)
        await watcher.poll()
        assert await admin_store.revoke_node("node-a", datetime.now(timezone.utc))
        assert await watcher.poll() == ["node-a"]
        listed = {n["node_id"]: n for n in (await h.client.get("/mesh/nodes")).json()["nodes"]}
        assert listed["node-a"]["revoked"] is True and listed["node-a"]["state"] == "offline"
        assert listed["node-b"]["revoked"] is False
        # a node gone OFFLINE before its revocation is seen (a restarted registry's rows)
        h.table.set_state("node-b", NodeState.OFFLINE)
        await registry_store.claim_node_key("node-b", "pk2", "alice", 1, datetime.now(timezone.utc))
        assert await admin_store.revoke_node("node-b", datetime.now(timezone.utc))
        assert await watcher.poll() == []  # nothing taken out of routing now
        listed = {n["node_id"]: n for n in (await h.client.get("/mesh/nodes")).json()["nodes"]}
        assert listed["node-b"]["revoked"] is True
