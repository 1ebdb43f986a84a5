"""``llm-mesh earnings``: the token from the flag, the environment or node.toml; tables or JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import earnings_commands
from LLM_Mesh.cli.main import app
from LLM_Mesh.client import MeshClient
from LLM_Mesh.node.config import NodeConfig, save_node_config
from tests.cli.test_earnings_render import REPORT

runner = CliRunner()


class FakeRegistry:
    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.seen: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.answer is not None:
            return self.answer(request)
        return httpx.Response(200, json=REPORT)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    fake = FakeRegistry()

    def client(base_url: str, **kw: Any) -> MeshClient:
        return MeshClient(
            base_url, http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake))
        )

    monkeypatch.setattr(earnings_commands, "MeshClient", client)
    return fake


def test_earnings_with_a_token_flag_prints_the_tables(registry: FakeRegistry) -> None:
    r = runner.invoke(
        app, ["earnings", "--operator-token", "lmo_flag", "--node", "node-a", "--days", "7",
              "--registry", "http://reg.test"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    (req,) = registry.seen
    assert str(req.url).startswith("http://reg.test/v1/earnings")
    assert dict(req.url.params) == {"node": "node-a", "days": "7"}
    assert req.headers["authorization"] == "Bearer lmo_flag"
    for part in ("Earnings", "alice", "Per day", "Per model", "Per node", "154,321"):
        assert part in r.output, part


def test_the_token_from_the_environment_then_node_toml(
    registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MESH_OPERATOR_TOKEN", "lmo_env")
    assert runner.invoke(app, ["earnings"]).exit_code == 0
    assert registry.seen[-1].headers["authorization"] == "Bearer lmo_env"
    monkeypatch.delenv("LLM_MESH_OPERATOR_TOKEN")
    save_node_config(
        NodeConfig(engine="sim", models=["m"], operator_token="lmo_toml"),
        Path(os.environ["LLM_MESH_HOME"]) / "node.toml",
    )
    assert runner.invoke(app, ["earnings"]).exit_code == 0
    assert registry.seen[-1].headers["authorization"] == "Bearer lmo_toml"


def test_no_token_anywhere_is_a_clear_error(registry: FakeRegistry) -> None:
    r = runner.invoke(app, ["earnings"])
    assert r.exit_code == 1
    assert "operator" in r.output and "token" in r.output
    # found 2026-12-03: after `llm-mesh up` (whose node's token nobody is shown) it said
    # only where a token goes; `node info` shows that node's earnings
    assert "llm-mesh node info" in " ".join(r.output.split())
    assert registry.seen == []  # nothing was sent


def test_a_refused_token_is_reported(registry: FakeRegistry) -> None:
    err = {"message": "unknown operator token", "type": "x", "code": "invalid_credential"}
    registry.answer = lambda _r: httpx.Response(401, json={"error": err})
    r = runner.invoke(app, ["earnings", "--operator-token", "lmo_bad"])
    assert r.exit_code == 1 and "unknown operator token" in r.output


def test_json_prints_the_answer_as_it_is(registry: FakeRegistry) -> None:
    r = runner.invoke(app, ["earnings", "--operator-token", "t", "--json"])
    assert r.exit_code == 0
    assert json.loads(r.output) == REPORT


def test_node_tomls_token_goes_to_node_tomls_registry(
    registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05 (a new user's try): in the home ``./setup-node-operator.sh
    --registry http://127.0.0.1:23830`` set up, ``llm-mesh earnings`` took node.toml's token
    but sent it to the default registry, ``http://127.0.0.1:8800`` ("no LLM Mesh registry
    answered", or the token to whatever listened there). Now the token goes where the node
    sends it, unless ``--registry`` or ``$LLM_MESH_REGISTRY_URL`` names a registry."""
    monkeypatch.delenv("LLM_MESH_OPERATOR_TOKEN", raising=False)
    monkeypatch.delenv("LLM_MESH_REGISTRY_URL", raising=False)
    save_node_config(
        NodeConfig(engine="sim", models=["m"], operator_token="lmo_toml",
                   registry_url="http://mine.test:23830/"),
        Path(os.environ["LLM_MESH_HOME"]) / "node.toml",
    )  # fmt: skip
    r = runner.invoke(app, ["earnings"])
    assert r.exit_code == 0, r.output
    assert registry.seen[-1].url.host == "mine.test" and registry.seen[-1].url.port == 23830
    assert runner.invoke(app, ["earnings", "--registry", "http://flag.test"]).exit_code == 0
    assert registry.seen[-1].url.host == "flag.test"
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://env.test")
    assert runner.invoke(app, ["earnings"]).exit_code == 0
    assert registry.seen[-1].url.host == "env.test"
    monkeypatch.delenv("LLM_MESH_REGISTRY_URL")
    # a token of the flag's goes there too: the registry is every command's (cli42; before,
    # the default, http://127.0.0.1:8800: tests/cli/test_operator_token_registry.py)
    assert runner.invoke(app, ["earnings", "--operator-token", "lmo_flag"]).exit_code == 0
    assert registry.seen[-1].url.host == "mine.test" and registry.seen[-1].url.port == 23830
    assert registry.seen[-1].headers["authorization"] == "Bearer lmo_flag"


def test_ledger_statement_operator_sends_node_tomls_token_to_its_registry(
    tmp_path: Path,
) -> None:
    """The same for ``ledger statement --operator``: the settings it builds
    (``registry_settings``) and ``operator_credential``'s token."""
    from LLM_Mesh.cli.common import registry_settings

    home = tmp_path / "node2"
    home.mkdir()
    (home / "node.toml").write_text(
        'engine = "sim"\nmodels = ["m"]\noperator_token = "lmo_toml"\n'
        'registry_url = ["http://a.test", "http://b.test/"]\n'
    )
    where = registry_settings(home)
    assert earnings_commands.operator_credential(where, None) == "lmo_toml"
    assert where.registry_urls == ("http://a.test", "http://b.test")
    assert where.registry_url == "http://a.test"


@pytest.mark.parametrize(
    ("token", "what"),
    [("lmk_" + "k" * 44, "an API key"), ("lma_" + "a" * 43, "the registry's admin key")],
    ids=["api_key", "admin_key"],
)
@pytest.mark.parametrize("how", ["flag", "env", "node.toml"])
def test_another_credential_as_the_operator_token_is_refused_before_it_is_sent(
    tmp_path: Path, registry: FakeRegistry, token: str, what: str, how: str
) -> None:
    """Found 2026-12-06 (newuser34): ``earnings --operator-token lmk_...`` sent the API key
    to the registry and said only ``unknown operator token`` (``ask --api-key lmo_...`` says
    what it was given since newuser32)."""
    home = tmp_path / "mesh"
    home.mkdir()
    env = {"LLM_MESH_HOME": str(home)}
    args = ["earnings", "--registry", "http://reg.test"]
    if how == "flag":
        args += ["--operator-token", token]
    elif how == "env":
        env["LLM_MESH_OPERATOR_TOKEN"] = token
    else:
        save_node_config(NodeConfig(operator_token=token), home / "node.toml")
    out = runner.invoke(app, args, env=env)
    assert out.exit_code == 1, out.output
    said = " ".join(out.output.split())
    assert f"that is {what}, not an operator token" in said, said
    assert "lmo_" in said and "registry operators add" in said, said
    assert token not in out.output and registry.seen == [], said


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("All connection attempts failed", request=request)


@pytest.mark.parametrize("token_from", ["flag", "env", "node.toml"])
@pytest.mark.parametrize("registry_from", ["flag", "env", "node.toml", "default"])
def test_where_the_registry_url_came_from_is_said_true(
    tmp_path: Path, registry: FakeRegistry, token_from: str, registry_from: str
) -> None:
    """Found 2026-12-07: with the token from ``--operator-token`` or
    ``$LLM_MESH_OPERATOR_TOKEN`` and a node.toml naming a ``registry_url`` (then not taken:
    it went with node.toml's own token only, until cli42), no registry answering said "the
    URL is the default: no --registry, LLM_MESH_REGISTRY_URL or node.toml registry_url".
    Each combination of where the token and the registry come from, said as it is."""
    registry.answer = _refused
    home = tmp_path / "mesh"
    home.mkdir()
    env = {"LLM_MESH_HOME": str(home), "COLUMNS": "400"}
    args = ["earnings"]
    if token_from == "flag":
        args += ["--operator-token", "lmo_flag"]
    elif token_from == "env":
        env["LLM_MESH_OPERATOR_TOKEN"] = "lmo_env"
    if registry_from == "flag":
        args += ["--registry", "http://flag.test"]
    elif registry_from == "env":
        env["LLM_MESH_REGISTRY_URL"] = "http://env.test"
    toml = home / "node.toml"
    save_node_config(
        NodeConfig(
            operator_token="lmo_toml" if token_from == "node.toml" else None,
            registry_url="http://toml.test" if registry_from == "node.toml" else None,
        ),
        toml,
    )
    if registry_from == "node.toml":  # whichever token (cli42: before, the default's words)
        want = f"the URL came from registry_url in {toml}: change it there"
        host = "toml.test"
    elif registry_from == "default":
        want = "the URL is the default: no --registry, LLM_MESH_REGISTRY_URL or node.toml"
        host = "127.0.0.1"
    else:
        named = "--registry" if registry_from == "flag" else "LLM_MESH_REGISTRY_URL"
        want, host = f"the URL came from {named}", f"{registry_from}.test"
    out = runner.invoke(app, args, env=env)
    assert out.exit_code == 1, out.output
    said = " ".join(out.output.split())
    assert want in said, said
    assert registry.seen and {r.url.host for r in registry.seen} == {host}, registry.seen
