"""``up`` and ``demo`` refuse an unknown ``--engine`` before anything starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import main

runner = CliRunner()


@pytest.mark.parametrize("command", ["up", "demo"])
def test_an_unknown_engine_is_refused_before_the_mesh_starts(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    started: list[str] = []

    class NoMesh:
        def __init__(self, *_a: object, **_k: object) -> None:
            started.append("LocalMesh")

    monkeypatch.setattr("LLM_Mesh.local_mesh.LocalMesh", NoMesh)
    args = [command, "--engine", "foo", "--home", str(tmp_path)]
    out = runner.invoke(main.app, args, env={"COLUMNS": "240"})
    assert out.exit_code == 2, out.output
    assert "must be one of llama-cpp, openai, sim, got 'foo'" in " ".join(out.output.split())
    assert started == []
