"""``llm-mesh node pause|resume|drain|info`` act on the home's own node only: a node that
answers where the stopped home's node would listen, with another key, is refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.node.config import NodeConfig, save_node_config
from LLM_Mesh.node.keys import load_or_create_key
from tests.cli.node_commands_fixtures import use_transport

runner = CliRunner()


def test_a_stopped_homes_commands_do_not_act_on_another_node_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found 2026-12-07 (newuser41): with a home's node stopped, ``LLM_MESH_HOME=HOME llm-mesh
    node pause`` went to the port its node.toml names (or 8801) and paused whatever node
    listened there (another home's, started on that port; ``up``'s on 8801), printing
    ``node <the other id>: paused`` and exit 0. The home's key names its node: a node of
    another id there is refused before anything is sent to it."""
    from LLM_Mesh.cli.node_commands import node_app

    home = tmp_path / "node2-home"
    mine = load_or_create_key(home / "node.key").node_id
    save_node_config(NodeConfig(engine="sim", host="127.0.0.1", port=8802), home / "node.toml")
    answering = {"id": "node-someoneelse"}
    acted: list[str] = []

    def node(r: httpx.Request) -> httpx.Response:
        if r.method == "POST":
            acted.append(r.url.path)
        return httpx.Response(200, json={"node_id": answering["id"], "state": "online"})

    use_transport(monkeypatch, httpx.MockTransport(node))
    for args in (["pause"], ["resume"], ["drain", "--no-wait"], ["info"]):
        r = runner.invoke(node_app, [*args, "--home", str(home)], catch_exceptions=False)
        assert r.exit_code == 1, r.output
        said = " ".join(r.output.split())
        assert "node-someoneelse" in said and mine in said and "--node-url" in said, said
    assert acted == []
    answering["id"] = mine  # the home's own node: acted on as before
    r = runner.invoke(node_app, ["pause", "--home", str(home)], catch_exceptions=False)
    assert r.exit_code == 0 and acted == ["/mesh/admin/pause"], r.output
    answering["id"] = "node-someoneelse"  # named by --node-url: the operator's choice
    url = ["--node-url", "http://127.0.0.1:8802"]
    r = runner.invoke(node_app, ["resume", "--home", str(home), *url], catch_exceptions=False)
    assert r.exit_code == 0 and acted[-1] == "/mesh/admin/resume", r.output
