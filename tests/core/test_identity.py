"""Node identity rules (core/identity.py): id derivation, canonical bytes, verification."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import (
    DOMAIN,
    HDR_PUBLIC_KEY,
    HDR_SIGNATURE,
    MessageKind,
    NodeSigner,
    decode_public_key,
    hash_secret,
    new_secret,
    node_id_for,
    parse_signed,
    public_key_of,
    secret_matches,
    signed_bytes,
    verify_signed,
)
from LLM_Mesh.errors import BadSignature, NodeIdMismatch, StaleMessage

NOW = 1_800_000_000.0


def signer(now: float = NOW) -> NodeSigner:
    return NodeSigner(Ed25519PrivateKey.generate(), lambda: now)


def test_node_id_is_the_documented_derivation() -> None:
    raw = bytes(range(32))
    digest = hashlib.sha256(b"llm-mesh/node-id/v1\x00" + raw).digest()
    expected = "node-" + base64.b32encode(digest).decode()[:26].lower()
    assert node_id_for(raw) == expected
    assert node_id_for(bytes(32)) != expected
    with pytest.raises(ValueError):
        node_id_for(b"short")


def test_signer_id_matches_its_key_and_headers_verify() -> None:
    s = signer()
    assert s.node_id == node_id_for(public_key_of(s._key))
    body = b'{"x":1}'
    msg = parse_signed(s.headers(MessageKind.REGISTER, body))
    assert msg.signer == s.node_id and msg.public_key == s.public_key
    key = decode_public_key(msg.public_key)
    verify_signed(msg, key, MessageKind.REGISTER, s.node_id, body, NOW)


def test_signed_bytes_are_canonical_and_domain_separated() -> None:
    data = signed_bytes(MessageKind.HEARTBEAT, "node-a", "node-b", 7, 1234, b"{}")
    assert data == b"\n".join(
        [DOMAIN + b"heartbeat", b"node-a", b"node-b", b"7", b"1234",
         hashlib.sha256(b"{}").hexdigest().encode()]
    )  # fmt: skip
    assert data != signed_bytes(MessageKind.DEREGISTER, "node-a", "node-b", 7, 1234, b"{}")
    with pytest.raises(ValueError):
        signed_bytes(MessageKind.HEARTBEAT, "a\nb", "b", 1, 1, b"")


def test_sequence_numbers_always_grow_even_if_the_clock_steps_back() -> None:
    now = [NOW]
    s = NodeSigner(Ed25519PrivateKey.generate(), lambda: now[0])
    seqs = []
    for step in (0.0, 0.0, -5.0, 10.0):
        now[0] += step
        seqs.append(int(parse_signed(s.headers(MessageKind.HEARTBEAT, b"")).seq))
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # a restarted node (new signer, same key) starts above what it sent before: unix µs
    assert seqs[0] >= int(NOW * 1_000_000)


@pytest.mark.parametrize("mutate", ["body", "kind", "target", "key"])
def test_verification_fails_on_any_change(mutate: str) -> None:
    s, other = signer(), signer()
    body = b'{"in_flight":1}'
    msg = parse_signed(s.headers(MessageKind.HEARTBEAT, body))
    key = decode_public_key(s.public_key)
    kind, target = MessageKind.HEARTBEAT, s.node_id
    if mutate == "body":
        body = b'{"in_flight":2}'
    elif mutate == "kind":
        kind = MessageKind.DEREGISTER
    elif mutate == "target":
        target = other.node_id
    else:
        key = decode_public_key(other.public_key)
    with pytest.raises(BadSignature):
        verify_signed(msg, key, kind, target, body, NOW)


def test_time_window_is_plus_minus_120_s() -> None:
    s = signer()
    msg = parse_signed(s.headers(MessageKind.HEARTBEAT, b""))
    key = decode_public_key(s.public_key)
    verify_signed(msg, key, MessageKind.HEARTBEAT, s.node_id, b"", NOW + 120)
    verify_signed(msg, key, MessageKind.HEARTBEAT, s.node_id, b"", NOW - 120)
    for now in (NOW + 120.5, NOW - 120.5):
        with pytest.raises(StaleMessage):
            verify_signed(msg, key, MessageKind.HEARTBEAT, s.node_id, b"", now)


def test_acting_on_another_node_is_a_mismatch() -> None:
    s, other = signer(), signer()
    msg = parse_signed(s.headers(MessageKind.HEARTBEAT, b"", target=other.node_id))
    with pytest.raises(NodeIdMismatch):
        verify_signed(
            msg, decode_public_key(s.public_key), MessageKind.HEARTBEAT, other.node_id, b"", NOW
        )


@pytest.mark.parametrize(
    ("header", "value"),
    [("X-Mesh-Seq", "1e9"), ("X-Mesh-Timestamp", ""), (HDR_SIGNATURE, "***"),
     ("X-Mesh-Seq", "9" * 30)],
)  # fmt: skip
def test_malformed_headers_are_bad_signatures(header: str, value: str) -> None:
    headers = signer().headers(MessageKind.HEARTBEAT, b"")
    headers[header] = value
    with pytest.raises(BadSignature):
        parse_signed(headers)


def test_public_key_must_be_32_bytes() -> None:
    with pytest.raises(BadSignature):
        decode_public_key("AAAA")
    headers = signer().headers(MessageKind.REGISTER, b"")
    assert len(base64.urlsafe_b64decode(headers[HDR_PUBLIC_KEY] + "=")) == 32


def test_secrets_are_random_and_only_hashes_compare() -> None:
    a, b = new_secret("lmo"), new_secret("lmo")
    assert a != b and a.startswith("lmo_") and len(a) > 40
    assert secret_matches(a, hash_secret(a))
    assert not secret_matches(b, hash_secret(a))
    assert not secret_matches(None, hash_secret(a)) and not secret_matches(a, None)
