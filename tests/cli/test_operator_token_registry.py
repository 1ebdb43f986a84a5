"""Where ``llm-mesh earnings`` and ``llm-mesh ledger statement --operator`` send the
operator's token: one registry, chosen by the one order every command reaching a registry
takes (``cli/common.registry_settings``), and nowhere else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import earnings_commands, ledger_statement
from LLM_Mesh.cli.main import app
from LLM_Mesh.client import MeshClient
from LLM_Mesh.node.config import NodeConfig, save_node_config

runner = CliRunner()
TOKENS = {"flag": "lmo_flag", "env": "lmo_env", "node.toml": "lmo_toml"}
COMMANDS = {"earnings": ["earnings"], "statement": ["ledger", "statement", "--operator"]}


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Every request either command sends, each refused (no registry answers)."""
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise httpx.ConnectError("All connection attempts failed", request=request)

    def client(base_url: Any, **kw: Any) -> MeshClient:
        kw["http_client"] = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
        return MeshClient(base_url, **kw)

    monkeypatch.setattr(earnings_commands, "MeshClient", client)
    monkeypatch.setattr(ledger_statement, "MeshClient", client)
    return sent


def _run(home: Path, command: str, token_from: str, registry_from: str) -> tuple[int, str, Path]:
    """``command`` in ``home`` with the token and the registry named where said; every
    place below the one the registry is named at names another (a flag beside the
    environment's, the environment's beside node.toml's), so a lower one taken shows."""
    env: dict[str, str | None] = {
        "LLM_MESH_HOME": str(home),
        "COLUMNS": "400",
        "LLM_MESH_OPERATOR_TOKEN": None,
        "LLM_MESH_REGISTRY_URL": None,
        "LLM_MESH_API_KEY": None,
    }
    args = list(COMMANDS[command])
    if token_from == "flag":
        args += ["--operator-token", TOKENS["flag"]]
    elif token_from == "env":
        env["LLM_MESH_OPERATOR_TOKEN"] = TOKENS["env"]
    order = ["flag", "env", "node.toml"]
    named = order[order.index(registry_from) :] if registry_from in order else []
    if "flag" in named:
        args += ["--registry", "http://flag.test"]
    if "env" in named:
        env["LLM_MESH_REGISTRY_URL"] = "http://env.test"
    toml = home / "node.toml"
    save_node_config(
        NodeConfig(
            operator_token=TOKENS["node.toml"] if token_from == "node.toml" else None,
            registry_url="http://toml.test" if "node.toml" in named else None,
        ),
        toml,
    )
    out = runner.invoke(app, args, env=env)
    return out.exit_code, " ".join(out.output.split()), toml


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("token_from", list(TOKENS))
@pytest.mark.parametrize("registry_from", ["flag", "env", "node.toml", "default"])
def test_the_operator_token_goes_only_to_the_registry_chosen(
    tmp_path: Path, seen: list[httpx.Request], command: str, token_from: str, registry_from: str
) -> None:
    """Found 2026-12-07 (cli42): ``earnings`` sent a token from ``--operator-token`` or
    ``$LLM_MESH_OPERATOR_TOKEN`` to the default ``http://127.0.0.1:8800`` (whatever listens
    on that port of the operator's machine) while the home's node.toml named the
    ``registry_url`` every other command takes, and ``ledger statement --operator`` sent
    the same token to node.toml's: one operator's two commands, two registries. Both now
    take ``--registry``, else ``$LLM_MESH_REGISTRY_URL``, else node.toml's ``registry_url``,
    else the default, whichever token; the token goes there and nowhere else, and no
    registry answering is said with where its URL came from."""
    home = tmp_path / "mesh"
    home.mkdir()
    code, said, toml = _run(home, command, token_from, registry_from)
    assert code == 1, said
    want_host, words = {
        "flag": ("flag.test", "the URL came from --registry"),
        "env": ("env.test", "the URL came from LLM_MESH_REGISTRY_URL"),
        "node.toml": ("toml.test", f"the URL came from registry_url in {toml}: change it there"),
        "default": ("127.0.0.1", "the URL is the default: no --registry, LLM_MESH_REGISTRY_URL"),
    }[registry_from]
    assert seen, said
    assert {(r.url.host, r.url.port) for r in seen} == {
        (want_host, 8800 if registry_from == "default" else None)
    }, (seen, said)
    assert {r.headers.get("authorization") for r in seen} == {f"Bearer {TOKENS[token_from]}"}
    assert words in said, said
    assert "goes only with that file's operator_token" not in said, said


@pytest.mark.parametrize("token_from", list(TOKENS))
@pytest.mark.parametrize("registry_from", ["flag", "env", "node.toml", "default"])
def test_both_commands_send_the_token_to_the_same_registry(
    tmp_path: Path, seen: list[httpx.Request], token_from: str, registry_from: str
) -> None:
    """The two operator commands in one home, the same token and registry settings: the
    same registry asked, with the same token."""
    asked: dict[str, set[tuple[str, str | None]]] = {}
    for command in COMMANDS:
        seen.clear()
        home = tmp_path / command
        home.mkdir()
        _run(home, command, token_from, registry_from)
        asked[command] = {(r.url.netloc.decode(), r.headers.get("authorization")) for r in seen}
    assert asked["earnings"] and asked["earnings"] == asked["statement"], asked
