"""Node authentication beyond one request: the health check needs the admin key, a real node
service signs what it sends (or says why it cannot), and stored nodes' keys are read at start-up."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_auth import SignedNodeAuth
from tests.registry.helpers import ADMIN, running
from tests.registry.node_auth_mesh import Wall, beat, error, make_node, mesh, operator, register


async def test_health_check_needs_the_admin_key(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        error(await h.client.post("/mesh/health-check"), 401, "invalid_credential")
        r = await h.client.post("/mesh/health-check", headers={"Authorization": "Bearer nope"})
        error(r, 401, "invalid_credential")
        assert (await h.client.post("/mesh/health-check", headers=ADMIN)).status_code == 200


async def test_a_real_node_service_signs_what_it_sends(tmp_path: Path) -> None:
    """NodeService + NodeAgent against the real registry app: register, state change, goodbye."""
    from LLM_Mesh.config import Settings
    from LLM_Mesh.core.schemas import Hardware
    from LLM_Mesh.node.config import NodeConfig
    from LLM_Mesh.node.engines.sim import SimEngine
    from LLM_Mesh.node.service import NodeService
    from tests.node.conftest import wait_until

    store = MemoryStore()
    token = await operator(store)
    async with running(tmp_path / "reg", store=store, signed=True, allow_private_nodes=True) as h:
        svc = NodeService(
            NodeConfig(engine="sim", models=["gemma-3-270m"], register=True, operator_token=token),
            Settings(home=tmp_path / "node", registry_url="http://mesh", allow_http_first_use=True),
            engine=SimEngine(["gemma-3-270m"]),
            http_client=h.client,
            hardware=Hardware(),
        )
        await svc.start()
        agent = svc.agent
        assert agent is not None
        await wait_until(lambda: agent.registered)
        assert store.node_keys[svc.node_id].operator == "alice"
        svc.pause()  # a signed heartbeat carries the new state
        await wait_until(lambda: h.table.get(svc.node_id).state.value == "paused")  # type: ignore[union-attr]
        await svc.stop()
        assert store.nodes[svc.node_id].state == "offline"
        assert agent.last_error is None


async def test_a_node_without_operator_token_says_why(tmp_path: Path) -> None:
    from LLM_Mesh.config import Settings
    from LLM_Mesh.core.schemas import Hardware
    from LLM_Mesh.node.config import NodeConfig
    from LLM_Mesh.node.engines.sim import SimEngine
    from LLM_Mesh.node.service import NodeService

    async with running(tmp_path / "reg", signed=True) as h:
        svc = NodeService(
            NodeConfig(engine="sim", models=["gemma-3-270m"], register=True),
            Settings(home=tmp_path / "node", registry_url="http://mesh", allow_http_first_use=True),
            engine=SimEngine(["gemma-3-270m"]),
            http_client=h.client,
            hardware=Hardware(),
        )
        await svc.prepare()
        svc.started = True
        from LLM_Mesh.node.agent import NodeAgent

        agent = NodeAgent(
            client=h.client,
            registry_url="http://mesh",
            node_id=svc.node_id,
            registration=svc.registration,
            heartbeat=svc.heartbeat,
            signer=svc.signer,
        )
        assert not await agent.register()
        assert agent.last_error is not None and "401" in agent.last_error
        assert "operator token" in agent.last_error
        await svc.stop()


async def test_keys_of_stored_nodes_are_read_at_start_up(tmp_path: Path, monkeypatch: Any) -> None:
    """A restarted registry reads every stored node's key at start-up (one batch), so no
    heartbeat waits on a look-up; the checks are unchanged: a revoked key is refused."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    nodes = [make_node(wall, token) for _ in range(3)]
    async with await mesh(tmp_path / "first", store, wall) as h:
        for n in nodes:
            assert (await register(h, n)).status_code == 200
    await store.revoke_node(nodes[2].node_id, datetime.now(timezone.utc))
    looked_up: list[str] = []
    one = store.get_node_key

    async def counted(node_id: str) -> Any:
        looked_up.append(node_id)
        return await one(node_id)

    monkeypatch.setattr(store, "get_node_key", counted)
    async with await mesh(tmp_path / "again", store, wall) as h:
        auth = h.runtime.node_auth
        assert isinstance(auth, SignedNodeAuth)
        assert set(auth._keys) == {n.node_id for n in nodes}  # revocation is the seq step's
        looked_up.clear()
        assert (await beat(h, nodes[0])).status_code == 200
        assert (await beat(h, nodes[1])).status_code == 200
        error(await beat(h, nodes[2]), 403, "revoked")
        assert looked_up == []
