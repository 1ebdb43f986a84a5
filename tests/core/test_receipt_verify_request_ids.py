"""Receipt verification and request ids: an answer to a client-chosen id maps it to the
receipt's id, and a receipt pasted into an answer for another client id is refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from LLM_Mesh.core.receipt import (
    client_id_hash,
    encode_header,
)
from LLM_Mesh.core.receipt_verify import Found
from tests.core.receipt_verify_fixtures import (
    NODES_ID,
    answer,
    failure,
    make_receipt,
    mapped_answer,
    reason,
)


def _stream(mapped: dict[str, Any]) -> str:
    """``mapped`` as the stream of it: two content chunks, the final chunk with ``mesh``."""
    base = {"id": "c", "object": "chat.completion.chunk"}
    text = mapped["choices"][0]["message"]["content"]
    chunks = [{**base, "choices": [{"index": 0, "delta": {"content": w}}]}
              for w in (text[:7], text[7:])]  # fmt: skip
    final = {**base, "choices": [], "usage": mapped["usage"], "mesh": mapped["mesh"]}
    return "".join(f"data: {json.dumps(c)}\n\n" for c in [*chunks, final]) + "data: [DONE]\n\n"


def test_an_answer_to_a_client_chosen_id_maps_it_to_the_receipts_id() -> None:
    """A client that chose its request id: the nodes and the receipt had a gateway-made one,
    which the answer's ``mesh.receipt_request_id`` names; the registry's countersignature also
    covers the client's id, hashed, so ``--request-id`` may name either, answer or none."""
    r = make_receipt(request_id=NODES_ID, client_id="alice-session-42")
    assert r["v"] == 4 and r["client_id_hash"] == client_id_hash("alice-session-42")
    assert "alice-session-42" not in json.dumps(r)  # the receipt holds only its hash
    for text in (
        json.dumps(mapped_answer(r, "alice-session-42")),
        _stream(mapped_answer(r, "alice-session-42")),
    ):
        assert reason(text) == "valid"
        assert reason(text, request_id="alice-session-42", require_signed=True) == "valid"
        assert reason(text, request_id=NODES_ID) == "valid"
        assert reason(text, request_id="bob-session-7") == "request_id"
    # the link is signed: the receipt alone names the client's id, no answer needed
    assert reason(Found(r), request_id="alice-session-42") == "valid"
    assert reason(encode_header(r), request_id="alice-session-42") == "valid"
    unmapped = answer(r)  # no receipt_request_id: the client's id is still the signed one
    unmapped["mesh"]["request_id"] = "alice-session-42"
    assert reason(json.dumps(unmapped)) == "valid"
    moved = mapped_answer(r, "alice-session-42")  # an answer mapping another nodes' id
    moved["mesh"]["receipt_request_id"] = "req-" + "cd" * 16
    assert reason(json.dumps(moved)) == "request_id"
    assert reason(json.dumps(moved), request_id="alice-session-42") == "request_id"


@pytest.mark.parametrize("form", ["whole", "stream"])
def test_a_receipt_pasted_into_an_answer_for_another_client_id_is_refused(form: str) -> None:
    """The paste attack (found 2026-12-03): request A's receipt (client id A, nodes' id
    req-X) in an answer for client id B that maps B to req-X. Only the answer linked B to
    req-X, so it verified, as did ``--request-id B``; the registry now signs A's hash."""
    r = make_receipt(request_id=NODES_ID, client_id="alice-session-42")
    pasted = mapped_answer(r, "bob-session-7")
    text = json.dumps(pasted) if form == "whole" else _stream(pasted)
    assert failure(text) == (
        "request_id",
        f"the answer says request_id 'bob-session-7': the receipt is for request {NODES_ID!r}, "
        "the client's own id the registry countersigned for it is another (its client_id_hash "
        "is not the hash of 'bob-session-7')",
    )
    assert failure(Found(r), request_id="bob-session-7")[0] == "request_id"
    assert (
        "client_id_hash is not the hash of 'bob-session-7'"
        in failure(Found(r), request_id="bob-session-7")[1]
    )
    # a receipt of a request whose id the gateway made, pasted as a client-chosen id's
    made = make_receipt(request_id=NODES_ID)
    assert made["client_id_hash"] == ""
    text = json.dumps(mapped_answer(made, "bob-session-7"))
    if form == "stream":
        text = _stream(mapped_answer(made, "bob-session-7"))
    assert failure(text) == (
        "request_id",
        f"the answer says request_id 'bob-session-7': the receipt is for request {NODES_ID!r}, "
        "whose id the gateway made (the registry countersigned no client's own id)",
    )
    # a version-3 receipt passed off as version 1 (whose client's id was the answer's word)
    downgraded = copy.deepcopy(r)
    downgraded["v"] = 1
    del downgraded["client_id_hash"], downgraded["settled"]
    assert reason(json.dumps(mapped_answer(downgraded, "bob-session-7"))) == "gateway_signature"
    # ... and the honest answer around each still verifies
    assert reason(json.dumps(mapped_answer(r, "alice-session-42"))) == "valid"
    assert reason(json.dumps(answer(made)), request_id=NODES_ID) == "valid"
