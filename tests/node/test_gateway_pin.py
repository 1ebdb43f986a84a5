"""Trust on first use of the gateway key (``node/gateway_guard.py``, ``node/gateway_pin.py``):
a node without ``registry_public_key`` keeps the first key a registration answer named,
across re-registrations and restarts; only the operator's
``llm-mesh node keys forget-gateway`` moves it."""

from __future__ import annotations

import logging

import httpx
import pytest
from click.testing import Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.gateway_pin import pin_path
from LLM_Mesh.node.service import NodeService
from tests.node.conftest import node_config, sim_engine, wait_until
from tests.node.test_gateway_guard import CHAT, Registry, _post, _raw


class Switchable:
    """The registry URL: answered by the real registry, or by whoever took it over."""

    def __init__(self, registry: Registry) -> None:
        self.answering = registry

    def handler(self, request: httpx.Request) -> httpx.Response:
        return self.answering.handler(request)


async def _start(settings: Settings, at: Switchable) -> tuple[NodeService, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(at.handler))
    svc = NodeService(node_config(register=True), settings, engine=sim_engine(),
                      http_client=http, hardware=Hardware())  # fmt: skip
    await svc.start()
    await wait_until(lambda: svc.agent is not None and svc.agent.registrations > 0)
    return svc, http


async def _served(svc: NodeService, registry: Registry, rid: str) -> int:
    body = _raw(CHAT)
    return (await _post(svc, body, registry.headers(svc.node_id, body, rid=rid))).status_code


async def _reregister(svc: NodeService) -> None:
    assert svc.agent is not None
    assert await svc.agent.register()  # what a heartbeat answered 404 unknown_node leads to


@pytest.mark.parametrize("session", [False, True], ids=["signature", "session"])
async def test_a_fake_registry_cannot_replace_the_learned_key(
    settings: Settings, session: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-03: every accepted registration re-pinned the key its answer carried,
    so whoever answered at a plain-http registry URL (one heartbeat 404, then the
    registration) made the node serve its requests and refuse the real gateway's (401)."""
    real = Registry(Ed25519PrivateKey.generate(), session=session)
    fake = Registry(Ed25519PrivateKey.generate(), session=session)
    at = Switchable(real)
    svc, http = await _start(settings, at)
    try:
        assert await _served(svc, real, "r1") == 200
        at.answering = fake
        await _reregister(svc)
        assert await _served(svc, fake, "f1") == 401
        assert await _served(svc, real, "r2") == 200
        assert svc.gateway.registry_id == real.signer.registry_id
        said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert real.signer.registry_id in said and fake.signer.registry_id in said
        assert "llm-mesh node keys forget-gateway" in said
    finally:
        await svc.stop()
        await http.aclose()


async def test_a_restart_keeps_the_learned_key(settings: Settings) -> None:
    """Found 2026-12-03: the pin lived in the process only: after a restart the first
    answer, anyone's, was trusted again."""
    real = Registry(Ed25519PrivateKey.generate())
    fake = Registry(Ed25519PrivateKey.generate())
    at = Switchable(real)
    svc, http = await _start(settings, at)
    await svc.stop()
    await http.aclose()
    assert pin_path(settings).is_file()
    at.answering = fake
    svc, http = await _start(settings, at)  # the same home
    try:
        assert await _served(svc, fake, "f1") == 401
        assert await _served(svc, real, "r1") == 200
    finally:
        await svc.stop()
        await http.aclose()


async def test_forget_gateway_moves_the_pin(settings: Settings) -> None:
    """A rotated registry.key: the operator forgets the pin and the next registration (a
    running node's too) pins the new key; the old one is refused from then on."""
    old = Registry(Ed25519PrivateKey.generate())
    new = Registry(Ed25519PrivateKey.generate())
    at = Switchable(old)
    svc, http = await _start(settings, at)
    try:
        at.answering = new
        await _reregister(svc)
        assert await _served(svc, new, "n1") == 401  # not before the operator says so
        out = _forget(settings)
        assert out.exit_code == 0, out.output
        assert old.signer.public_key in out.output and not pin_path(settings).exists()
        await _reregister(svc)
        assert await _served(svc, new, "n2") == 200
        assert await _served(svc, old, "o1") == 401
        assert new.signer.public_key in pin_path(settings).read_text()
    finally:
        await svc.stop()
        await http.aclose()
    out = _forget(settings)
    assert out.exit_code == 0 and new.signer.public_key in out.output
    assert "no gateway key pinned" in _forget(settings).output


def _forget(settings: Settings) -> Result:
    return CliRunner().invoke(app, ["node", "keys", "forget-gateway", "--home", str(settings.home)])


async def test_an_answer_without_a_key_keeps_the_pin(settings: Settings) -> None:
    """Found 2026-12-03: a registration answer carrying no key unpinned the node, which then
    refused every request of its real gateway."""
    real = Registry(Ed25519PrivateKey.generate())
    svc, http = await _start(settings, Switchable(real))
    try:
        svc.gateway.pin({"node_id": svc.node_id})
        assert await _served(svc, real, "r1") == 200
    finally:
        await svc.stop()
        await http.aclose()
