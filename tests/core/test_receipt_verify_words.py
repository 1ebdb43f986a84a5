"""``receipt verify``'s refusals in the words it prints, and the input forms it tells apart
(core/receipt_verify.py; the receipts are made by ``tests/core/receipt_verify_fixtures.py``'s
builders). Each test here killed a mutant the other receipt tests let live (2026-12-05)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from LLM_Mesh.core.receipt import ReceiptError, b64url
from LLM_Mesh.core.receipt_verify import Found, find_receipt, verify
from tests.core.receipt_verify_fixtures import KEYS, NODES_ID, answer, make_receipt

HERE = Path(__file__).parent
DEEP = "[" * 100_000 + "]" * 100_000  # deeper than the JSON reader's recursion limit


def _says(found: Found | str, **kw: Any) -> str:
    """``reason: message`` as ``llm-mesh receipt verify`` prints it, or ``valid``."""
    try:
        verify(find_receipt(found) if isinstance(found, str) else found, KEYS, **kw)
    except ReceiptError as exc:
        return f"{exc.reason}: {exc}"
    return "valid"


def _old(version: int) -> dict[str, Any]:
    """The answer an earlier gateway made (client id ``alice-session-42``, mapped to the
    nodes' id ``NODES_ID``), kept as it was."""
    return json.loads((HERE / f"receipt_v{version}_answer.json").read_text())


def test_input_nested_too_deep_is_malformed_in_its_words() -> None:
    """JSON deeper than the reader's recursion limit: a refusal naming the form, no traceback."""
    assert _says('{"a": ' + DEEP + "}") == "malformed: the input is JSON nested too deep to read"
    assert _says(b64url(DEEP.encode())) == (
        "malformed: the X-Mesh-Receipt value is JSON nested too deep to read"
    )


def test_a_body_with_a_receipts_fields_and_mesh_or_choices_alone_is_an_answer() -> None:
    """An object with ``parts`` and ``signature`` is a bare receipt only when it has neither
    ``mesh`` nor ``choices``: with either it is an answer (a node's body passed on), so the
    stale receipt fields at its top level are never what is verified."""
    old = make_receipt("old text", request_id="req-old")
    mine = make_receipt(request_id="req-mine")
    with_mesh = {**old, "mesh": answer(mine)["mesh"]}  # a final chunk's fields, no choices
    found = find_receipt(json.dumps(with_mesh))
    assert (found.receipt, found.request_id) == (mine, "req-mine")
    assert _says(json.dumps(with_mesh)) == "valid"
    with_choices = {**old, "choices": answer(mine)["choices"]}  # no mesh: no receipt given
    assert _says(json.dumps(with_choices)) == (
        "malformed: the input holds no receipt (no mesh.receipt)"
    )
    assert _says(json.dumps(old)) == "valid"  # the bare receipt itself


def test_json_on_a_stream_line_that_is_not_data_is_not_read() -> None:
    """Only ``data:`` lines carry a stream's chunks; another field (SSE ignores unknown
    ones) holding the final chunk's JSON is not read, whatever its name's length."""
    final = {"choices": [], "mesh": {"request_id": "req-1", "receipt": make_receipt()}}
    for field in ("note:", "x:", "event: "):
        text = f"data: [DONE]\n{field}{json.dumps(final)}\n"
        assert _says(text) == "malformed: the stream holds no final chunk with mesh.receipt"
    assert _says(f"data: [DONE]\ndata:{json.dumps(final)}\n") == "valid"


def test_a_moved_mapping_is_refused_in_its_words() -> None:
    """A version-3 answer whose ``mesh.receipt_request_id`` names another nodes' id."""
    r = make_receipt(request_id=NODES_ID, client_id="alice-session-42")
    moved = answer(r)
    moved["mesh"].update(request_id="alice-session-42", receipt_request_id="req-" + "cd" * 16)
    assert _says(json.dumps(moved)) == (
        f"request_id: the answer says receipt_request_id {'req-' + 'cd' * 16!r}, "
        f"the receipt {NODES_ID!r}"
    )


def test_a_version_2_receipt_alone_names_the_clients_own_id() -> None:
    """Version 2 signs the client's id (as a hash) like version 3: the receipt alone, no
    answer mapping it, verifies under that id, and under no other."""
    receipt = _old(2)["mesh"]["receipt"]
    assert receipt["v"] == 2 and receipt["request_id"] == NODES_ID
    assert _says(Found(receipt), request_id="alice-session-42") == "valid"
    assert _says(Found(receipt), request_id=NODES_ID) == "valid"
    assert _says(Found(receipt), request_id="bob-session-7") == (
        f"request_id: the request_id asked for is 'bob-session-7': the receipt is for request "
        f"{NODES_ID!r}, the client's own id the registry countersigned for it is another (its "
        "client_id_hash is not the hash of 'bob-session-7')"
    )


def test_version_1_request_id_refusals_say_whose_word_failed() -> None:
    """A version-1 receipt signs no client id; its refusals say whether the id that does not
    match was asked for (``--request-id``) or is the answer's (found 2026-12-05: an id
    asked for was reported as "the answer says request_id", also with no answer given)."""
    old = _old(1)
    receipt = old["mesh"]["receipt"]
    assert receipt["v"] == 1 and receipt["request_id"] == NODES_ID
    asked = f"request_id: the request_id asked for is 'bob-session-7', the receipt {NODES_ID!r}"
    assert _says(Found(receipt), request_id="bob-session-7") == asked
    assert _says(json.dumps(old), request_id="bob-session-7") == asked
    # the client's own id, taken only through the answer's mapping: alone it is not the id
    assert _says(Found(receipt), request_id="alice-session-42") == (
        f"request_id: the request_id asked for is 'alice-session-42', the receipt {NODES_ID!r}"
    )
    moved = copy.deepcopy(old)
    moved["mesh"]["receipt_request_id"] = "req-" + "cd" * 16
    answer_says = (
        f"request_id: the answer says request_id {'req-' + 'cd' * 16!r}, the receipt {NODES_ID!r}"
    )
    assert _says(json.dumps(moved)) == answer_says
    assert _says(json.dumps(moved), request_id="alice-session-42") == answer_says
    assert _says(json.dumps(old), request_id="alice-session-42") == "valid"
    assert _says(json.dumps(old), request_id=NODES_ID) == "valid"
