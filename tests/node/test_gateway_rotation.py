"""A rotated registry.key (``core/key_rotation.py``): a node that pinned the old key by
trust on first use moves its pin when the registration answer carries the old key's
signature naming the new key; anything else is refused as before."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.key_rotation import rotation_statement, vouches_for
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.gateway_pin import pin_path
from LLM_Mesh.node.service import NodeService
from tests.node.conftest import node_config, sim_engine, wait_until
from tests.node.test_gateway_guard import Registry
from tests.node.test_gateway_pin import Switchable, _reregister, _served, _start

Statement = Callable[[Ed25519PrivateKey, Ed25519PrivateKey], dict[str, Any]]


class Rotated(Registry):
    """A registry whose answers carry ``statement`` (the old key's, by default)."""

    def __init__(self, key: Ed25519PrivateKey, statement: dict[str, Any], *,
                 session: bool = False) -> None:  # fmt: skip
        super().__init__(key, session=session)
        self.statement = statement

    def handler(self, request: httpx.Request) -> httpx.Response:
        answer = super().handler(request)
        body = json.loads(answer.content)
        if request.url.path == "/mesh/nodes":
            body["key_rotation"] = self.statement
        elif request.url.path.endswith("/heartbeat"):  # as the registry's heartbeat answer
            body["registry_id"] = self.signer.registry_id
        return httpx.Response(200, json=body)


@pytest.mark.parametrize("session", [False, True], ids=["signature", "session"])
async def test_a_signed_rotation_moves_the_pin(
    settings: Settings, session: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-03: a rotated registry.key was refused by every node that had learned
    the old one until its operator ran forget-gateway and restarted it."""
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old = Registry(old_key, session=session)
    new = Rotated(new_key, rotation_statement(old_key, new_key), session=session)
    at = Switchable(old)
    svc, http = await _start(settings, at)
    try:
        assert await _served(svc, old, "o1") == 200
        at.answering = new
        with caplog.at_level(logging.INFO, logger="LLM_Mesh.node.gateway"):
            await _reregister(svc)
        assert await _served(svc, new, "n1") == 200
        assert await _served(svc, old, "o2") == 401
        assert pin_path(settings).read_text().strip() == new.signer.public_key
        assert stat.S_IMODE(pin_path(settings).stat().st_mode) == 0o600
        said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
        assert old.signer.registry_id in said and new.signer.registry_id in said
    finally:
        await svc.stop()
        await http.aclose()
    at.answering = old  # a restart: the new pin stays, the old key is refused
    svc, http = await _start(settings, at)
    try:
        assert await _served(svc, old, "o3") == 401
        new.signer.forget(svc.node_id)  # its session key was the last process's: it signs
        assert await _served(svc, new, "n2") == 200
    finally:
        await svc.stop()
        await http.aclose()


async def test_a_heartbeat_naming_another_gateway_leads_to_the_rotation(
    settings: Settings,
) -> None:
    """A registry restarted with a rotated key knows its nodes (the store): they only
    heartbeat, and never registered again to hear the statement. Its heartbeat answer's
    ``registry_id`` makes the node register again, once for each id it has not pinned."""
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old = Registry(old_key)
    new = Rotated(new_key, rotation_statement(old_key, new_key))
    at = Switchable(old)
    svc, http = await _start(settings, at)
    try:
        assert svc.agent is not None
        registrations = svc.agent.registrations
        at.answering = new
        await svc.agent.step()  # one heartbeat, then the registration it leads to
        assert svc.agent.registrations == registrations + 1
        assert await _served(svc, new, "n1") == 200
        assert await _served(svc, old, "o1") == 401
        await svc.agent.step()  # the pinned gateway: a heartbeat only
        assert svc.agent.registrations == registrations + 1
        forged = Rotated(Ed25519PrivateKey.generate(), {"public_key": "x", "signature": "y"})
        at.answering = forged
        await svc.agent.step()  # refused; asked once, not at every heartbeat
        await svc.agent.step()
        assert svc.agent.registrations == registrations + 2
        assert await _served(svc, new, "n2") == 200
    finally:
        await svc.stop()
        await http.aclose()


def _by_another_key(old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> dict[str, Any]:
    return rotation_statement(Ed25519PrivateKey.generate(), new)


def _over_another_new_key(old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> dict[str, Any]:
    other = rotation_statement(old, Ed25519PrivateKey.generate())
    return {**other, "public_key": rotation_statement(old, new)["public_key"]}


def _naming_another_key(old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> dict[str, Any]:
    return rotation_statement(old, Ed25519PrivateKey.generate())  # valid, but not this key


def _garbled(old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> dict[str, Any]:
    statement = rotation_statement(old, new)
    sig = statement["signature"]
    return {**statement, "signature": ("B" if sig[0] == "A" else "A") + sig[1:]}


def _not_base64(old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> dict[str, Any]:
    return {**rotation_statement(old, new), "signature": "%%%"}


@pytest.mark.parametrize(
    "forge",
    [_by_another_key, _over_another_new_key, _naming_another_key, _garbled, _not_base64],
)
async def test_a_rotation_the_pinned_key_did_not_sign_is_refused(
    settings: Settings, forge: Statement, caplog: pytest.LogCaptureFixture
) -> None:
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old = Registry(old_key)
    intruder = Rotated(new_key, forge(old_key, new_key))
    at = Switchable(old)
    svc, http = await _start(settings, at)
    try:
        at.answering = intruder
        await _reregister(svc)
        assert await _served(svc, intruder, "i1") == 401
        assert await _served(svc, old, "o1") == 200
        assert pin_path(settings).read_text().strip() == old.signer.public_key
        said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert "llm-mesh node keys forget-gateway" in said
    finally:
        await svc.stop()
        await http.aclose()


def test_vouches_for_refuses_malformed_statements() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    good = rotation_statement(old, new)
    pinned, key = good["previous_public_key"], good["public_key"]
    assert vouches_for(good, pinned, key)
    for bad in (None, "x", [], {}, {**good, "signature": 3}, {**good, "public_key": None}):
        assert not vouches_for(bad, pinned, key)
    assert not vouches_for(good, "not a key", key)
    assert not vouches_for(good, key, key)  # the new key does not vouch for itself


async def test_a_configured_key_is_not_moved_by_a_rotation(settings: Settings) -> None:
    """node.toml ``registry_public_key`` is the operator's pin: even the configured key's
    own rotation statement does not move it (the operator edits node.toml)."""
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old = Registry(old_key)
    new = Rotated(new_key, rotation_statement(old_key, new_key))
    http = httpx.AsyncClient(transport=httpx.MockTransport(new.handler))
    config = node_config(register=True, registry_public_key=old.signer.public_key)
    svc = NodeService(config, settings, engine=sim_engine(), http_client=http, hardware=Hardware())
    await svc.start()
    try:
        await wait_until(lambda: svc.agent is not None and svc.agent.registered)
        assert await _served(svc, new, "n1") == 401
        assert await _served(svc, old, "o1") == 200
        assert not pin_path(settings).exists()
    finally:
        await svc.stop()
        await http.aclose()
