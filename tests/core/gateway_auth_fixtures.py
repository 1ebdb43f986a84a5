"""Signed gateway requests for the gateway-auth tests (``test_gateway_auth*.py``): a node, a
path and body, the registry's signer, a node's verifier and a session with it."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.gateway_auth import (
    GatewaySigner,
    GatewayVerifier,
)
from LLM_Mesh.core.gateway_session import NodeKx
from LLM_Mesh.errors import BadSignature, ReplayedMessage, StaleMessage

NOW = 1_700_000_000.0
NODE = "node-abc"
PATH = "/v1/chat/completions"
BODY = b'{"model":"m","messages":[]}'


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
def signer() -> GatewaySigner:
    return GatewaySigner(Ed25519PrivateKey.generate(), lambda: NOW)


def verifier(signer: GatewaySigner, **kw: object) -> GatewayVerifier:
    return GatewayVerifier(signer.public_key, NODE, **kw)  # type: ignore[arg-type]


# --- the session key (HMAC) path ------------------------------------------------------


def session_verifier(
    signer: GatewaySigner, node: str = NODE, kx: NodeKx | None = None
) -> GatewayVerifier:
    """A node's verifier that agreed a session key with ``signer`` (as at registration)."""
    kx = kx or NodeKx()
    answer = signer.kx_answer(node, kx.public_key)
    assert answer is not None
    v = GatewayVerifier(signer.public_key, node)
    v.session_key = kx.agree(v.key, v.registry_id, node, answer[0], answer[1])
    assert v.session_key is not None
    return v


def refused(v: GatewayVerifier, headers: dict[str, str], now: float = NOW, path: str = PATH) -> str:
    with pytest.raises((BadSignature, StaleMessage, ReplayedMessage)) as exc:
        v.verify(headers, path, BODY, now)
    return str(exc.value)
