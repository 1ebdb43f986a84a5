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
    is_node_id,
    new_secret,
    node_id_for,
    parse_signed,
    public_key_of,
    secret_matches,
    sha256_hex,
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


def test_every_derived_id_has_the_node_id_shape_and_little_else_has() -> None:
    for i in range(200):
        assert is_node_id(node_id_for(hashlib.sha256(bytes([i])).digest()))
    good = node_id_for(bytes(range(32)))
    for bad in ["", "node-", good[:-1], good + "a", good.upper(), "Node-" + good[5:],
                good[:-1] + "1", good[:-1] + "\u202e", "node-nobody", "x" + good[1:]]:  # fmt: skip
        assert not is_node_id(bad), bad


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


def _refusal(headers: dict[str, str]) -> str:
    with pytest.raises(BadSignature) as exc:
        parse_signed(headers)
    return str(exc.value)


def test_sequence_numbers_are_the_clock_in_microseconds_and_start_after_zero() -> None:
    s = signer()
    assert s.headers(MessageKind.HEARTBEAT, b"")["X-Mesh-Seq"] == "1800000000000000"
    stuck = signer(0.0)  # a clock at the epoch: the sequence still counts 1, 2, 3
    assert [stuck.headers(MessageKind.HEARTBEAT, b"")["X-Mesh-Seq"] for _ in range(3)] == [
        "1", "2", "3",
    ]  # fmt: skip


def test_keys_and_signatures_travel_as_unpadded_base64url() -> None:
    headers = signer().headers(MessageKind.REGISTER, b"")
    assert len(headers[HDR_PUBLIC_KEY]) == 43 and "=" not in headers[HDR_PUBLIC_KEY]
    assert len(headers[HDR_SIGNATURE]) == 86 and "=" not in headers[HDR_SIGNATURE]


def test_the_largest_sequence_number_is_the_largest_int64() -> None:
    headers = signer().headers(MessageKind.HEARTBEAT, b"")
    headers["X-Mesh-Seq"] = str(2**63 - 1)
    assert parse_signed(headers).seq == 2**63 - 1
    for too_big in (str(2**63), "0" * 19 + "1"):  # 20 characters, even with a small value
        headers["X-Mesh-Seq"] = too_big
        assert _refusal(headers) == (
            f"X-Mesh-Seq must be a non-negative whole number, got {too_big!r}"
        )


def test_each_malformed_signature_header_is_refused_saying_which() -> None:
    base = signer().headers(MessageKind.HEARTBEAT, b"")
    assert _refusal({**base, "X-Mesh-Timestamp": "  "}) == (
        "unsigned node message: the X-Mesh-Timestamp header is missing"
    )
    assert _refusal({**base, "X-Mesh-Seq": "x" * 50}) == (
        f"X-Mesh-Seq must be a non-negative whole number, got {'x' * 40!r}"
    )
    assert _refusal({**base, "X-Mesh-Node-Id": "n" * 129}) == "X-Mesh-Node-Id is not a node id"
    assert _refusal({**base, "X-Mesh-Node-Id": "a\nb"}) == "X-Mesh-Node-Id is not a node id"
    assert parse_signed({**base, "X-Mesh-Node-Id": "n" * 128}).signer == "n" * 128
    assert _refusal({**base, HDR_SIGNATURE: "***"}) == "X-Mesh-Signature is not base64url"
    with pytest.raises(BadSignature) as exc:
        decode_public_key("AAAA")
    assert str(exc.value) == "X-Mesh-Public-Key is not an Ed25519 public key (not 32 bytes)"


def test_each_failed_verification_says_why() -> None:
    s, other = signer(), signer()
    key = decode_public_key(s.public_key)
    msg = parse_signed(s.headers(MessageKind.HEARTBEAT, b""))
    with pytest.raises(BadSignature) as bad:
        verify_signed(msg, key, MessageKind.HEARTBEAT, s.node_id, b"changed", NOW)
    assert str(bad.value) == (
        f"the signature of this heartbeat does not verify with the key of {s.node_id}"
    )
    with pytest.raises(StaleMessage) as stale:
        verify_signed(msg, key, MessageKind.HEARTBEAT, s.node_id, b"", NOW - 300)
    assert str(stale.value) == (
        "the heartbeat's timestamp is +300 s from the registry's clock (at most ±120 s): "
        "check the node's clock"
    )
    on_other = parse_signed(s.headers(MessageKind.HEARTBEAT, b"", target=other.node_id))
    with pytest.raises(NodeIdMismatch) as mismatch:
        verify_signed(on_other, key, MessageKind.HEARTBEAT, other.node_id, b"", NOW)
    assert str(mismatch.value) == f"node {s.node_id} may not act on node {other.node_id}"


def test_signed_fields_must_be_single_lines_and_keys_32_bytes() -> None:
    from LLM_Mesh.core.identity import encode_public_key

    for signer_id, target, name in (("a\nb", "t", "signer"), ("s", "", "target")):
        with pytest.raises(ValueError) as exc:
            signed_bytes(MessageKind.HEARTBEAT, signer_id, target, 1, 1, b"")
        assert str(exc.value) == f"{name} must be a non-empty single line"
    for call in (lambda: encode_public_key(b"x" * 31), lambda: node_id_for(b"x" * 33)):
        with pytest.raises(ValueError) as exc:
            call()
        assert str(exc.value) == "an Ed25519 public key is 32 bytes"


def test_a_secret_carries_256_random_bits() -> None:
    secret = new_secret("lmo")
    assert len(secret) == len("lmo_") + 43  # 32 bytes in unpadded base64url
    assert len(base64.urlsafe_b64decode(secret[4:] + "=")) == 32


@pytest.mark.parametrize("data", [b"", b"a", b"x" * 55, b"x" * 64, b"x" * 3000, "é✓".encode()])
def test_sha256_hex_is_hashlib_sha256(data: bytes) -> None:
    """``sha256_hex`` copies one empty state: every call the digest of its own data only
    (the state copied is never updated)."""
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()  # twice: nothing carried over
    assert hash_secret("lmk_abc") == hashlib.sha256(b"lmk_abc").hexdigest()
