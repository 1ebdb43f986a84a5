"""A node is told when the registry's active health checks fail it, through the real apps
in one process (``tests/inprocess_mesh.py``: the registry app and a real node service,
its agent heartbeating): the heartbeat answer carries the node's check state, the node's
agent logs the change once, and its ``/mesh/info`` (``llm-mesh node info``) shows it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from rich.console import Console

from LLM_Mesh.cli.node_render import info_table
from tests.inprocess_mesh import ON_THE_MACHINE, InProcessMesh


def test_a_node_is_told_its_health_checks_fail_and_pass_again(
    inprocess_mesh: InProcessMesh, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="LLM_Mesh.node.agent")
    mesh = inprocess_mesh
    node = mesh.add_node("gemma-3-270m")
    agent = node.service.agent
    assert agent is not None

    def check_then_beat() -> None:
        """One health-check pass at the registry, then the node's next heartbeat."""

        async def go() -> None:
            await mesh.app.state.health.run_pass(force=True)  # type: ignore[union-attr]
            sent = agent.heartbeats_sent
            agent.wake()
            while agent.heartbeats_sent == sent:  # noqa: ASYNC110 - the agent's own loop
                await asyncio.sleep(0.001)

        mesh.call(asyncio.wait_for(go(), 10))

    def told() -> list[tuple[int, str]]:
        out = [(r.levelno, r.getMessage()) for r in caplog.records
               if r.name == "LLM_Mesh.node.agent" and "health checks" in r.getMessage()]  # fmt: skip
        caplog.clear()
        return out

    def info() -> tuple[dict[str, Any], str]:
        with mesh.sync_client() as c:
            r = c.get(node.url + "/mesh/info", headers=ON_THE_MACHINE)
        assert r.status_code == 200, r.text
        console = Console(width=300, record=True, color_system=None)
        console.print(info_table(r.json()))
        return r.json(), " ".join(console.export_text().split())

    check_then_beat()
    assert told() == []  # passing from the first check: nothing to say
    data, shown = info()
    assert data["registry"]["health"]["ok"] is True and "health checks │ passing" in shown

    mesh.router.unmount(node.url)  # the registry cannot reach the node; its heartbeats go on
    check_then_beat()
    check_then_beat()  # failing still: said once
    logged = told()
    assert len(logged) == 1 and logged[0][0] == logging.WARNING, logged
    assert "nothing listens" in logged[0][1]
    mesh.router.mount(node.url, node.app)
    data, shown = info()
    health = data["registry"]["health"]
    assert health["ok"] is False and "nothing listens" in health["why"]
    assert "health checks │ FAILING since" in shown and "nothing listens" in shown

    check_then_beat()
    check_then_beat()
    logged = told()
    assert len(logged) == 1 and logged[0][0] == logging.INFO, logged
    data, shown = info()
    assert data["registry"]["health"]["ok"] is True and "health checks │ passing" in shown
