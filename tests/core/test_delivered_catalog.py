"""A catalog model's answer counts its content only, and an echoed prompt is the client's
text, not the node's (core/delivered.py, ``money33``'s fixes): pinned here at the core
functions, which had no core test of either (2026-12-06, ``mut34``: their mutants lived)."""

from __future__ import annotations

from LLM_Mesh.core.delivered import (
    answer_bytes,
    chunk_bytes,
    completion_cap,
    counted_completion,
    echo_advance,
    echo_bytes,
)

PAD = "x" * 400  # made-up reasoning, a tool call's arguments: what a node could pad with


def _padded(key: str) -> dict[str, object]:
    """A choice's ``message`` (``delta``) of "Hi" (as content parts too) padded with every
    other field that carries text."""
    return {"choices": [{"index": 0, key: {
        "content": ["skipped", {"type": "text", "text": "Hi"}, {"text": 7}],
        "reasoning_content": PAD, "reasoning": PAD, "refusal": PAD,
        "tool_calls": [{"function": {"name": "f", "arguments": PAD}}],
        "function_call": {"name": "g", "arguments": PAD},
    }}]}  # fmt: skip


def test_a_catalog_models_answer_counts_its_content_alone() -> None:
    whole = _padded("message")
    assert answer_bytes(whole, text_only=True) == 2
    assert answer_bytes(whole) == 2 + 5 * 400 + 2  # a custom model's: every text field
    assert chunk_bytes([_padded("delta")], text_only=True) == 2
    assert chunk_bytes([_padded("delta")]) == 2 + 5 * 400 + 2
    assert counted_completion(whole, text_only=True) == 1  # ⌈2 / 3⌉
    assert counted_completion(whole) == -(-(2 + 5 * 400 + 2) // 3)


def test_a_catalog_completions_text_still_counts() -> None:
    """A completion choice's ``text`` is its content: counted with ``text_only`` too."""
    answer = {"choices": [{"index": 0, "text": "Once upon"}]}
    assert answer_bytes(answer, text_only=True) == 9
    assert chunk_bytes([answer], text_only=True) == 9
    assert counted_completion(answer, text_only=True) == 3


def test_an_echoed_prompt_is_taken_off_each_choice_that_begins_with_it() -> None:
    prompt = "Once upon a time, "
    answer = {"choices": [{"index": 0, "text": prompt + "there"},
                          {"index": 1, "text": "there"}]}  # fmt: skip
    assert answer_bytes(answer, choices=2, echoed=prompt) == 5 + 5
    assert answer_bytes(answer, choices=2) == len(prompt) + 10
    assert answer_bytes({"choices": [{"index": 0, "text": "XXXXab"}]}) == 6  # nothing echoed


def test_echo_bytes_are_the_prompts_utf8_bytes_where_the_text_begins_with_it() -> None:
    assert echo_bytes("Once upon", "Once") == 4
    assert echo_bytes("été", "é") == 2  # bytes, not characters
    assert echo_bytes("Once upon", "upon") == 0  # not at the start
    assert echo_bytes("Once", "") == 0


def test_the_cap_defaults_to_one_choice_and_no_stop_string() -> None:
    assert completion_cap(10) == 10 + 16
    assert completion_cap(0) == 16


def test_a_streamed_choice_begins_with_the_echo_piece_by_piece_or_never() -> None:
    """``echo_advance`` (attack34): how much of the echoed prompt a streamed choice has
    begun with, its pieces cut anywhere; once it did not begin with it (-1), or once whole,
    no later piece changes that (mut34: a -1 read the prompt's last characters again)."""
    echoed = "abc"
    assert echo_advance(0, "ab", echoed) == 2
    assert echo_advance(2, "c", echoed) == 3
    assert echo_advance(1, "bcdef", echoed) == 3  # a piece past the echo's end: whole
    assert echo_advance(0, "abX", echoed) == -1
    assert echo_advance(3, "anything", echoed) == 3
    for piece in ("c", "cd", "", "x"):
        assert echo_advance(-1, piece, echoed) == -1
