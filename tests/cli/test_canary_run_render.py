"""``llm-mesh registry canary run`` at a default terminal (80 columns): ids whole, the
registry's words printed literally (never Rich markup), odd answers no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

import LLM_Mesh.client
from LLM_Mesh.cli.main import app
from LLM_Mesh.secret_files import ADMIN_KEY_REGISTRY_FILE

runner = CliRunner()
NODE = "node-abcdefghijklmnopqrstuvwxyz"  # 31 characters: a real node id's length
VERIFIER = "node-zyxwvutsrqponmlkjihgfedcba"


class Answer:
    """MeshClient's stand-in: answers ``canary_run`` with ``results``."""

    results: ClassVar[list[Any]] = []

    def __init__(self, *_a: Any, **_kw: Any) -> None:
        pass

    async def __aenter__(self) -> Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def canary_run(self, node: str | None, model: str | None) -> list[Any]:
        return self.results


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, results: list[Any]) -> Any:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "admin.key").write_text("local-mesh-admin-key-0123456789\n")
    (home / ADMIN_KEY_REGISTRY_FILE).write_text(f"http://127.0.0.1:8800\nkey={'A' * 43}\n")
    Answer.results = results
    monkeypatch.setattr(LLM_Mesh.client, "MeshClient", Answer)
    return runner.invoke(
        app, ["registry", "canary", "run", "--home", str(home)], env={"COLUMNS": "80"}
    )


def test_ids_and_model_names_stay_whole_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = {
        "node_id": NODE, "model": "qwen2.5-coder-1.5b-instruct", "verdict": "pass",
        "detail": "matched the verifier's answer on 3 of 3 prompts", "verifier": VERIFIER,
    }  # fmt: skip
    out = run(tmp_path, monkeypatch, [result])
    assert out.exit_code == 0, out.output
    assert "…" not in out.output
    for whole in (NODE, VERIFIER, "qwen2.5-coder-1.5b-instruct"):
        assert whole in out.output, out.output
    assert max(len(line) for line in out.output.splitlines()) <= 80


def test_the_registrys_words_print_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = {
        "node_id": "[link=http://evil.example]n1[/link]", "model": "[red]x[/red]",
        "verdict": "[green]pass[/green]", "detail": "[bold]ok[/]", "verifier": "[/]",
    }  # fmt: skip
    out = run(tmp_path, monkeypatch, [result])
    assert out.exit_code == 0, out.output
    for literal in ("[link=http://evil.example]n1[/link]", "[red]x[/red]", "[green]pass[/green]"):
        assert literal in out.output, out.output


def test_odd_answers_do_not_crash_the_renderer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd: list[Any] = [
        {"node_id": None, "model": 7, "verdict": None, "detail": {"a": [1]}, "verifier": None},
        {"node_id": "n2", "model": "m", "detail": "no verdict at all"},
        {"node_id": "n3", "model": "m", "verdict": "fail", "detail": None, "verifier": "12"},
        "not an object",
    ]
    out = run(tmp_path, monkeypatch, odd)
    assert out.exception is None or isinstance(out.exception, SystemExit), out.output
    assert out.exit_code == 1, out.output  # n3 failed
    assert "no verdict at all" in out.output and "not an object" in out.output


def test_a_simulated_nodes_verdict_is_labelled_simulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result the registry says came from a simulated engine says SIMULATED (found
    2026-12-04: a sim node's pass looked like a real one's); a real node's does not."""
    sim = {"node_id": "sim-1", "model": "m", "verdict": "pass", "detail": "d", "simulated": True}
    real = {"node_id": "real-1", "model": "m", "verdict": "pass", "detail": "d"}
    out = run(tmp_path, monkeypatch, [sim])
    assert out.exit_code == 0, out.output
    assert "SIMULATED" in out.output
    out = run(tmp_path, monkeypatch, [real, {**real, "simulated": "yes"}])
    assert out.exit_code == 0, out.output
    assert "SIMULATED" not in out.output  # only a true simulated: True
