"""core/ed25519.py: one Ed25519 rule for every side that checks a receipt.

The gateway (``check_part``) and the offline verifier (``receipt verify``) accept and refuse
the same signatures: honest ones made by either library, never a small-order key or ``R``,
never a non-canonical ``S`` (the encodings: tests/core/ed25519_encodings.py).
"""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.ed25519 import PublicKey, Signer, key_problem
from LLM_Mesh.core.identity import encode_public_key, node_id_for
from LLM_Mesh.core.receipt import (
    NodeReceiptSigner,
    Part,
    PartStatus,
    ReceiptError,
    ReceiptSigner,
    b64url,
    node_receipt_bytes,
)
from LLM_Mesh.core.receipt_verify import Found, parse_keys, verify
from tests.core.ed25519_encodings import (
    IDENTITY,
    SMALL_ORDER_KEYS,
    anything_signature,
    mixed_order_key,
    non_canonical_s,
    small_order_r_signature,
)
from tests.core.receipt_fixtures import (
    HASH,
    NODE_KEY,
    REGISTRY_ID,
    REGISTRY_KEY,
    check,
    node_claim,
    observed,
)

NODE = NodeReceiptSigner(NODE_KEY)
GATEWAY = ReceiptSigner(REGISTRY_KEY, lambda: 1_800_000_000.0)
KEYS = parse_keys([base64.b64encode(REGISTRY_KEY.public_key().public_bytes_raw()).decode()])
NODE_DATA = node_receipt_bytes(REGISTRY_ID, NODE.node_id, "req-1", "gemma-3-270m", 10, 5, HASH)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


@pytest.mark.parametrize("size", [0, 1, 200, 4096])
def test_both_libraries_make_the_same_signature_and_verify_each_others(size: int) -> None:
    key = Ed25519PrivateKey.generate()
    data = os.urandom(size)
    theirs, ours = key.sign(data), Signer(key).sign(data)
    assert ours == theirs  # RFC 8032 signing is deterministic
    assert PublicKey(_raw(key)).verify(theirs, data)
    key.public_key().verify(ours, data)  # raises when it does not verify
    assert not PublicKey(_raw(key)).verify(theirs, data + b"x")
    assert Signer(key).public_key == _raw(key)


def test_the_receipt_signers_sign_what_cryptography_signs() -> None:
    claim = node_claim()
    assert base64.urlsafe_b64decode(claim["signature"] + "==") == NODE_KEY.sign(NODE_DATA)
    receipt, _ = GATEWAY.countersign("req-1", "m", 10, 5, HASH, [check(observed(claim))])
    wire = base64.urlsafe_b64decode(receipt.signature + "==")
    assert wire == REGISTRY_KEY.sign(receipt.signed_bytes())


@pytest.mark.parametrize("name", sorted(SMALL_ORDER_KEYS))
def test_small_order_and_non_canonical_keys_are_no_keys(name: str) -> None:
    raw = SMALL_ORDER_KEYS[name]
    assert key_problem(raw) is not None
    with pytest.raises(ValueError, match="prime-order subgroup"):
        PublicKey(raw)


def test_a_mixed_order_key_and_a_wrong_length_are_no_keys() -> None:
    assert "prime-order subgroup" in (key_problem(mixed_order_key(NODE_KEY)) or "")
    assert key_problem(bytes(31)) == "an Ed25519 public key is 32 bytes, not 31"
    assert key_problem(_raw(NODE_KEY)) is None


def test_non_canonical_s_small_order_r_and_wrong_lengths_do_not_verify() -> None:
    good = NODE_KEY.sign(NODE_DATA)
    key = PublicKey(_raw(NODE_KEY))
    assert key.verify(good, NODE_DATA)
    assert not key.verify(non_canonical_s(good), NODE_DATA)
    assert not key.verify(small_order_r_signature(NODE_KEY, NODE_DATA), NODE_DATA)
    assert not key.verify(good[:63], NODE_DATA) and not key.verify(good + b"\0", NODE_DATA)


# --- the gateway and the offline verifier agree ----------------------------------------


def _offline(part: Part, signer: ReceiptSigner = GATEWAY, keys: dict[str, bytes] = KEYS) -> str:
    """What ``receipt verify`` says of a receipt countersigned with ``part`` as signed (what
    a gateway that did not check, or checked another way, would have sent)."""
    receipt, h = signer.countersign("req-1", "gemma-3-270m", 10, 5, HASH, [part])
    try:
        verify(Found(receipt.to_json(h)), keys)
    except ReceiptError as exc:
        return exc.reason
    return "valid"


def _signed(signature: bytes, node_key: bytes = b"", node_id: str = NODE.node_id) -> Part:
    key = encode_public_key(node_key) if node_key else NODE.node_key
    return Part(node_id, key, PartStatus.SIGNED, 10, 5, HASH, b64url(signature))


@pytest.mark.parametrize(
    ("forge", "status", "reason", "offline"),
    [
        (lambda sig: sig, PartStatus.SIGNED, "", "valid"),
        (non_canonical_s, PartStatus.INVALID, "signature", "node_signature"),
        # found 2026-12-05: OpenSSL's verify took it (the gateway marked it signed)
        (lambda _: small_order_r_signature(NODE_KEY, NODE_DATA), PartStatus.INVALID,
         "signature", "node_signature"),
    ],
    ids=["honest", "s_plus_l", "small_order_r"],
)  # fmt: skip
def test_gateway_and_offline_verifier_take_and_refuse_the_same_node_signatures(
    forge: object, status: PartStatus, reason: str, offline: str
) -> None:
    assert callable(forge)
    signature = forge(NODE_KEY.sign(NODE_DATA))
    claim = node_claim() | {"signature": b64url(signature)}
    part = check(observed(claim))
    assert (part.status, part.reason) == (status, reason)
    assert _offline(_signed(signature)) == offline


def test_a_small_order_node_key_signs_nothing_the_gateway_or_a_verifier_takes() -> None:
    """Under the neutral key one "signature" fits every message; OpenSSL's verify took it
    (found 2026-12-05: the gateway marked such a part signed)."""
    node_id = node_id_for(IDENTITY)
    claim = node_claim() | {"node_key": encode_public_key(IDENTITY), "node_id": node_id,
                            "signature": b64url(anything_signature())}  # fmt: skip
    part = check(observed(claim, node_id=node_id))
    assert (part.status, part.reason) == (PartStatus.INVALID, "node_key")
    assert _offline(_signed(anything_signature(), IDENTITY, node_id)) == "node_key"


def test_the_gateways_countersignature_is_held_to_the_same_rule() -> None:
    honest = _signed(NODE_KEY.sign(NODE_DATA))
    receipt, h = GATEWAY.countersign("req-1", "gemma-3-270m", 10, 5, HASH, [honest])
    data = receipt.signed_bytes()
    for signature, want in [
        (REGISTRY_KEY.sign(data), "valid"),
        (non_canonical_s(REGISTRY_KEY.sign(data)), "gateway_signature"),
        (small_order_r_signature(REGISTRY_KEY, data), "gateway_signature"),
    ]:
        wire = receipt.to_json(h) | {"signature": b64url(signature)}
        try:
            verify(Found(wire), KEYS)
            got = "valid"
        except ReceiptError as exc:
            got = exc.reason
        assert got == want


def test_a_small_order_registry_key_verifies_no_receipt() -> None:
    """A registry key that is the neutral point: OpenSSL took one "signature" for every
    receipt (found 2026-12-05); under the rule it is no key."""
    keys = parse_keys([base64.b64encode(IDENTITY).decode()])
    (registry_id,) = keys
    receipt, h = GATEWAY.countersign("req-1", "gemma-3-270m", 10, 5, HASH,
                                     [_signed(NODE_KEY.sign(NODE_DATA))])  # fmt: skip
    wire = receipt.to_json(h) | {"registry_id": registry_id}
    wire["signature"] = b64url(anything_signature())
    wire.pop("receipt_hash")
    with pytest.raises(ReceiptError) as exc:
        verify(Found(wire), keys)
    assert exc.value.reason == "gateway_signature"


def test_the_refusal_of_a_small_order_key_in_its_words() -> None:
    """The words a node's operator reads when registration refuses its key."""
    assert key_problem(IDENTITY) == (
        "not the canonical encoding of a point of Ed25519's prime-order subgroup "
        "(a small-order or mixed-order point, or y ≥ p): no key made by Ed25519 key "
        "generation is one"
    )


def test_a_signer_whose_libsodium_derives_another_key_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The two libraries must agree on the key, or signatures would not be the key's."""
    import LLM_Mesh.core.ed25519 as ed25519

    derive, other = ed25519.crypto_sign_seed_keypair, Ed25519PrivateKey.generate()
    monkeypatch.setattr(
        ed25519, "crypto_sign_seed_keypair", lambda _seed: derive(other.private_bytes_raw())
    )
    with pytest.raises(ValueError) as refused:
        Signer(NODE_KEY)
    assert str(refused.value) == "libsodium derived another public key from this seed"
