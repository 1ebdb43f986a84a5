"""An error the gateway answered, given to ``find_receipt`` (core/receipt_verify.py): it is
said as that error, not as an answer whose receipt is missing. Found 2026-12-06 (newuser38):
the README's ``curl ... > answer.json`` saved a 429 ``overloaded``, and ``receipt verify``
said only ``INVALID malformed: the input holds no receipt (no mesh.receipt)``."""

from __future__ import annotations

import json

import pytest

from LLM_Mesh.core.receipt import ReceiptError
from LLM_Mesh.core.receipt_verify import find_receipt
from tests.core.receipt_verify_fixtures import make_receipt

ERROR = {
    "error": {
        "message": "requests without an API key hold their share of the slots",
        "type": "rate_limit_error", "param": None, "code": "overloaded",
    }
}  # fmt: skip


def _refusal(text: str) -> str:
    with pytest.raises(ReceiptError) as info:
        find_receipt(text)
    assert info.value.reason == "malformed"
    return str(info.value)


def test_an_error_answer_is_said_as_the_gateways_error() -> None:
    said = _refusal(json.dumps(ERROR))
    assert "an error the gateway answered" in said
    assert "overloaded: requests without an API key hold their share" in said


def test_a_stream_that_ended_in_an_error_event_says_that_error() -> None:
    piece = {"object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": {"content": "def"}}]}  # fmt: skip
    stream = f"data: {json.dumps(piece)}\n\ndata: {json.dumps(ERROR)}\n\ndata: [DONE]\n\n"
    said = _refusal(stream)
    assert "an error the gateway answered (overloaded: " in said


def test_the_error_text_is_printable_and_bounded() -> None:
    hostile = {"error": {"code": "x\x1b[31m", "message": "m" * 5000 + "\n"}}
    said = _refusal(json.dumps(hostile))
    assert "\x1b" not in said and "\n" not in said
    assert len(said) < 800


def test_an_object_without_receipt_or_error_says_so_as_before() -> None:
    assert _refusal(json.dumps({"choices": []})).endswith(
        "the input holds no receipt (no mesh.receipt)"
    )
    assert _refusal(json.dumps({"error": "not an object"})).endswith("(no mesh.receipt)")


def test_an_answer_with_its_receipt_is_still_read() -> None:
    r = make_receipt()
    assert find_receipt(json.dumps({"mesh": {"receipt": r}})).receipt == r
