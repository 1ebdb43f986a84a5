"""What ``find_receipt`` reads around a receipt (core/receipt_verify.py): the ledger's id of
the request, which ``receipt verify --ledger`` looks up, and the chunk hint given only to a
bare completions object. Each test killed a mutant the other receipt tests let live
(2026-12-06, ``mut34``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from LLM_Mesh.core.receipt_verify import find_receipt
from tests.core.receipt_verify_fixtures import TEXT, make_receipt
from tests.core.test_receipt_verify_words import _says


def _chat(r: dict[str, Any], mesh: dict[str, Any]) -> dict[str, Any]:
    return {"object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 4},
            "mesh": {"request_id": "req-1", "receipt": r, **mesh}}  # fmt: skip


def _completions_stream(r: dict[str, Any], mesh: dict[str, Any], text: str = TEXT) -> str:
    piece = {"id": "c", "object": "text_completion",
             "choices": [{"index": 0, "text": text, "finish_reason": None}]}  # fmt: skip
    final = {"id": "c", "object": "text_completion",
             "choices": [{"index": 0, "text": "", "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 7, "completion_tokens": 4},
             "mesh": {"request_id": "req-1", "receipt": r, **mesh}}  # fmt: skip
    return "".join(f"data: {json.dumps(c)}\n\n" for c in (piece, final))


def test_the_ledger_request_id_is_read_from_an_answer_and_from_a_stream() -> None:
    r = make_receipt()
    mesh = {"ledger_request_id": "led-7"}
    assert find_receipt(json.dumps(_chat(r, mesh))).ledger_request_id == "led-7"
    assert find_receipt(_completions_stream(r, mesh)).ledger_request_id == "led-7"
    assert find_receipt(json.dumps(_chat(r, {}))).ledger_request_id is None


@pytest.mark.parametrize("value", [7, None, ["led-7"], {"id": "led-7"}, True])
def test_a_ledger_request_id_that_is_no_string_is_not_read(value: object) -> None:
    """Not a string: the CLI falls back to the receipt's id, it does not send ``7``."""
    found = find_receipt(json.dumps(_chat(make_receipt(), {"ledger_request_id": value})))
    assert found.ledger_request_id is None


def test_a_whole_stream_whose_text_was_altered_gets_no_chunk_hint() -> None:
    """The hint (give the ``data:`` line) is for a bare completions object only: a stream
    given whole was read as one, its altered text is refused in the plain words."""
    r = make_receipt()
    assert _says(_completions_stream(r, {})) == "valid"
    altered = _says(_completions_stream(r, {}, text="The answer is 43."))
    assert altered == "output_sha256: the output does not hash to the receipt's"


def test_choices_that_are_an_object_are_read_as_no_text_not_a_traceback() -> None:
    """``choices`` not a list (a hand-edited or foreign answer): its text is "" (refused by
    the hash), never ``KeyError: 0`` out of the chat-chunk test."""
    body = {"choices": {"0": {"message": {"content": TEXT}}},
            "mesh": {"request_id": "req-1", "receipt": make_receipt()}}  # fmt: skip
    found = find_receipt(json.dumps(body))
    assert found.output == ""
    assert _says(found) == "output_sha256: the output does not hash to the receipt's"
