"""core/receipt_check.py: the gateway's check of each node's part against what it relayed."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core import receipt_check
from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.ed25519 import PublicKey
from LLM_Mesh.core.receipt import (
    PAYABLE,
    NodeReceiptSigner,
    PartStatus,
)
from LLM_Mesh.core.receipt_check import NodeKeys
from tests.core.receipt_fixtures import (
    NODE_KEY,
    OTHER_KEY,
    check,
    node_claim,
    observed,
)


def test_honest_part_is_signed_and_payable() -> None:
    part = check(observed(node_claim()))
    assert part.status is PartStatus.SIGNED and part.payable and not part.reason
    assert part.node_key == NodeReceiptSigner(NODE_KEY).node_key and part.node_signature


@pytest.mark.parametrize(
    ("obs_over", "check_over", "reason"),
    [
        ({"completion_tokens": 6}, {}, "usage"),  # the node signed other counts than it sent
        ({"prompt_tokens": 9}, {}, "usage"),
        ({"output_sha256": output_sha256("Hello, mesh!")}, {}, "output_sha256"),
        ({}, {"request_id": "req-2"}, "request_id"),  # a receipt of another request replayed
        ({}, {"model": "qwen"}, "model"),
        ({}, {"registry_id": "registry-other"}, "registry_id"),
    ],
)
def test_a_receipt_not_matching_what_was_relayed_is_invalid(
    obs_over: dict[str, Any], check_over: dict[str, Any], reason: str
) -> None:
    part = check(observed(node_claim(), **obs_over), **check_over)
    assert (part.status, part.reason) == (PartStatus.INVALID, reason)
    assert not part.payable and part.node_signature == ""
    assert part.node_key == NodeReceiptSigner(NODE_KEY).node_key  # the node's, proven


def test_a_forged_receipt_with_another_key_is_invalid() -> None:
    forged = node_claim(NodeReceiptSigner(OTHER_KEY))  # the other key's own id
    part = check(observed(forged))
    assert (part.status, part.reason) == (PartStatus.INVALID, "node_key")
    assert part.node_key == ""  # the gateway keeps no key the node did not prove


def test_a_receipt_claiming_the_node_id_but_signed_by_another_key_is_invalid() -> None:
    forged = node_claim(NodeReceiptSigner(OTHER_KEY))
    forged["node_id"] = NodeReceiptSigner(NODE_KEY).node_id
    forged["node_key"] = NodeReceiptSigner(NODE_KEY).node_key  # the right key, a wrong signature
    part = check(observed(forged))
    assert (part.status, part.reason) == (PartStatus.INVALID, "signature")
    # the key derives the routed node's id (proven): the part names it (mut34: dropped, lived)
    assert part.node_key == NodeReceiptSigner(NODE_KEY).node_key


@pytest.mark.parametrize(
    "claim",
    [
        "a string",
        [1, 2],
        {"signature": "x"},
        {"node_key": "x", "signature": 5},
    ],
)
def test_malformed_claims_are_invalid(claim: Any) -> None:
    part = check(observed(claim))
    assert (part.status, part.reason) == (PartStatus.INVALID, "malformed")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda c: c.update(node_key="!!!"), "node_key"),
        (lambda c: c.update(node_key="AAAA"), "node_key"),  # 3 bytes
        (lambda c: c.update(signature="not base64 !"), "signature"),
        (lambda c: c.update(signature=c["signature"][:-4]), "signature"),  # truncated
    ],
)
def test_garbled_key_or_signature_is_invalid(mutate: Any, reason: str) -> None:
    claim = node_claim()
    mutate(claim)
    part = check(observed(claim))
    assert (part.status, part.reason) == (PartStatus.INVALID, reason)


def test_no_receipt_is_missing_or_broken() -> None:
    assert check(observed(None)).status is PartStatus.MISSING
    part = check(observed(None, no_receipt=PartStatus.BROKEN))
    assert part.status is PartStatus.BROKEN and part.payable
    assert check(observed(None, no_receipt=PartStatus.CUT)).payable
    assert {PartStatus.SIGNED, PartStatus.BROKEN, PartStatus.CUT, PartStatus.MISSING} == PAYABLE


def test_node_keys_cache_is_bounded() -> None:
    keys = NodeKeys(max_keys=2)
    signers = [NodeReceiptSigner(Ed25519PrivateKey.generate()) for _ in range(3)]
    for s in signers:
        assert keys.get(s.node_key, s.node_id) is not None
    assert len(keys._keys) == 2 and signers[0].node_key not in keys._keys
    with pytest.raises(ValueError):
        keys.get("AAAA", signers[0].node_id)


class _Decodes:
    """Counts the keys ``receipt_check`` decodes (a point's check each)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = receipt_check.PublicKey

        def counted(raw: bytes) -> PublicKey:
            self.n += 1
            return real(raw)

        monkeypatch.setattr(receipt_check, "PublicKey", counted)


def test_keys_sent_for_another_node_are_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node whose receipts carry other keys, a new one each answer (all refused,
    ``node_key``), pushes no honest node's key out of the cache and grows nothing: the
    honest node's next receipt is checked with its key as kept, not decoded again, and no
    forged key is decoded (its id is a hash, compared first). Found 2026-12-06 (keys38):
    every key sent was kept, first in first out, so 20 bogus keys in a cache of 16 pushed
    the honest key out (failed before: 22 decodes, not 1, and 16 keys kept)."""
    keys, decodes = NodeKeys(max_keys=16), _Decodes(monkeypatch)
    honest = check(observed(node_claim()), keys=keys)
    assert honest.status is PartStatus.SIGNED and decodes.n == 1
    for _ in range(20):  # the routed node (NODE_KEY's id) sends a fresh key each answer
        forged = NodeReceiptSigner(Ed25519PrivateKey.generate())
        part = check(observed(node_claim(forged)), keys=keys)
        assert (part.status, part.reason) == (PartStatus.INVALID, "node_key")
    assert check(observed(node_claim()), keys=keys).status is PartStatus.SIGNED
    assert decodes.n == 1 and len(keys._keys) == 1


def test_another_nodes_kept_key_is_no_key_of_this_one() -> None:
    """A key kept for its node, sent by another node: refused, kept or not (a guard)."""
    keys, other = NodeKeys(), NodeReceiptSigner(OTHER_KEY)
    assert check(observed(node_claim(other), node_id=other.node_id), keys=keys).payable
    part = check(observed(node_claim(other)), keys=keys)  # sent as NODE_KEY's node
    assert (part.status, part.reason) == (PartStatus.INVALID, "node_key")
    assert keys.get(other.node_key, NodeReceiptSigner(NODE_KEY).node_id) is None
