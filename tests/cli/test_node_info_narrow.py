"""``llm-mesh node info`` at a default terminal (80 columns), against a node whose answer
has long ids, Rich markup in its strings and fields of odd types: ids whole, text literal,
no traceback (found 2026-12-04: model ids cut to ``…``, ``[red]`` read as markup, a
string ``load_time_s`` ended the command with a ValueError)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

import LLM_Mesh.node.control as control
from LLM_Mesh.cli.main import app

runner = CliRunner()
NODE = "node-abcdefghijklmnopqrstuvwxyz"
LONG_MODEL = "qwen2.5-coder-1.5b-instruct"


def invoke(monkeypatch: pytest.MonkeyPatch, info: dict[str, Any]) -> Any:
    async def node_info(client: Any, url: str) -> dict[str, Any]:
        return info

    monkeypatch.setattr(control, "node_info", node_info)
    return runner.invoke(
        app, ["node", "info", "--node-url", "http://127.0.0.1:8801"], env={"COLUMNS": "80"}
    )


def test_node_info_keeps_model_ids_whole_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    info = {
        "node_id": NODE, "url": "http://127.0.0.1:8801", "state": "online", "engine": "llama-cpp",
        "registry": None,
        "models": [
            {"id": LONG_MODEL, "loaded": False, "load_time_s": 1.5, "context_length": 32768,
             "continuation": True, "sha256": "ab" * 32, "custom": True},
            {"id": "gemma-3-270m", "loaded": True, "simulated": True},
        ],
    }  # fmt: skip
    out = invoke(monkeypatch, info)
    assert out.exit_code == 0, out.output
    assert NODE in out.output and LONG_MODEL in out.output, out.output
    assert "could be loaded" in out.output
    assert max(len(line) for line in out.output.splitlines()) <= 80


def test_node_info_prints_the_nodes_words_literally_and_survives_odd_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = {
        "node_id": "[red]n1[/red]", "url": "[link=http://evil.example]x[/link]",
        "state": None, "engine": 7, "version": None, "uptime_s": "long", "region": {"a": 1},
        "requests_served": "12", "memory_budget_bytes": "lots", "registry": None,
        "hardware": {"gpus": ["not an object", {"name": "[b]H200[/b]"}], "cpu_count": "8"},
        "models": [
            {"id": "[green]m[/green]", "load_time_s": "slow", "context_length": "4k"},
            "not an object",
        ],
    }  # fmt: skip
    out = invoke(monkeypatch, info)
    assert out.exception is None, out.output
    for literal in ("[red]n1[/red]", "[link=http://evil.example]x[/link]", "[green]m[/green]",
                    "[b]H200[/b]"):  # fmt: skip
        assert literal in out.output, out.output
    assert "None" not in out.output


@pytest.mark.parametrize("columns", ["80", "160"])
def test_node_info_models_labels_whole(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    """found 2026-12-04 (a sim node under ``llm-mesh up --engine sim``): at 80 columns the
    models table's header read ``continuat`` / ``ion``."""
    info = {
        "node_id": NODE, "url": "http://127.0.0.1:8801", "state": "online", "engine": "sim",
        "registry": None,
        "models": [{"id": "gemma-3-270m", "loaded": True, "simulated": True,
                    "load_time_s": 0.0, "context_length": 32768, "continuation": True}],
    }  # fmt: skip

    async def node_info(client: Any, url: str) -> dict[str, Any]:
        return info

    monkeypatch.setattr(control, "node_info", node_info)
    out = runner.invoke(
        app, ["node", "info", "--node-url", "http://127.0.0.1:8801"], env={"COLUMNS": columns}
    )
    assert out.exit_code == 0, out.output
    for label in ("continuation", "load time", "context", "gemma-3-270m (simulated)",
                  "measured tok/s"):  # fmt: skip
        assert label in out.output, out.output
    assert max(len(line) for line in out.output.splitlines()) <= int(columns)
