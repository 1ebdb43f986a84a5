"""A FIFO named where a command reads a file is refused in one line, never waited on
(``text_files.open_regular``): found 2026-12-06 (cli36), ``ask --prompt-file FIFO``,
``receipt verify FIFO``, ``--keys FIFO`` and ``--registry-ca FIFO`` each waited for a writer
for ever (failed before: :func:`tests.test_text_files.fifo_refused` found the wait)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from tests.test_text_files import fifo_refused

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
runner = CliRunner()


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["ask", "--prompt-file", "{fifo}"], "--prompt-file"),
        (["receipt", "verify", "{fifo}", "--registry", "http://127.0.0.1:9"], "the receipt file"),
        (["receipt", "verify", "-", "--keys", "{fifo}"], "--keys"),
        (["status", "--registry-ca", "{fifo}", "--registry", "https://127.0.0.1:9"], "CA file"),
    ],
    ids=["prompt-file", "receipt", "keys", "registry-ca"],
)
def test_a_fifo_named_as_a_file_is_refused_at_once(
    tmp_path: Path, fifo: Path, args: list[str], named: str
) -> None:
    argv = [a.format(fifo=fifo) for a in args]
    env = {"COLUMNS": "300", "LLM_MESH_HOME": str(tmp_path / "home"),
           "LLM_MESH_REGISTRY_URL": "http://127.0.0.1:9", "LLM_MESH_REGISTRY_CA": ""}  # fmt: skip
    outs: list[str] = []
    codes: list[int] = []

    def call() -> None:
        out = runner.invoke(app, argv, env=env, input="{}")
        outs.append(" ".join(out.output.split()))
        codes.append(out.exit_code)

    assert fifo_refused(call, fifo) is None
    said = outs[0]
    assert codes[0] == 1 and named in said and str(fifo) in said, said
    assert "is not a regular file (a FIFO" in said and "Traceback" not in said, said


def test_a_fifo_as_prompt_file_names_the_pipe_to_dash(tmp_path: Path, fifo: Path) -> None:
    """README says "a FIFO ... as --prompt-file is refused (pipe it to '-')"; the refusal
    said only "name a file, or save what it gives to one first" (found 2026-12-06, newuser36)."""
    env = {"COLUMNS": "300", "LLM_MESH_HOME": str(tmp_path / "home"),
           "LLM_MESH_REGISTRY_URL": "http://127.0.0.1:9"}  # fmt: skip
    outs: list[str] = []

    def call() -> None:
        out = runner.invoke(app, ["ask", "--prompt-file", str(fifo)], env=env)
        outs.append(" ".join(out.output.split()))

    assert fifo_refused(call, fifo) is None
    assert f"or pipe it to '-': llm-mesh ask - < {fifo}" in outs[0], outs[0]


def test_standard_input_stays_where_a_command_takes_a_dash(tmp_path: Path) -> None:
    """``-`` still reads a pipe (``ledger id -``; ``ask -`` in test_ask_prompt_input)."""
    out = runner.invoke(app, ["ledger", "id", "-"], input="abc\n")
    assert out.exit_code == 0 and out.output.startswith("c-"), out.output
