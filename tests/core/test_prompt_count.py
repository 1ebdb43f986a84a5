"""A node's signed prompt count as its stream opens (``core/prompt_count.checked_claim``,
since 2026-12-06, ``money36``): the gateway believes only its key's signature of this
registry, request, model and count; a ``cut`` part keeps it, and the offline receipt check
verifies it (``core/receipt_verify.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.prompt_count import checked_claim, claim_header
from LLM_Mesh.core.receipt import (
    NodeReceiptSigner,
    PartStatus,
    node_prompt_bytes,
    node_receipt_bytes,
)
from LLM_Mesh.core.receipt_check import NodeKeys, Observed, check_part
from LLM_Mesh.core.receipt_verify import Found
from tests.core.receipt_verify_fixtures import NODE_A, NODE_B, SIGNER, reason, resign

COUNT = 3009


def _header(node: NodeReceiptSigner = NODE_A, **over: Any) -> str:
    fields: dict[str, Any] = {"registry_id": SIGNER.registry_id, "request_id": "req-1",
                              "model": "m", "prompt_tokens": COUNT}  # fmt: skip
    fields.update(over)
    return claim_header(node.node_key, node.sign_prompt_count(**fields))


def _checked(value: str | None, said: int = COUNT, **over: Any) -> Any:
    kw: dict[str, Any] = {"registry_id": SIGNER.registry_id, "node_id": NODE_A.node_id,
                          "request_id": "req-1", "model": "m", "keys": NodeKeys()}  # fmt: skip
    kw.update(over)
    return checked_claim(said, value, **kw)


def test_only_the_nodes_own_signature_of_this_count_for_this_request_is_believed() -> None:
    good = _header()
    claim = _checked(good)
    assert claim is not None and claim.prompt_tokens == COUNT
    assert claim.node_key == NODE_A.node_key
    assert _checked(good, said=COUNT + 1) is None  # another count than it signed
    assert _checked(good, request_id="req-2") is None  # another request
    assert _checked(good, model="other") is None
    assert _checked(good, registry_id="another-registry") is None
    assert _checked(_header(NODE_B)) is None  # another node's key
    forged = claim_header(NODE_A.node_key, NODE_B.sign_prompt_count(
        registry_id=SIGNER.registry_id, request_id="req-1", model="m", prompt_tokens=COUNT))  # fmt: skip
    assert _checked(forged) is None  # its key named, another key's signature
    for bad in (None, "", good.replace(".", ""), "." + good, good + "!", "x" * 300, "a.b"):
        assert _checked(bad) is None, bad
    assert _checked(good, said=0) is None  # nothing said: nothing to believe


def test_a_count_signed_early_is_no_receipt_of_an_answer() -> None:
    """Its own domain: the bytes a node signs early are never a receipt's (and no receipt's
    signature is a count's)."""
    early = node_prompt_bytes(SIGNER.registry_id, NODE_A.node_id, "req-1", "m", COUNT)
    answer = node_receipt_bytes(SIGNER.registry_id, NODE_A.node_id, "req-1", "m", COUNT, 0,
                                output_sha256(""))  # fmt: skip
    assert early.split(b"\x00")[0] != answer.split(b"\x00")[0]
    assert early.startswith(b"llm-mesh/v1/node-prompt-count\x00")


def _cut_receipt(count: int = COUNT, header: str | None = None) -> dict[str, Any]:
    claim = _checked(header or _header(prompt_tokens=count), said=count)
    assert claim is not None
    digest = output_sha256("xy")
    obs = Observed(NODE_A.node_id, 0, 2, digest, no_receipt=PartStatus.CUT, prompt_claim=claim)
    part = check_part(obs, registry_id=SIGNER.registry_id, request_id="req-1", model="m",
                      keys=NodeKeys())  # fmt: skip
    assert (part.status, part.prompt_tokens, part.node_key) == (
        PartStatus.CUT, count, NODE_A.node_key,
    )  # fmt: skip
    receipt, h = SIGNER.countersign("req-1", "m", count, 2, digest, [part])
    return receipt.to_json(h)


def test_a_cut_part_with_its_signed_count_verifies_offline() -> None:
    assert reason(Found(_cut_receipt())) == "valid"


@pytest.mark.parametrize("count", [COUNT + 1, 10**9])
def test_a_cut_parts_count_altered_by_the_gateway_fails_the_node_signature(count: int) -> None:
    """A registry-key holder that charges more than the node said, and signs again, is
    caught: the node's signature is of its own count."""
    r = _cut_receipt()
    r["parts"][0]["prompt_tokens"] = r["prompt_tokens"] = count
    assert reason(Found(resign(r))) == "node_signature"
