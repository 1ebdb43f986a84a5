"""``llm-mesh up``'s banner at a default terminal (80 columns): the URLs and the command to
try each whole on their line, to copy (found 2026-12-04: rich broke ``--registry`` and its
URL onto two lines, and ``node:`` from its URL). ``demo`` prints the user's prompt as
written (a ``[/]`` in it was read as Rich markup and ended the command)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import LLM_Mesh.local_mesh
from LLM_Mesh.cli import demo
from LLM_Mesh.cli.main import app
from LLM_Mesh.errors import RegistryUnreachable


class FakeMesh:
    """LocalMesh's stand-in: started at once, on ports clients do not look at by default."""

    registry_url = "http://127.0.0.1:18820"
    node_url = "http://127.0.0.1:18821"
    dashboard_url = "http://127.0.0.1:18820/dashboard/"
    started = True

    def __init__(self, *_a: Any, **_kw: Any) -> None:
        pass

    def start(self, progress: Any = None) -> None:
        pass

    def alive(self) -> bool:
        return False  # `up` then says a process exited, after its banner

    def rotate_logs(self) -> int:
        return 0

    def stop(self) -> None:
        pass


def test_up_prints_its_urls_and_the_command_to_try_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LLM_Mesh.local_mesh, "LocalMesh", FakeMesh)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    out = CliRunner().invoke(app, ["up", "--home", str(home)], env={"COLUMNS": "80"})
    lines = out.output.splitlines()
    assert any("node: http://127.0.0.1:18821" in line for line in lines), out.output
    try_line = next(line for line in lines if line.startswith("Try:"))
    assert try_line.endswith("--registry http://127.0.0.1:18820"), out.output


@pytest.mark.parametrize("engine", ["sim", "llama-cpp"])
def test_up_says_its_node_is_simulated_on_the_sim_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """found 2026-12-04 (``llm-mesh up --engine sim``): the banner named the node's URL and
    the command to try, and nowhere that the node's answers are made up."""
    monkeypatch.setattr(LLM_Mesh.local_mesh, "LocalMesh", FakeMesh)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    args = ["up", "--home", str(home), "--engine", engine]
    out = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    node = next(line for line in out.output.splitlines() if "node: http://" in line)
    assert ("SIMULATED" in node) == (engine == "sim"), out.output


def test_demo_prints_the_prompt_as_written() -> None:
    console = Console(width=80, record=True, color_system=None)
    prompt = "a[/]b [red]c[/red]"
    with pytest.raises(RegistryUnreachable):  # nothing answers: what matters is before
        asyncio.run(demo.run_demo(console, "http://127.0.0.1:1", "m", prompt, "python", 8))
    assert prompt in console.export_text()


@pytest.mark.parametrize("engine", ["sim", "llama-cpp"])
def test_demo_says_its_node_is_simulated_on_the_sim_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """found 2026-12-04 (``llm-mesh demo --engine sim``): its start line said ``(sim)``
    where ``up``, ``status`` and the answers' metrics say SIMULATED."""

    async def no_request(*_a: Any, **_kw: Any) -> None:
        return None

    monkeypatch.setattr(LLM_Mesh.local_mesh, "LocalMesh", FakeMesh)
    monkeypatch.setattr(demo, "run_demo", no_request)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    args = ["demo", "--home", str(home), "--engine", engine]
    out = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    start = next(line for line in out.output.splitlines() if line.startswith("mesh up"))
    assert ("SIMULATED engine: made-up answers" in start) == (engine == "sim"), out.output
    assert "(sim)" not in start
    assert ("(llama-cpp)" in start) == (engine == "llama-cpp"), out.output
