"""What a failed receipt verification says: which field of a malformed receipt is wrong,
what check failed, which part and node; the largest counts that are well formed, and a part's
reason kept and signed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from LLM_Mesh.core.answer_text import output_sha256
from LLM_Mesh.core.receipt import (
    PartStatus,
    ReceiptError,
    b64url,
)
from LLM_Mesh.core.receipt_check import NodeKeys, Observed, check_part
from LLM_Mesh.core.receipt_verify import Found
from tests.core.receipt_verify_fixtures import (
    NODE_A,
    NODE_B,
    SIGNER,
    TEXT,
    answer,
    failure,
    make_receipt,
    reason,
    resign,
)


def _altered(**top: Any) -> dict[str, Any]:
    r = copy.deepcopy(make_receipt())
    r.update(top)
    return r


def _part(**fields: Any) -> dict[str, Any]:
    r = copy.deepcopy(make_receipt())
    r["parts"][0].update(fields)
    return r


def test_each_malformed_receipt_says_which_field_is_wrong() -> None:
    cases: list[tuple[Any, str]] = [
        ("just text", "a receipt is a JSON object"),
        (_altered(parts=[]), "parts is not a list of 1 to 64 parts"),
        (_altered(parts="x"), "parts is not a list of 1 to 64 parts"),
        (_altered(parts=[5]), "a part is not an object"),
        (_part(status="paid"), "unknown part status 'paid'"),
        (_part(reason=5), "reason is not a string"),
        (_part(node_id=None), "node_id is not a string"),
        (_part(completion_tokens=True), "completion_tokens is not a whole number"),
        (_altered(time_ms=2**63), "time_ms is not a whole number"),
    ]
    for receipt, message in cases:
        assert failure(Found(receipt)) == ("malformed", message)
    assert failure(Found(_altered(v=5))) == (
        "version",
        "receipt version 5 (this verifier: 1 to 4)",
    )
    for bad in ("AB" * 32, "ab" * 31, "ab" * 33):
        assert failure(Found(_altered(client_id_hash=bad))) == (
            "malformed", "client_id_hash is empty or 64 lowercase hex digits"
        )  # fmt: skip
    assert failure(Found(_altered(client_id_hash=5))) == (
        "malformed", "client_id_hash is not a string"
    )  # fmt: skip
    assert failure(Found(_altered(v=1))) == (
        "malformed", "a version-1 receipt has no client_id_hash"
    )  # fmt: skip


def test_counts_up_to_the_largest_int64_and_64_parts_are_well_formed() -> None:
    from LLM_Mesh.core.receipt_verify import parse_receipt

    r = _altered(time_ms=2**63 - 1)
    r["parts"] = r["parts"] * 64
    parsed = parse_receipt(r)
    assert (parsed.time_ms, len(parsed.parts)) == (2**63 - 1, 64)
    r["parts"].append(r["parts"][0])
    with pytest.raises(ReceiptError):
        parse_receipt(r)


def test_a_parts_reason_is_kept_and_signed() -> None:
    from LLM_Mesh.core.receipt_verify import parse_receipt

    digest = output_sha256(TEXT)
    claim = NODE_A.sign(registry_id=SIGNER.registry_id, request_id="req-1", model="m",
                        prompt_tokens=7, completion_tokens=9, output_sha256=digest)  # fmt: skip
    obs = Observed(NODE_A.node_id, 7, 4, digest, claim, PartStatus.MISSING)  # the node says 9
    part = check_part(obs, registry_id=SIGNER.registry_id, request_id="req-1", model="m",
                      keys=NodeKeys())  # fmt: skip
    receipt, h = SIGNER.countersign("req-1", "m", 7, 4, digest, [part])
    r = receipt.to_json(h)
    assert r["parts"][0]["reason"] == "usage"  # an invalid part says why
    assert parse_receipt(r).parts[0].reason == r["parts"][0]["reason"]
    assert reason(Found(r)) == "valid"
    r["parts"][0]["reason"] = "something else"
    assert reason(Found(r)) == "gateway_signature"


def test_each_failed_check_says_what_failed() -> None:
    r = make_receipt()
    nobody = _altered(registry_id="registry-nobody")
    assert failure(Found(nobody)) == (
        "unknown_registry", "no registry key given has id registry-nobody (keys given: 1)"
    )  # fmt: skip
    assert failure(Found(_altered(time_ms=1))) == (
        "gateway_signature",
        f"the registry's signature does not verify with the key of {r['registry_id']}",
    )
    assert failure(Found(_altered(receipt_hash="00" * 32))) == (
        "receipt_hash", "receipt_hash is not the hash of the receipt"
    )  # fmt: skip
    assert failure(Found(r), request_id="req-2") == (
        "request_id",
        "the request_id asked for is 'req-2': the receipt is for request 'req-1', whose id the "
        "gateway made (the registry countersigned no client's own id)",
    )
    assert failure(Found(r), output="other") == (
        "output_sha256", "the output does not hash to the receipt's"
    )  # fmt: skip
    bad_usage = answer(r)
    bad_usage["usage"]["completion_tokens"] = 40
    assert failure(json.dumps(bad_usage)) == (
        "usage", "the answer says usage (7, 40), the receipt (7, 4)"
    )  # fmt: skip


def test_node_part_failures_name_the_part_and_the_node() -> None:
    two = make_receipt(parts=[(NODE_B, "The answer ", 2, True), (NODE_A, "is 42.", 2, False)])
    assert failure(Found(two), require_signed=True) == (
        "unsigned_part", f"part 0 (node {NODE_B.node_id}) is broken"
    )  # fmt: skip
    short_key = copy.deepcopy(two)
    short_key["parts"][1]["node_key"] = b64url(bytes(31))
    assert failure(Found(resign(short_key))) == (
        "node_key", "part 1: node_key is not an Ed25519 key (an Ed25519 public key is 32 "
        "bytes, not 31)"
    )  # fmt: skip
    other_key = copy.deepcopy(two)
    other_key["parts"][1]["node_key"] = NODE_B.node_key
    assert failure(Found(resign(other_key))) == (
        "node_key", f"part 1: the key's node id is {NODE_B.node_id}, not {NODE_A.node_id}"
    )  # fmt: skip
    recounted = copy.deepcopy(two)
    recounted["parts"][1]["completion_tokens"] = 3
    recounted["parts"][0]["completion_tokens"] = 1
    assert failure(Found(resign(recounted))) == (
        "node_signature", f"part 1: the signature of node {NODE_A.node_id} does not verify"
    )  # fmt: skip
    uneven = copy.deepcopy(two)
    uneven["parts"][0]["completion_tokens"] = 3
    assert failure(Found(resign(uneven))) == (
        "totals", "the parts do not add up to the receipt's totals"
    )  # fmt: skip
