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


def test_a_prompt_past_the_gateways_body_limit_is_refused_unsent(
    asked: list[str], tmp_path: Path
) -> None:
    """Found 2026-12-06 (small35): ``--prompt-file`` and standard input were read whole,
    however large (failed before: the 1 MiB + 1 byte prompt was sent). A prompt the size of
    a gateway's default body limit is read; one byte more is one line, naming why."""
    from LLM_Mesh.cli.prompt_input import MAX_PROMPT_BYTES

    assert MAX_PROMPT_BYTES == 1024 * 1024  # the gateway's default LLM_MESH_MAX_BODY_BYTES
    path = tmp_path / "prompt.txt"
    path.write_text("x" * MAX_PROMPT_BYTES, encoding="utf-8")
    assert _ask(["--prompt-file", str(path)]).exit_code == 0
    assert _ask(["-"], stdin="y" * MAX_PROMPT_BYTES).exit_code == 0
    assert [len(p) for p in asked] == [MAX_PROMPT_BYTES] * 2
    asked.clear()
    path.write_text("x" * (MAX_PROMPT_BYTES + 1), encoding="utf-8")
    for out in (
        _ask(["--prompt-file", str(path)]),
        _ask(["-"], stdin="y" * (MAX_PROMPT_BYTES + 1)),
    ):
        assert out.exit_code == 1
        assert "is larger than 1,048,576 bytes, the most read" in out.output
        assert "LLM_MESH_MAX_BODY_BYTES" in out.output and "Traceback" not in out.output
    assert asked == []


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_prompt_file_with_no_end_is_refused_unread(asked: list[str]) -> None:
    """Attack: ``--prompt-file /dev/zero`` (before small35: read until memory ran out; then
    read to the bound): a device is not a regular file, refused unread (cli36)."""
    out = _ask(["--prompt-file", "/dev/zero"])
    assert out.exit_code == 1 and "is not a regular file" in out.output
    assert asked == []


def test_the_bound_follows_llm_mesh_max_body_bytes(asked: list[str], tmp_path: Path) -> None:
    """Found 2026-12-06 (cli36): ``ask`` stopped at 1 MiB whatever the gateway's
    ``LLM_MESH_MAX_BODY_BYTES`` (failed before: the 1.5 MiB prompt was refused with the
    variable set to 2 MiB). The same variable bounds what ``ask`` reads (default 1 MiB);
    past it, the refusal says the bound it used and the variable."""
    path = tmp_path / "prompt.txt"
    path.write_text("x" * (3 << 19), encoding="utf-8")  # 1.5 MiB
    env = {"LLM_MESH_REGISTRY_URL": "http://127.0.0.1:9", "LLM_MESH_MAX_BODY_BYTES": str(2 << 20)}
    out = CliRunner().invoke(app, ["ask", "--prompt-file", str(path)], env=env)
    assert out.exit_code == 0 and [len(p) for p in asked] == [3 << 19], out.output
    env["LLM_MESH_MAX_BODY_BYTES"] = str(1 << 20)
    out = CliRunner().invoke(app, ["ask", "-"], input="y" * ((1 << 20) + 1), env=env)
    env["LLM_MESH_MAX_BODY_BYTES"] = str(1 << 19)
    half = CliRunner().invoke(app, ["ask", "--prompt-file", str(path)], env=env)
    said = " ".join(half.output.split())
    assert out.exit_code == 1 and half.exit_code == 1 and len(asked) == 1, said
    assert "is larger than 524,288 bytes, the most read" in said, said
    assert "set LLM_MESH_MAX_BODY_BYTES to it here too" in said, said


def test_a_gateways_413_names_the_prompt_as_json_not_node_tomls_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found 2026-12-06 (newuser36): 600,000 quotes (under the 1 MiB bound ``ask`` reads
    to) are 1.2 MB as JSON; the gateway's 413 reached the user as "larger than
    max_body_bytes (1048576 bytes)", a node.toml name, nothing about why or what to do."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from LLM_Mesh.body_limit import BodyLimit
    from LLM_Mesh.errors import error_from_payload

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    gateway = BodyLimit(Starlette(routes=[Route("/v1/x", echo, methods=["POST"])]), max_bytes=100)
    answer = TestClient(gateway).post("/v1/x", json={"prompt": '"' * 60})  # 60 bytes, 120 as JSON
    assert answer.status_code == 413

    async def refused(*_a: Any, **_kw: Any) -> None:
        raise error_from_payload(answer.status_code, answer.json())

    monkeypatch.setattr(demo, "ask_once", refused)
    (tmp_path / "p.txt").write_text('"' * 60)
    out = CliRunner().invoke(
        app,
        ["ask", "--prompt-file", str(tmp_path / "p.txt")],
        env={"LLM_MESH_REGISTRY_URL": "http://127.0.0.1:9", "LLM_MESH_MAX_BODY_BYTES": "100"},
    )
    assert out.exit_code == 1
    text = " ".join(out.output.split())
    assert "the gateway refused the request as too large" in text, text
    assert "the prompt as JSON" in text and "shorten the prompt" in text
    assert "LLM_MESH_MAX_BODY_BYTES (100 bytes here)" in text
