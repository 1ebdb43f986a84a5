"""A completions stream's final chunk saved alone as bare JSON (found 2026-12-05): it looks
like a whole answer (``text_completion``, a choice with ``text``), so its last piece of text
was checked as the whole answer's and ``receipt verify`` said only ``output_sha256: the
output does not hash``. Its ``data:`` line works; the bare JSON now says so, while a whole
answer whose text was altered still fails (the check is not dropped)."""

from __future__ import annotations

import json

from tests.core.receipt_verify_fixtures import make_receipt
from tests.core.test_receipt_verify_words import _says


def _completion(r: dict[str, object], text: str, finish: str | None) -> dict[str, object]:
    return {"id": "cmpl-1", "object": "text_completion",
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 4},
            "mesh": {"request_id": "req-1", "receipt": r}}  # fmt: skip


def test_a_completions_final_chunk_alone_is_told_how_to_give_it() -> None:
    r = make_receipt()
    final = _completion(r, "42.", "stop")  # the stream's last piece, with usage and mesh
    assert _says(f"data: {json.dumps(final)}\n\n") == "valid"  # its data: line: as before
    said = _says(json.dumps(final))
    assert said.startswith("output_sha256: the output does not hash to the receipt's")
    assert "data:" in said and "--output" in said  # how to give it instead


def test_a_whole_completion_is_still_checked_and_a_chat_answer_gets_no_hint() -> None:
    r = make_receipt()
    assert _says(json.dumps(_completion(r, "The answer is 42.", "stop"))) == "valid"
    altered = _says(json.dumps(_completion(r, "The answer is 43.", "stop")))
    assert altered.startswith("output_sha256")  # an altered whole answer: still refused
    chat = {"object": "chat.completion", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "The answer is 43."}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 4},
        "mesh": {"request_id": "req-1", "receipt": r}}  # fmt: skip
    assert _says(json.dumps(chat)) == "output_sha256: the output does not hash to the receipt's"
