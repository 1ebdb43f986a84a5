"""Signed health challenges (core/health_proof.py): the node signs only its own
well-formed, fresh challenge; the registry accepts only the signature of the challenge
it sent, by the key of the node it checked."""

from __future__ import annotations

import itertools
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.health_proof import (
    HDR_KEY,
    HDR_NODE,
    HDR_NONCE,
    HDR_REGISTRY,
    HDR_SIGNATURE,
    HDR_TIME,
    HEALTH_DOMAIN,
    MAX_SKEW_S,
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
NOW_MS = 1_800_000_000_000
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


def test_each_failed_proof_says_why_in_the_operators_words() -> None:
    victim, other = _prover(), _prover()
    ch = new_challenge("registry-a", victim.node_id, NOW, _random)
    mine = victim.answer(ch.headers(), NOW)
    theirs = other.answer(
        Challenge(ch.registry_id, other.node_id, ch.ts_ms, ch.nonce).headers(), NOW
    )
    none = (
        "no signed health proof (node software older than the signed health check: "
        "upgrade the node; or a server that does not hold the node's key)"
    )
    assert check_proof(ch, {}) == none
    assert check_proof(ch, {HDR_KEY: mine[HDR_KEY]}) == none  # one of the two: none
    assert check_proof(ch, {HDR_SIGNATURE: mine[HDR_SIGNATURE]}) == none
    assert check_proof(ch, {**mine, HDR_KEY: "AAAA"}) == (
        "its health proof's key is not an Ed25519 public key"
    )
    assert check_proof(ch, theirs) == "its health proof is signed by another node's key"
    assert check_proof(ch, {**mine, HDR_SIGNATURE: "AAAA"}) == (
        "its health proof's signature is not an Ed25519 signature"
    )
    assert check_proof(ch, {**mine, HDR_SIGNATURE: theirs[HDR_SIGNATURE]}) == (
        "its health proof does not verify for this challenge"
    )


def test_the_signed_bytes_are_the_domain_then_each_field_length_prefixed() -> None:
    ch = Challenge("reg", "node-1", 1_800_000_000_000, bytes(range(16)))
    assert health_bytes(ch) == (
        HEALTH_DOMAIN
        + b"\x00\x03reg"
        + b"\x00\x06node-1"
        + struct.pack(">Q", 1_800_000_000_000)
        + b"\x00\x10"
        + bytes(range(16))
    )


@pytest.mark.parametrize(
    ("ts_ms", "nonce_bytes", "ok"),
    [
        (0, 32, True),
        (2**63 - 1, 32, True),
        (-1, 32, False),
        (2**63, 32, False),
        (NOW_MS, 16, True),
        (NOW_MS, 64, True),
        (NOW_MS, 15, False),
        (NOW_MS, 65, False),
    ],
)
def test_a_challenge_is_signed_at_the_edges_of_its_bounds_not_past_them(
    ts_ms: int, nonce_bytes: int, ok: bool
) -> None:
    ch = Challenge("reg", "node-1", ts_ms, b"n" * nonce_bytes)
    if ok:
        tail = struct.pack(">Q", ts_ms) + bytes([0, nonce_bytes]) + ch.nonce
        assert health_bytes(ch).endswith(tail)
        assert parse_challenge(ch.headers()) == ch  # and read back from its headers
    else:
        with pytest.raises(ValueError):
            health_bytes(ch)
        assert parse_challenge(ch.headers()) is None


@pytest.mark.parametrize(
    "time_text", ["9223372036854775808", "9999999999999999999", "00000000000000000001"]
)
def test_a_time_past_2_63_or_of_more_than_19_digits_is_no_challenge(time_text: str) -> None:
    good = Challenge("reg", "node-1", 1, b"n" * 16).headers()
    assert parse_challenge({**good, HDR_TIME: time_text[1:]}) is not None  # 18-19 digits
    assert parse_challenge({**good, HDR_TIME: time_text}) is None


@pytest.mark.parametrize("missing", [HDR_REGISTRY, HDR_NODE, HDR_TIME, HDR_NONCE])
def test_a_challenge_missing_any_one_header_is_none(missing: str) -> None:
    good = Challenge("reg", "node-1", 1, b"n" * 16).headers()
    assert parse_challenge({k: v for k, v in good.items() if k != missing}) is None


def test_a_nonce_whose_text_ends_in_x_is_read_back_whole() -> None:
    nonce = bytes(17) + bytes([23])  # 18 bytes: no padding; the last 6 bits are 23, "X"
    ch = Challenge("reg", "node-1", 1, nonce)
    assert ch.headers()[HDR_NONCE].endswith("X")
    assert parse_challenge(ch.headers()) == ch


def test_a_challenge_exactly_max_skew_old_or_ahead_is_answered() -> None:
    node = _prover()
    for at in (NOW - MAX_SKEW_S, NOW + MAX_SKEW_S):
        ch = new_challenge("registry-a", node.node_id, at, _random)
        assert check_proof(ch, node.answer(ch.headers(), NOW)) is None
