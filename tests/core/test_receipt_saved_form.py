"""``saved_form``: what ``llm-mesh ask --save`` keeps of an answer's ``mesh``: the receipt
and the ids mapping it, nothing else (no prompt, no text), read back by ``find_receipt``."""

from __future__ import annotations

import json

from LLM_Mesh.core.receipt_verify import find_receipt, saved_form

RECEIPT = {"version": 2, "request_id": "gw-1", "parts": [], "signature": "sig"}


def test_only_the_receipt_and_its_ids_are_kept() -> None:
    mesh = {"receipt": RECEIPT, "request_id": "gw-1", "receipt_request_id": "gw-1",
            "simulated": True, "node_id": "n", "prompt": "secret", "cost": 3}  # fmt: skip
    form = saved_form(mesh)
    assert form == {"mesh": {"receipt": RECEIPT, "request_id": "gw-1",
                             "receipt_request_id": "gw-1", "simulated": True}}  # fmt: skip
    found = find_receipt(json.dumps(form))
    assert found.receipt == RECEIPT and found.request_id == "gw-1" and found.simulated
    assert found.output is None  # the text is not known, not ""


def test_no_receipt_no_form() -> None:
    assert saved_form({"request_id": "x"}) is None
    assert saved_form({"receipt": "not an object"}) is None
    assert saved_form(None) is None
