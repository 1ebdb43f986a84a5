"""A node several rotations behind (``core/key_chain.py``): it follows the chain of signed
rotation statements (``key_rotations``) from the key it pinned to the answer's key; a
forged link, a chain over the bound or a loop is refused, with the reason in its WARNING."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.key_chain import MAX_CHAIN_LINKS
from LLM_Mesh.core.key_rotation import rotation_statement
from LLM_Mesh.node.gateway_pin import pin_path
from tests.node.test_gateway_guard import Registry
from tests.node.test_gateway_pin import Switchable, _reregister, _served, _start


def chain_of(keys: list[Ed25519PrivateKey]) -> list[dict[str, Any]]:
    """Each key's statement naming the next, oldest first."""
    return [rotation_statement(old, new) for old, new in itertools.pairwise(keys)]


class Chained(Registry):
    """A registry whose answers carry ``chain`` as ``key_rotations`` (and its last link as
    ``key_rotation``, as the registry sends them)."""

    def __init__(self, key: Ed25519PrivateKey, chain: list[dict[str, Any]]) -> None:
        super().__init__(key)
        self.chain = chain

    def handler(self, request: httpx.Request) -> httpx.Response:
        answer = super().handler(request)
        body = json.loads(answer.content)
        if request.url.path == "/mesh/nodes":
            body["key_rotations"] = self.chain
            body["key_rotation"] = self.chain[-1] if self.chain else None
        return httpx.Response(200, json=body)


@pytest.mark.parametrize("behind", [2, 3])
async def test_a_node_rotations_behind_follows_the_signed_chain(
    settings: Settings, behind: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-03: a node two rotations behind (offline through both) was refused by
    its registry until its operator ran forget-gateway: one statement, one step."""
    keys = [Ed25519PrivateKey.generate() for _ in range(behind + 1)]
    first = Registry(keys[0])
    # the registry keeps one more link than this node needs, from before it pinned
    current = Chained(keys[-1], chain_of([Ed25519PrivateKey.generate(), *keys]))
    at = Switchable(first)
    svc, http = await _start(settings, at)
    try:
        assert await _served(svc, first, "f1") == 200
        at.answering = current
        with caplog.at_level(logging.INFO, logger="LLM_Mesh.node.gateway"):
            await _reregister(svc)
        assert await _served(svc, current, "c1") == 200
        assert await _served(svc, first, "f2") == 401
        assert pin_path(settings).read_text().strip() == current.signer.public_key
        said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
        assert f"rotated {behind} times" in said
        assert first.signer.registry_id in said and current.signer.registry_id in said
    finally:
        await svc.stop()
        await http.aclose()


def _forged_link(keys: list[Ed25519PrivateKey]) -> list[dict[str, Any]]:
    """The middle link signed by another key than the one it names as its signer."""
    chain = chain_of(keys)
    forged = rotation_statement(Ed25519PrivateKey.generate(), keys[2])
    chain[1] = {**forged, "previous_public_key": chain[1]["previous_public_key"]}
    return chain


def _over_the_bound(keys: list[Ed25519PrivateKey]) -> list[dict[str, Any]]:
    """A valid chain, but longer than any registry keeps."""
    more = [Ed25519PrivateKey.generate() for _ in range(MAX_CHAIN_LINKS)]
    return chain_of([keys[0], *more, keys[-1]])


def _a_loop(keys: list[Ed25519PrivateKey]) -> list[dict[str, Any]]:
    """Every link signed, but a key comes back: pinned → 1 → pinned → ... → current."""
    return chain_of([keys[0], keys[1], keys[0], keys[2], keys[3]])


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_forged_link, "is not that key's signature (forged)"),
        (_over_the_bound, f"over the bound of {MAX_CHAIN_LINKS}"),
        (_a_loop, "the rotation chain loops"),
    ],
    ids=["forged_link", "over_the_bound", "loop"],
)
async def test_a_chain_that_does_not_hold_is_refused_with_its_reason(
    settings: Settings, forge: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(4)]
    first = Registry(keys[0])
    intruder = Chained(keys[-1], forge(keys))
    at = Switchable(first)
    svc, http = await _start(settings, at)
    try:
        at.answering = intruder
        await _reregister(svc)
        assert await _served(svc, intruder, "i1") == 401
        assert await _served(svc, first, "f1") == 200
        assert pin_path(settings).read_text().strip() == first.signer.public_key
        said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert reason in said
        assert "llm-mesh node keys forget-gateway" in said
    finally:
        await svc.stop()
        await http.aclose()


async def test_an_unvouched_key_says_so_and_names_forget_gateway(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A lost registry.key: the new key comes with no statement at all (nothing can sign
    for it). The WARNING says so and names the operator's command."""
    first = Registry(Ed25519PrivateKey.generate())
    remade = Registry(Ed25519PrivateKey.generate())
    at = Switchable(first)
    svc, http = await _start(settings, at)
    try:
        at.answering = remade
        await _reregister(svc)
        assert await _served(svc, remade, "r1") == 401
        said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert "no rotation statement (a lost registry.key?)" in said
        assert first.signer.registry_id in said and remade.signer.registry_id in said
        assert "llm-mesh node keys forget-gateway" in said
    finally:
        await svc.stop()
        await http.aclose()
