"""Found 2026-12-05 (polish32, from a new user's walk): ``ask ""`` was sent, answered and
charged; ``ask --max-tokens`` above the model's context named the API's ``max_tokens``,
not the option typed; ``ask``, ``status``, ``models``, ``balance`` and ``receipt verify``
read the home but took no ``--home`` (``node pause|resume|drain|info`` do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import LLM_Mesh.cli.demo as demo
from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.errors import ContextLengthExceeded, InvalidRequest

ENV = {"LLM_MESH_REGISTRY_URL": "http://127.0.0.1:9", "LLM_MESH_API_KEY": ""}


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    prompts: list[str] = []

    async def fake_ask_once(console: Any, url: str, prompt: str, **kw: Any) -> None:
        prompts.append(prompt)

    monkeypatch.setattr(demo, "ask_once", fake_ask_once)
    return prompts


@pytest.mark.parametrize(
    ("args", "stdin"), [([""], None), (["  \t "], None), (["-"], " \n\n  \n"), ([], "\t\n")]
)
def test_an_empty_or_blank_prompt_is_refused_before_sending(
    asked: list[str], args: list[str], stdin: str | None
) -> None:
    out = CliRunner().invoke(app, ["ask", *args], input=stdin, env=ENV)
    assert out.exit_code == 1, out.output
    assert "no prompt" in out.output
    assert asked == []


def test_a_prompt_with_text_among_blanks_is_sent_as_given(asked: list[str]) -> None:
    out = CliRunner().invoke(app, ["ask", "  x "], env=ENV)
    assert out.exit_code == 0, out.output
    assert asked == ["  x "]


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            ContextLengthExceeded(
                "max_tokens=99999 exceeds m's context length of 4096 tokens", param="max_tokens"
            ),
            "--max-tokens 99999 exceeds m's context length of 4096 tokens",
        ),
        (
            InvalidRequest("max_tokens: Input should be less than 10", param="max_tokens"),
            "--max-tokens 99999: Input should be less than 10",
        ),
    ],
)
def test_a_refused_max_tokens_names_the_option(
    monkeypatch: pytest.MonkeyPatch, error: Exception, said: str
) -> None:
    async def refused(*_a: Any, **_kw: Any) -> None:
        raise error

    monkeypatch.setattr(demo, "ask_once", refused)
    out = CliRunner().invoke(app, ["ask", "hi", "--max-tokens", "99999"], env=ENV)
    assert out.exit_code == 1
    text = " ".join(out.output.split())
    assert said in text, text
    assert "max_tokens" not in text


def test_another_refusal_is_said_as_it_came(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(*_a: Any, **_kw: Any) -> None:
        raise InvalidRequest("temperature: too hot", param="temperature")

    monkeypatch.setattr(demo, "ask_once", refused)
    out = CliRunner().invoke(app, ["ask", "hi"], env=ENV)
    assert out.exit_code == 1
    assert "error: temperature: too hot" in out.output


@pytest.mark.parametrize(
    "args",
    [
        ["ask", "hi"],
        ["status"],
        ["models"],
        ["balance"],
        ["receipt", "verify", "RECEIPT"],
    ],
)
def test_commands_that_read_the_home_take_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    homes: list[Any] = []

    def from_env(cls: type[Settings], env: Any = None, **kw: Any) -> Settings:
        homes.append(kw.get("home"))
        raise ValueError("stopped here")

    monkeypatch.setattr(Settings, "from_env", classmethod(from_env))
    receipt = tmp_path / "receipt.json"
    receipt.write_text("{}", encoding="utf-8")
    args = [str(receipt) if a == "RECEIPT" else a for a in args]
    home = tmp_path / "home"
    out = CliRunner().invoke(app, [*args, "--home", str(home)], env=ENV)
    assert "No such option" not in out.output, out.output
    assert out.exit_code == 1, out.output
    assert homes == [home]
