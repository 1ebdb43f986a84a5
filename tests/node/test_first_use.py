"""A node does not learn its gateway key over plain http from another machine unless its
operator says so (``core/first_use.py``, ``GatewayGuard.check_first_use``): no socket is
opened; the registry URLs are injected and answered by a MockTransport.

Found 2026-12-03: a node with a plain-http registry on another machine and no pinned key
pinned the key of whoever answered its first registration, for good."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.first_use import PRINT_KEY_COMMAND
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.gateway_pin import pin_path, replace_pin
from LLM_Mesh.node.service import NodeService
from tests.node.conftest import node_config, sim_engine, wait_until
from tests.node.test_gateway_guard import CHAT, Registry, _post, _raw

REMOTE_HTTP = "http://10.0.0.5:8800"


def _settings(tmp_path: Path, url: str, **kw: object) -> Settings:
    return Settings(home=tmp_path / "home", registry_url=url, **kw)  # type: ignore[arg-type]


def _node(settings: Settings, registry: Registry, **config: object) -> NodeService:
    http = httpx.AsyncClient(transport=httpx.MockTransport(registry.handler))
    return NodeService(node_config(register=True, **config), settings, engine=sim_engine(),
                       http_client=http, hardware=Hardware())  # fmt: skip


async def _registers_and_serves(svc: NodeService, registry: Registry) -> None:
    await svc.start()
    try:
        await wait_until(lambda: svc.agent is not None and svc.agent.registrations > 0)
        assert svc.gateway.registry_id == registry.signer.registry_id
        body = _raw(CHAT)
        assert (await _post(svc, body, registry.headers(svc.node_id, body))).status_code == 200
    finally:
        await svc.stop()


@pytest.mark.parametrize("url", [REMOTE_HTTP, f"https://a.example.org,{REMOTE_HTTP}"])
def test_a_node_with_a_remote_plain_http_registry_and_no_pin_refuses_to_start(
    tmp_path: Path, url: str
) -> None:
    registry = Registry(Ed25519PrivateKey.generate())
    with pytest.raises(ValueError) as refused:
        _node(_settings(tmp_path, url), registry)
    text = str(refused.value)
    assert REMOTE_HTTP in text and "no pinned gateway key" in text
    assert "https" in text and PRINT_KEY_COMMAND in text and "allow_http_first_use" in text
    assert not pin_path(_settings(tmp_path, url)).exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8800", "http://localhost:8800",
                                 "http://[::1]:8800", "https://mesh.example.org"])  # fmt: skip
async def test_loopback_and_https_registries_need_no_setting(
    tmp_path: Path, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(Ed25519PrivateKey.generate())
    await _registers_and_serves(_node(_settings(tmp_path, url), registry), registry)
    assert not [r for r in caplog.records if "allow_http_first_use" in r.getMessage()]


@pytest.mark.parametrize("where", ["node.toml", "env"])
async def test_the_opt_in_starts_it_with_a_warning(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(Ed25519PrivateKey.generate())
    if where == "node.toml":
        svc = _node(_settings(tmp_path, REMOTE_HTTP), registry, allow_http_first_use=True)
    else:
        env = {"LLM_MESH_HOME": str(tmp_path / "home"), "LLM_MESH_REGISTRY_URL": REMOTE_HTTP}
        settings = Settings.from_env({**env, "LLM_MESH_ALLOW_HTTP_FIRST_USE": "1"})
        svc = _node(settings, registry)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(REMOTE_HTTP in w and "allow_http_first_use" in w for w in warned), warned
    await _registers_and_serves(svc, registry)
    assert registry.signer.public_key in pin_path(svc.settings).read_text()


async def test_a_pinned_key_starts_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """node.toml ``registry_public_key``, or a gateway.pin learned before: nothing is taken on
    first use, so nothing to refuse or warn about."""
    registry = Registry(Ed25519PrivateKey.generate())
    settings = _settings(tmp_path, REMOTE_HTTP)
    key = registry.signer.public_key
    await _registers_and_serves(_node(settings, registry, registry_public_key=key), registry)
    settings.home.mkdir(parents=True, exist_ok=True)
    replace_pin(pin_path(settings), key)
    await _registers_and_serves(_node(settings, registry), registry)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_pin_forgotten_while_it_runs_is_not_learned_again_over_plain_http(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``llm-mesh node keys forget-gateway`` on a running node: the next answer over plain
    http from another machine is not pinned (the start-up check would refuse it too)."""
    real = Registry(Ed25519PrivateKey.generate())
    fake = Registry(Ed25519PrivateKey.generate())
    settings = _settings(tmp_path, REMOTE_HTTP)
    settings.home.mkdir(parents=True, exist_ok=True)
    replace_pin(pin_path(settings), real.signer.public_key)
    svc = _node(settings, real)
    await svc.start()
    try:
        await wait_until(lambda: svc.agent is not None and svc.agent.registrations > 0)
        pin_path(settings).unlink()
        svc.gateway.pin({"registry_public_key": fake.signer.public_key})
        assert svc.gateway.registry_id == real.signer.registry_id
        assert not pin_path(settings).exists()
        said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
        assert fake.signer.registry_id in said and "allow_http_first_use" in said
    finally:
        await svc.stop()


def test_node_start_refuses_and_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI: exit 1 with the fix, before any model is loaded or port bound."""
    from LLM_Mesh.node_manager import NodeManager

    monkeypatch.setattr(NodeManager, "run", lambda self: None)  # never serves here
    r = CliRunner().invoke(app, ["node", "start", "--home", str(tmp_path / "h"), "--no-config",
                                 "--engine", "sim", "--registry", REMOTE_HTTP])  # fmt: skip
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert PRINT_KEY_COMMAND in out and "--allow-http-first-use" in out


def test_registry_public_key_prints_the_key_nodes_pin(tmp_path: Path) -> None:
    from LLM_Mesh.core.gateway_auth import GatewaySigner
    from LLM_Mesh.registry.gateway_key import load_or_create_registry_key

    home = tmp_path / "reg"
    r = CliRunner().invoke(app, ["registry", "public-key", "--home", str(home)])
    assert r.exit_code == 1 and not (home / "registry.key").exists()  # never made here
    home.mkdir()
    key = load_or_create_registry_key(home / "registry.key")
    r = CliRunner().invoke(app, ["registry", "public-key", "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert GatewaySigner(key, lambda: 0.0).public_key in r.output.split()
