"""Receipts for the receipt-verification tests (``test_receipt_verify*.py`` and others): a
registry key and nodes, a signed receipt and the answer around it, a receipt re-signed or
altered, and the verifier's reason or failure."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.identity import public_key_of
from LLM_Mesh.core.pricing import network_fee
from LLM_Mesh.core.receipt import (
    Money,
    NodeReceiptSigner,
    Part,
    PartStatus,
    Receipt,
    ReceiptError,
    ReceiptSigner,
    b64url,
    client_id_hash,
)
from LLM_Mesh.core.receipt_check import NodeKeys, Observed, check_part
from LLM_Mesh.core.receipt_old import OldReceipt
from LLM_Mesh.core.receipt_verify import Found, find_receipt, parse_keys, verify

REGISTRY_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))


NODE_A = NodeReceiptSigner(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
NODE_B = NodeReceiptSigner(Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35))))
SIGNER = ReceiptSigner(REGISTRY_KEY, lambda: 1_700_000_000.0)
KEYS = parse_keys([base64.b64encode(public_key_of(REGISTRY_KEY)).decode()])
TEXT = "The answer is 42."
STD_OK = base64.b64encode(public_key_of(REGISTRY_KEY)).decode()  # a good key before a bad
FEE_BPS = 500


def make_receipt(
    text: str = TEXT, *, parts: list[tuple[NodeReceiptSigner, str, int, bool]] | None = None,
    request_id: str = "req-1", signer: ReceiptSigner = SIGNER, prompt: int = 7,
    client_id: str | None = None, amounts: list[int] | None = None, payer: str = "user",
    version: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A real receipt: each part (node, its text, its tokens, broken?) checked and countersigned
    (``client_id``: the client chose its own request id, ``request_id`` is the nodes';
    ``amounts``: settled, each part charged that many µNT at a 5 % fee)."""
    parts = parts or [(NODE_A, text, 4, False)]
    checked = []
    for node, piece, tokens, broken in parts:
        digest = output_sha256(piece)
        claim = None if broken else node.sign(
            registry_id=signer.registry_id, request_id=request_id, model="m",
            prompt_tokens=prompt, completion_tokens=tokens, output_sha256=digest,
        )  # fmt: skip
        no_receipt = PartStatus.BROKEN if broken else PartStatus.MISSING
        obs = Observed(node.node_id, 0 if broken else prompt, tokens, digest, claim, no_receipt)
        checked.append(check_part(obs, registry_id=signer.registry_id, request_id=request_id,
                                  model="m", keys=NodeKeys()))  # fmt: skip
    total = sum(t for _, _, t, _ in parts)
    client = "" if client_id is None else client_id_hash(client_id)
    money = None
    if amounts is not None:
        money = Money(payer, FEE_BPS, sum(amounts))
        checked = [replace(p, amount=a, fee=network_fee(a, FEE_BPS))
                   for p, a in zip(checked, amounts, strict=True)]  # fmt: skip
    if version is not None:  # an older registry's receipt (the signer makes only VERSION)
        assert signer is SIGNER, "an older version is signed with REGISTRY_KEY"
        args = (request_id, "m", prompt, total, output_sha256(text), checked, client, money)
        return signed_as(version, *args).to_json()
    receipt, h = signer.countersign(
        request_id, "m", prompt, total, output_sha256(text), checked, client, money
    )
    return receipt.to_json(h)


def signed_as(
    version: int, request_id: str, model: str, prompt: int, completion: int, digest: str,
    parts: Sequence[Part], client: str = "", money: Money | None = None,
) -> Receipt:  # fmt: skip
    """A receipt of ``version`` countersigned by ``REGISTRY_KEY`` at ``SIGNER``'s time, as a
    registry did before it signed only :data:`~LLM_Mesh.core.receipt.VERSION` (found
    2026-12-07, money42: ``ReceiptSigner`` takes no version any more): old data to verify."""
    time_ms = int(SIGNER.wall_clock() * 1000)
    unsigned = OldReceipt(
        SIGNER.registry_id, request_id, model, time_ms, prompt, completion, digest,
        tuple(parts), client, money, signature="", version=version,
    )  # fmt: skip
    return replace(unsigned, signature=b64url(REGISTRY_KEY.sign(unsigned.signed_bytes())))


def answer(receipt: dict[str, Any], text: str = TEXT) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11},
        "mesh": {"request_id": receipt["request_id"], "receipt": receipt},
    }


def reason(found: Found | str, **kw: Any) -> str:
    try:
        verify(find_receipt(found) if isinstance(found, str) else found, KEYS, **kw)
    except ReceiptError as exc:
        return exc.reason
    return "valid"


def resign(r: dict[str, Any]) -> dict[str, Any]:
    """What a registry-key holder could do: change parts and sign again."""
    from LLM_Mesh.core.receipt_verify import parse_receipt

    parsed = parse_receipt(r)
    out = dict(r)
    out["signature"] = b64url(REGISTRY_KEY.sign(parsed.signed_bytes()))
    out.pop("receipt_hash")
    return out


NODES_ID = "req-" + "ab" * 16  # the gateway-made id the nodes got


def mapped_answer(r: dict[str, Any], client_id: str, text: str = TEXT) -> dict[str, Any]:
    """The gateway's answer to a client that chose ``client_id``: the receipt names the
    nodes' id, ``mesh.receipt_request_id`` maps the client's to it."""
    out = answer(r, text)
    out["mesh"] = {"request_id": client_id, "receipt_request_id": r["request_id"], "receipt": r}
    return out


def failure(found: Found | str, keys: Any = None, **kw: Any) -> tuple[str, str]:
    """(reason, message) of a receipt that fails: what ``llm-mesh receipt verify`` prints."""
    with pytest.raises(ReceiptError) as exc:
        verify(find_receipt(found) if isinstance(found, str) else found, keys or KEYS, **kw)
    return exc.value.reason, str(exc.value)
