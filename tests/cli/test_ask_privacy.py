"""docs/security.md, "Privacy": ``llm-mesh ask`` and ``llm-mesh up``'s mesh keep no prompt
and no output on disk: a marker asked as a chat message and as a completion (echoed back
by the sim node's completion, so in the output too), streamed and not, through a
``LocalMesh`` (sim node, SIMULATED); then every file under the mesh's home (its logs, its
SQLite database, the node's home) and the client's own ``$LLM_MESH_HOME`` is searched."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from tests.e2e.conftest import start_mesh

pytestmark = pytest.mark.e2e


def test_ask_and_a_local_mesh_keep_no_prompt_nor_output_on_disk(tmp_path: Path) -> None:
    marker = f"PRIVACY-{secrets.token_hex(12)}"
    mesh_home, client_home = tmp_path / "mesh", tmp_path / "client"
    client_home.mkdir()
    mesh = start_mesh(mesh_home, model="mistral-7b", engine="sim",
                      node_args=["--sim-tokens-per-s", "2000"])  # fmt: skip
    runner = CliRunner()
    env = {"LLM_MESH_HOME": str(client_home), "COLUMNS": "200"}
    try:
        reg = ["--registry", mesh.registry_url, "--model", "mistral-7b", "--max-tokens", "8"]
        outputs = []
        for extra in ([], ["--stream"], ["--chat"], ["--chat", "--stream"]):
            out = runner.invoke(app, ["ask", f"say {marker} now", *reg, *extra], env=env)
            assert out.exit_code == 0, out.output
            assert "SIMULATED" in out.output or "simulated" in out.output
            outputs.append(out.output)
    finally:
        mesh.stop()
    assert marker in outputs[0]  # a completion is printed after its prompt
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in files)  # the mesh's logs are there
    assert [p for p in files if marker.encode() in p.read_bytes()] == []
