"""core/receipt.py: the node's receipt, canonical bytes, the gateway's countersignature."""

from __future__ import annotations

import hashlib

import pytest

from LLM_Mesh.core.identity import MessageKind, signed_bytes
from LLM_Mesh.core.receipt import (
    NodeReceiptSigner,
    PartStatus,
    ReceiptSigner,
    node_receipt_bytes,
    unb64url,
)
from tests.core.receipt_fixtures import (
    HASH,
    NODE_KEY,
    REGISTRY_ID,
    REGISTRY_KEY,
    TEXT,
    check,
    node_claim,
    observed,
)


def test_output_hash_is_sha256_of_utf8() -> None:
    assert hashlib.sha256(TEXT.encode("utf-8")).hexdigest() == HASH


def test_node_receipt_carries_its_key_and_a_signature_over_canonical_bytes() -> None:
    signer = NodeReceiptSigner(NODE_KEY)
    claim = node_claim(signer)
    assert claim["node_id"] == signer.node_id and claim["node_key"] == signer.node_key
    data = node_receipt_bytes(REGISTRY_ID, signer.node_id, "req-1", "gemma-3-270m", 10, 5, HASH)
    assert data.startswith(b"llm-mesh/v1/node-receipt\x00")
    NODE_KEY.public_key().verify(unb64url(claim["signature"]), data)


def test_the_domain_separates_a_receipt_from_every_node_message() -> None:
    data = node_receipt_bytes(REGISTRY_ID, "node-a", "req-1", "m", 1, 1, HASH)
    for kind in MessageKind:
        other = signed_bytes(kind, "node-a", "node-a", 1, 1, b"")
        assert not data.startswith(other.split(b"\n")[0] + b"\n")
    assert len({k.value for k in MessageKind}) == len(MessageKind)


def test_countersign_signs_the_canonical_bytes_and_hashes_them() -> None:
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1_700_000_000.5)
    part = check(observed(node_claim()))
    receipt, receipt_hash = signer.countersign("req-1", "gemma-3-270m", 10, 5, HASH, [part])
    assert receipt.time_ms == 1_700_000_000_500 and receipt.registry_id == REGISTRY_ID
    data = receipt.signed_bytes()
    assert data.startswith(b"llm-mesh/v1/receipt\x00")
    assert receipt_hash == receipt.receipt_hash == hashlib.sha256(data).hexdigest()
    REGISTRY_KEY.public_key().verify(unb64url(receipt.signature), data)
    wire = receipt.to_json(receipt_hash)
    assert wire["receipt_hash"] == receipt_hash and wire["parts"][0]["status"] == "signed"


def test_countersigned_bytes_commit_to_every_part_field() -> None:
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1.0)
    part = check(observed(node_claim()))
    base, _ = signer.countersign("req-1", "m", 10, 5, HASH, [part])
    import dataclasses

    for field, value in [("status", PartStatus.MISSING), ("completion_tokens", 4),
                         ("node_signature", ""), ("reason", "x"), ("node_id", "node-b")]:  # fmt: skip
        other = dataclasses.replace(base, parts=(dataclasses.replace(part, **{field: value}),))
        assert other.signed_bytes() != base.signed_bytes(), field


def test_countersign_refuses_no_parts_and_bad_hashes() -> None:
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1.0)
    with pytest.raises(ValueError):
        signer.countersign("req-1", "m", 1, 1, HASH, [])
    part = check(observed(node_claim()))
    with pytest.raises(ValueError):
        signer.countersign("req-1", "m", 1, 1, HASH.upper(), [part])
    with pytest.raises(ValueError):
        signer.countersign("req-1", "m", -1, 1, HASH, [part])
