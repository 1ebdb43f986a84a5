"""``llm-mesh ask`` can take its prompt from standard input (``-``, or no argument with
stdin not a terminal) or ``--prompt-file``, so it is in neither the shell's history nor
``ps`` (docs/security.md, "Privacy"; found 2026-12-05: a command-line argument only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import LLM_Mesh.cli.demo as demo
from LLM_Mesh.cli.main import app


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    prompts: list[str] = []

    async def fake_ask_once(console: Any, url: str, prompt: str, **kw: Any) -> None:
        prompts.append(prompt)

    monkeypatch.setattr(demo, "ask_once", fake_ask_once)
    return prompts


def _ask(args: list[str], stdin: str | None = None) -> Any:
    env = {"LLM_MESH_REGISTRY_URL": "http://127.0.0.1:9"}
    return CliRunner().invoke(app, ["ask", *args], input=stdin, env=env)


def test_a_dash_reads_the_prompt_from_stdin(asked: list[str]) -> None:
    out = _ask(["-", "--chat"], stdin="alice's secret question\n")
    assert out.exit_code == 0, out.output
    assert asked == ["alice's secret question"]


def test_no_argument_with_stdin_piped_reads_stdin(asked: list[str]) -> None:
    out = _ask(["--max-tokens", "8"], stdin="def f():\n    return 1\n")
    assert out.exit_code == 0, out.output
    assert asked == ["def f():\n    return 1"]  # only the last line end dropped


def test_prompt_file_reads_the_file(asked: list[str], tmp_path: Path) -> None:
    path = tmp_path / "prompt.txt"
    path.write_text("from a file\n", encoding="utf-8")
    out = _ask(["--prompt-file", str(path)])
    assert out.exit_code == 0, out.output
    assert asked == ["from a file"]


def test_the_positional_prompt_still_works(asked: list[str]) -> None:
    out = _ask(["def fibonacci(n):"], stdin="ignored")
    assert out.exit_code == 0, out.output
    assert asked == ["def fibonacci(n):"]


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (["x", "--prompt-file", "p"], None, "not both"),
        (["-"], "", "standard input was empty"),
        (["--prompt-file", "/nonexistent/prompt.txt"], None, "--prompt-file"),
    ],
)
def test_a_missing_or_doubled_prompt_is_refused(
    asked: list[str], args: list[str], stdin: str | None, words: str
) -> None:
    out = _ask(args, stdin=stdin)
    assert out.exit_code == 1
    assert words in out.output
    assert asked == []


def test_help_says_how_to_keep_the_prompt_out_of_argv() -> None:
    out = CliRunner().invoke(app, ["ask", "--help"], env={"COLUMNS": "200"})
    assert "--prompt-file" in out.output and "stdin" in out.output
