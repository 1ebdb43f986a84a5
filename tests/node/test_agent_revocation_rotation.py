"""A revocation signed by a key the registry rotated to since this node pinned its key
(``core/revocation_proof.py``, "A rotated registry key"; ``node/agent.py``). Found
2026-12-05: the node ignored it and heartbeated on at its usual pace forever (a revoked
node never gets the registration answer that would move its pin). Now a node whose pin
was learned honours it when the answer's chain of signed rotations leads from its pin to
the signing key; a forged or foreign chain stays an ordinary refusal with one WARNING
naming why; node.toml's pin (the operator's) honours its own key only. MockTransport."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.core.key_rotation import rotation_statement
from LLM_Mesh.core.revocation_proof import RevocationSigner, TrustedKey
from LLM_Mesh.node.gateway_guard import GatewayGuard
from tests.node.fake_registry import REG
from tests.node.test_agent_revocation_proof import LOGGER, SigningRegistry, _agent, _records

Chain = list[dict[str, str]]


def _chain(keys: list[Ed25519PrivateKey]) -> Chain:
    return [rotation_statement(old, new) for old, new in itertools.pairwise(keys)]


def _public(key: Ed25519PrivateKey) -> str:
    return encode_public_key(public_key_of(key))


@pytest.fixture
def keys() -> list[Ed25519PrivateKey]:
    """The registry's keys, oldest first: the node pinned the first, it signs with the last."""
    return [Ed25519PrivateKey.generate() for _ in range(3)]


def _rotated(keys: list[Ed25519PrivateKey], chain: Chain | None = None) -> SigningRegistry:
    reg = SigningRegistry(keys[-1])
    reg.signer = RevocationSigner(keys[-1], _chain(keys) if chain is None else chain)
    return reg


@pytest.mark.parametrize("kind", ["heartbeat", "register"])
async def test_a_rotated_keys_revocation_is_honoured_along_the_chain(
    caplog: pytest.LogCaptureFixture, keys: list[Ed25519PrivateKey], kind: str
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg = _rotated(keys)
    agent = _agent(reg, _public(keys[0]))
    if kind == "heartbeat":
        assert await agent.step() == 7.0 and agent.registered
    reg.revoked = True
    assert await agent.step() == pytest.approx(60.0, abs=2)  # the first re-check in a minute
    assert REG in agent.revoked and not agent.registered
    (error,) = _records(caplog, logging.ERROR)
    assert error.startswith(f"the registry at {REG} revoked this node")
    assert not _records(caplog, logging.WARNING)


def _forged_link(keys: list[Ed25519PrivateKey]) -> Chain:
    chain = _chain(keys)
    forged = rotation_statement(Ed25519PrivateKey.generate(), keys[2])
    chain[1] = {**forged, "previous_public_key": chain[1]["previous_public_key"]}
    return chain


_CHAINS: dict[str, Callable[[list[Ed25519PrivateKey]], Chain]] = {
    "none": lambda keys: [],
    "forged-link": _forged_link,
    "not-from-the-pin": lambda keys: _chain(keys[1:]),
    "foreign": lambda keys: _chain([Ed25519PrivateKey.generate(), keys[-1]]),
}


@pytest.mark.parametrize("how", [*_CHAINS, "another-key", "configured-pin"])
async def test_a_revocation_no_signed_rotation_leads_to_is_a_failed_heartbeat(
    caplog: pytest.LogCaptureFixture, keys: list[Ed25519PrivateKey], how: str
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    follows = how != "configured-pin"
    reg = _rotated(keys, _CHAINS[how](keys) if how in _CHAINS else None)
    agent = _agent(reg, _public(keys[0]), follows=follows)
    assert await agent.step() == 7.0 and agent.registered
    reg.revoked = True
    if how == "another-key":  # the registry's real (public) chain, another key's signature
        forger = Ed25519PrivateKey.generate()
        reg.signer = RevocationSigner(forger, _chain(keys))
    for _ in range(3):  # every heartbeat at the usual interval, none held back
        assert await agent.step() == 7.0
    assert agent.registered and REG not in agent.revoked
    (warned,) = _records(caplog, logging.WARNING)
    assert "a 403 revoked not signed by the registry's key" in warned
    reason: dict[str, Any] = {
        "none": "carries no rotation",
        "forged-link": "(forged)",
        "not-from-the-pin": "does not reach back to the pinned gateway",
        "foreign": "does not reach back to the pinned gateway",
        "another-key": "does not end at the answer's key",
        "configured-pin": "registry_public_key in node.toml",
    }
    assert reason[how] in warned, warned
    assert not _records(caplog, logging.ERROR)


def test_the_guard_follows_rotations_for_a_learned_pin_only(
    keys: list[Ed25519PrivateKey],
) -> None:
    """``GatewayGuard.trusted_key``, what the agent checks with: the same rule as its pin
    (a learned key moves along a signed chain; node.toml's is the operator's, never moved)."""
    learned = GatewayGuard("node-a", registering=True, wall_clock=lambda: 0.0)
    assert learned.trusted_key is None  # no key yet: nothing to check with (as before)
    learned.pin({"registry_public_key": _public(keys[0])})
    assert learned.trusted_key == TrustedKey(_public(keys[0]), follows_rotations=True)
    configured = GatewayGuard("node-a", registering=True, wall_clock=lambda: 0.0,
                              configured_key=_public(keys[0]))  # fmt: skip
    assert configured.trusted_key == TrustedKey(_public(keys[0]), follows_rotations=False)
