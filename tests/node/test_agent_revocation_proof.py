"""A 403 ``revoked`` counts only with the registry key's signature over the node's own
message (``core/revocation_proof.py``, ``node/agent.py``). Found 2026-12-05: whoever answered
at the registry's URL could forge one and the node stopped heartbeating there for minutes.

Forged (unsigned, another key), replayed (the registry's own answer to an earlier
message) and another node's answers are ordinary refusals: a failed heartbeat, the next
one at the usual interval, one WARNING per registry; the registry's own is honoured; a node
without a registry key yet honours an unsigned one, as before. MockTransport, no sockets."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import MessageKind, NodeSigner
from LLM_Mesh.core.revocation_proof import (
    RevocationSigner,
    RevokedRequest,
    TrustedKey,
    revoked_request,
)
from LLM_Mesh.node.agent import NodeAgent
from LLM_Mesh.node.agent_wire import Backoff
from tests.node.fake_registry import REG, FakeRegistry, make_agent

LOGGER = "LLM_Mesh.node.agent"
WALL = 1_800_000_000.0


class SigningRegistry(FakeRegistry):
    """A registry whose admin can revoke the node; its answer, by :attr:`how`: ``signed``
    (as the real one), ``unsigned`` (forged, or an older registry), ``other_key``
    (forged with a key of its own), ``replayed`` (its first signed answer, sent again),
    ``other_node`` (its signed answer to another node's message)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        super().__init__()
        self.signer = RevocationSigner(key)
        self.revoked = False
        self.how = "signed"
        self.first: dict[str, Any] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.revoked:
            return super().__call__(request)
        self.calls.append((request.method, request.url.path, None))
        said = "node node-a is revoked"
        error: dict[str, Any] = {"message": said, "type": "permission_error", "code": "revoked"}
        kind = MessageKind.REGISTER if request.url.path == "/mesh/nodes" else MessageKind.HEARTBEAT
        sent = revoked_request(kind, request.headers)
        assert sent is not None
        if self.how == "other_node":
            sent = RevokedRequest("node-other", sent.kind, sent.seq, sent.ts_ms, sent.token_sha256)
        signer = self.signer
        if self.how == "other_key":
            signer = RevocationSigner(Ed25519PrivateKey.generate())
        if self.how != "unsigned":
            error.update(signer.fields(sent, said))
        if self.how == "replayed" and self.first is not None:
            return httpx.Response(403, json=self.first)
        self.first = self.first or {"error": error}
        return httpx.Response(403, json={"error": error})


def _agent(reg: SigningRegistry, key: str | None, *, follows: bool = True,
           **kw: Any) -> NodeAgent:  # fmt: skip
    """An agent that trusts ``key`` (``follows``: learned, it follows signed rotations)."""
    signer = NodeSigner(Ed25519PrivateKey.generate(), lambda: WALL)
    clock = iter(range(1000, 10**6))
    trusted = TrustedKey(key, follows_rotations=follows) if key is not None else None
    return make_agent(reg, signer=signer, registry_key=lambda: trusted, operator_token="lmo_t",
                      clock=lambda: float(next(clock)), **kw)  # fmt: skip


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.mark.parametrize("how", ["unsigned", "other_key", "replayed", "other_node"])
async def test_a_revoked_403_not_signed_for_this_message_is_a_failed_heartbeat(
    caplog: pytest.LogCaptureFixture, key: Ed25519PrivateKey, how: str
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg = SigningRegistry(key)
    agent = _agent(reg, reg.signer.public_key)
    assert await agent.step() == 7.0 and agent.registered
    if how == "replayed":  # the registry's real answer to one heartbeat, kept by a relay
        reg.revoked = True
        reg.first = None
        await agent.send_heartbeat()
        assert REG in agent.revoked  # the real one: honoured
        agent.revoked.lifted(REG)
        agent.registered = True
        caplog.clear()
    reg.revoked, reg.how = True, how
    for _ in range(4):  # every heartbeat at the usual interval, none held back
        assert await agent.step() == 7.0
    assert reg.paths()[-4:] == ["POST /mesh/nodes/node-a/heartbeat"] * 4
    assert agent.registered and REG not in agent.revoked
    warned = _records(caplog, logging.WARNING)
    assert len(warned) == 1, warned
    assert REG in warned[0] and "a 403 revoked not signed by the registry's key" in warned[0]
    assert not _records(caplog, logging.ERROR)
    assert "not signed by the registry's key" in (agent.last_error or "")
    reg.revoked = False  # it answers again: a later forgery is news again
    assert await agent.step() == 7.0 and agent.last_error is None
    reg.revoked = True
    await agent.step()
    assert len(_records(caplog, logging.WARNING)) == 2


async def test_the_registrys_signed_revocation_is_honoured(
    caplog: pytest.LogCaptureFixture, key: Ed25519PrivateKey
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg = SigningRegistry(key)
    agent = _agent(reg, reg.signer.public_key)
    await agent.step()
    reg.revoked = True
    assert await agent.step() == pytest.approx(60.0, abs=2)  # the first re-check in a minute
    assert REG in agent.revoked and not agent.registered
    (error,) = _records(caplog, logging.ERROR)
    assert error.startswith(f"the registry at {REG} revoked this node")
    assert not [m for m in _records(caplog, logging.WARNING) if "not signed" in m]


async def test_a_registrations_unsigned_revoked_is_an_ordinary_refusal(
    caplog: pytest.LogCaptureFixture, key: Ed25519PrivateKey
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg = SigningRegistry(key)
    reg.revoked, reg.how = True, "unsigned"
    agent = _agent(reg, reg.signer.public_key, backoff=Backoff(initial_s=1, factor=2, cap_s=5))
    assert [await agent.step() for _ in range(4)] == [1, 2, 4, 5]  # the backoff, not 1 min
    assert reg.paths() == ["POST /mesh/nodes"] * 4 and REG not in agent.revoked
    warned = [m for m in _records(caplog, logging.WARNING) if "not signed" in m]
    assert len(warned) == 1 and REG in warned[0] and "a register" in warned[0]
    assert not _records(caplog, logging.ERROR)
    reg.how = "signed"  # the registry's own answer to a registration: honoured
    assert await agent.step() == pytest.approx(60.0, abs=2) and REG in agent.revoked


async def test_without_a_registry_key_yet_an_unsigned_revoked_is_honoured(
    caplog: pytest.LogCaptureFixture, key: Ed25519PrivateKey
) -> None:
    """First contact (no key pinned nor learned): nothing to check it with, so as before
    (``node/agent.py``'s docstring says why)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg = SigningRegistry(key)
    reg.revoked, reg.how = True, "unsigned"
    agent = _agent(reg, None)
    assert await agent.step() == pytest.approx(60.0, abs=2)
    assert REG in agent.revoked and len(_records(caplog, logging.ERROR)) == 1
