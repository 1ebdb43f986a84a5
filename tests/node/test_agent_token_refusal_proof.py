"""A node that knows its registry's key stops (exit 78) on a 401 ``invalid_credential`` only
when the registry key signed it over that very registration, in the token refusal's domain
(``core/revocation_proof.py``, ``token=True``). Found 2026-12-05 (signed401): the 401 was
unsigned, so such a node could only retry an unknown token for ever (a forged one must not
stop it). Forged (unsigned, another key, a revocation's signature), replayed (the registry's
own answer to an earlier registration) and another node's refusals are retried with the
backoff. MockTransport, no sockets."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.core.revocation_proof import RevocationSigner, RevokedRequest, revoked_request
from LLM_Mesh.node.agent_wire import Backoff
from tests.node.fake_registry import FakeRegistry
from tests.node.test_agent_revocation_proof import _agent
from tests.node.test_agent_token_refused import UNKNOWN

LOGGER = "LLM_Mesh.node.agent"


class TokenRefusing(FakeRegistry):
    """A registry that does not know the node's operator token; its 401, by :attr:`how`:
    ``signed`` (as the real one), ``unsigned``, ``other_key``, ``replayed`` (its signed
    answer to this node's earlier registration), ``other_node`` (signed for another node's registration), ``revocation``
    (the registry key's signature, but a revocation's, over the same registration)."""

    def __init__(self, key: Ed25519PrivateKey, how: str) -> None:
        super().__init__()
        self.signer, self.how = RevocationSigner(key), how

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path, None))
        error: dict[str, Any] = {
            "message": UNKNOWN, "type": "authentication_error", "code": "invalid_credential"
        }  # fmt: skip
        sent = revoked_request(MessageKind.REGISTER, request.headers)
        assert sent is not None
        if self.how == "other_node":
            sent = RevokedRequest("node-other", sent.kind, sent.seq, sent.ts_ms, sent.token_sha256)
        if self.how == "replayed":
            sent = RevokedRequest(
                sent.node_id, sent.kind, sent.seq - 1, sent.ts_ms, sent.token_sha256
            )
        signer = self.signer
        if self.how == "other_key":
            signer = RevocationSigner(Ed25519PrivateKey.generate())
        if self.how == "revocation":
            error["token_refusal"] = signer.proof(sent, UNKNOWN)  # the other domain's
        elif self.how != "unsigned":
            error.update(signer.fields(sent, UNKNOWN, token=True))
        return httpx.Response(401, json={"error": error})


async def test_the_registrys_signed_token_refusal_stops_the_node(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg = TokenRefusing(Ed25519PrivateKey.generate(), "signed")
    told: list[str] = []
    agent = _agent(reg, reg.signer.public_key, follows=False, on_fatal=told.append)
    assert await agent.register() is False
    assert told == [agent.fatal] and UNKNOWN in (agent.fatal or "")  # before: retried
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "not registering again" in errors[0]


@pytest.mark.parametrize("how", ["unsigned", "other_key", "replayed", "other_node", "revocation"])
async def test_a_token_refusal_not_signed_for_this_registration_is_retried(
    caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reg = TokenRefusing(Ed25519PrivateKey.generate(), how)
    told: list[str] = []
    agent = _agent(reg, reg.signer.public_key, on_fatal=told.append,
                   backoff=Backoff(initial_s=1, factor=2, cap_s=5))  # fmt: skip
    assert [await agent.step() for _ in range(4)] == [1, 2, 4, 5]  # the backoff, as before
    assert reg.paths() == ["POST /mesh/nodes"] * 4
    assert agent.fatal is None and told == []
    assert UNKNOWN in (agent.last_error or "") and "not honoured" in (agent.last_error or "")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([m for m in warned if "not honoured" in m]) == 1  # its words once
