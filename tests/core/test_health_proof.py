"""Signed health challenges (core/health_proof.py): the node signs only its own
well-formed, fresh challenge; the registry accepts only the signature of the challenge
it sent, by the key of the node it checked."""

from __future__ import annotations

import itertools

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.health_proof import (
    HDR_KEY,
    HDR_NONCE,
    HDR_SIGNATURE,
    HDR_TIME,
    HEALTH_DOMAIN,
    Challenge,
    HealthProver,
    check_proof,
    health_bytes,
    new_challenge,
    parse_challenge,
)
from LLM_Mesh.core.identity import MessageKind, signed_bytes
from LLM_Mesh.core.receipt import node_receipt_bytes

NOW = 1_800_000_000.0
_counter = itertools.count()


def _random(n: int) -> bytes:
    return next(_counter).to_bytes(4, "big") * (n // 4)


def _prover() -> HealthProver:
    return HealthProver(Ed25519PrivateKey.generate())


def test_an_answer_to_the_challenge_sent_verifies() -> None:
    node = _prover()
    ch = new_challenge("registry-a", node.node_id, NOW, _random)
    proof = node.answer(ch.headers(), NOW + 1)
    assert set(proof) == {HDR_KEY, HDR_SIGNATURE}
    assert check_proof(ch, proof) is None


def test_a_replayed_answer_to_an_earlier_challenge_fails() -> None:
    node = _prover()
    old = new_challenge("registry-a", node.node_id, NOW, _random)
    proof = node.answer(old.headers(), NOW)
    fresh = new_challenge("registry-a", node.node_id, NOW + 300, _random)
    assert "does not verify" in str(check_proof(fresh, proof))
    # the same nonce at a later time is another challenge too
    later = Challenge(old.registry_id, old.node_id, old.ts_ms + 1, old.nonce)
    assert check_proof(later, proof) is not None


def test_an_answer_made_for_another_registry_fails() -> None:
    node = _prover()
    ch = new_challenge("registry-b", node.node_id, NOW, _random)
    proof = node.answer(ch.headers(), NOW)
    mine = Challenge("registry-a", ch.node_id, ch.ts_ms, ch.nonce)
    assert "does not verify" in str(check_proof(mine, proof))


def test_another_nodes_key_or_signature_fails() -> None:
    """One server holding one node's key answers for another node id: its proof is
    signed by a key that is not the checked id's; a proof of the right key copied over
    another node's signature does not verify."""
    victim, other = _prover(), _prover()
    ch = new_challenge("registry-a", victim.node_id, NOW, _random)
    for_other = Challenge(ch.registry_id, other.node_id, ch.ts_ms, ch.nonce)
    proof = other.answer(for_other.headers(), NOW)
    assert "another node's key" in str(check_proof(ch, proof))
    forged = {HDR_KEY: victim.public_key, HDR_SIGNATURE: proof[HDR_SIGNATURE]}
    assert "does not verify" in str(check_proof(ch, forged))


def test_no_proof_or_a_malformed_one_fails() -> None:
    node = _prover()
    ch = new_challenge("registry-a", node.node_id, NOW, _random)
    assert "no signed health proof" in str(check_proof(ch, {}))
    assert "upgrade the node" in str(check_proof(ch, {}))  # what the registry's operator reads
    assert "not an Ed25519 public key" in str(check_proof(ch, {HDR_KEY: "x", HDR_SIGNATURE: "y"}))
    bad_sig = {HDR_KEY: node.public_key, HDR_SIGNATURE: "A" * 10}
    assert "not an Ed25519 signature" in str(check_proof(ch, bad_sig))


def test_the_node_signs_only_its_own_fresh_well_formed_challenge() -> None:
    """No signing oracle: another id, a stale or future time, a nonce too short or too long,
    ids that are not one short token, or a missing header get no signature."""
    node = _prover()
    good = new_challenge("registry-a", node.node_id, NOW, _random).headers()
    assert node.answer(good, NOW)
    cases = [
        {**good, "X-Mesh-Health-Node": "node-someone-else"},
        {**good, HDR_TIME: str(int((NOW - 121) * 1000))},
        {**good, HDR_TIME: str(int((NOW + 121) * 1000))},
        {**good, HDR_TIME: "²"},
        {**good, HDR_NONCE: "AAAA"},  # 3 bytes
        {**good, HDR_NONCE: "A" * 200},  # 150 bytes
        {**good, "X-Mesh-Health-Registry": "reg a\nheartbeat"},
        {**good, "X-Mesh-Health-Registry": "r" * 129},
        {k: v for k, v in good.items() if k != HDR_NONCE},
    ]
    for headers in cases:
        assert node.answer(headers, NOW) == {}, headers
    assert parse_challenge({}) is None


def test_the_domain_separates_a_health_proof_from_every_other_node_signature() -> None:
    ch = Challenge("registry-a", "node-a", 1, b"\x00" * 16)
    data = health_bytes(ch)
    assert data.startswith(HEALTH_DOMAIN)
    receipt = node_receipt_bytes("registry-a", "node-a", "req-1", "m", 1, 1, "0" * 64)
    assert not receipt.startswith(HEALTH_DOMAIN) and not data.startswith(receipt[:25])
    for kind in MessageKind:
        first = signed_bytes(kind, "node-a", "node-a", 1, 1, b"").split(b"\n")[0] + b"\n"
        assert not data.startswith(first)
