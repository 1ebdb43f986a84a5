"""The text of an answer, a chunk and a stream: what a receipt's output hash covers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from LLM_Mesh.core.answer_text import (
    answer_text,
    choice_fault,
    chunk_finished,
    chunk_text,
    not_an_answer,
    output_sha256,
    stream_text,
)


def test_a_chat_answer_is_its_first_choices_message_content() -> None:
    obj = {"choices": [{"message": {"content": "first"}}, {"message": {"content": "second"}}]}
    assert answer_text(obj) == "first"


def test_a_completion_answer_is_its_first_choices_text() -> None:
    assert answer_text({"choices": [{"text": "echo and more"}]}) == "echo and more"
    assert answer_text({"choices": [{"message": "not a dict", "text": "t"}]}) == "t"


def test_a_chunk_is_its_delta_content_or_its_text() -> None:
    assert chunk_text({"choices": [{"delta": {"content": "a"}}]}) == "a"
    assert chunk_text({"choices": [{"text": "b"}]}) == "b"
    assert chunk_text({"choices": [{"delta": "odd", "text": "c"}]}) == "c"


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"choices": []},
        {"choices": None},
        {"choices": "abc"},
        {"choices": {"a": 1}},
        {"choices": [5]},
        {"choices": [{}]},
        {"choices": [{"message": {"content": None}}]},
        {"choices": [{"message": {"content": 5}}]},
        {"choices": [{"text": 5}]},
        {"choices": [{"delta": {"content": None}}]},
        {"choices": [{"delta": {"content": ["x"]}}]},
    ],
)
def test_anything_without_text_where_the_text_goes_is_empty(obj: dict[str, Any]) -> None:
    """A tool call, a usage chunk or a malformed answer carries no output text."""
    assert answer_text(obj) == ""
    assert chunk_text(obj) == ""


def test_a_stream_is_its_chunks_text_in_order_and_counts_content_chunks() -> None:
    chunks = [
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}}]},
        {"choices": [], "usage": {"completion_tokens": 2}},
    ]
    lines = [f"data: {json.dumps(c)}" for c in chunks] + ["", ": ping", "data: [DONE]"]
    assert stream_text(lines) == ("Hello", 2)
    tight = [f"data:{json.dumps(c)}" for c in chunks]  # no space after "data:"
    assert stream_text(tight) == ("Hello", 2)
    assert stream_text([]) == ("", 0)


def test_output_hash_is_sha256_of_the_utf8_text() -> None:
    assert output_sha256("é") == hashlib.sha256("é".encode()).hexdigest()
    assert output_sha256("") == hashlib.sha256(b"").hexdigest()


def test_a_chunk_with_a_finish_reason_ends_its_answer() -> None:
    assert chunk_finished({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    assert chunk_finished({"choices": [{"text": "", "finish_reason": "length"}]})
    assert not chunk_finished({"choices": [{"delta": {"content": "a"}, "finish_reason": None}]})
    assert not chunk_finished({"choices": [{"finish_reason": ""}]})
    assert not chunk_finished({"choices": [], "usage": {}})
    assert not chunk_finished({"choices": [{"finish_reason": 1}]})


@pytest.mark.parametrize(
    ("choices", "n", "why"),
    [
        ([{"index": 1, "text": "x"}], 1, "index 1 is not one of the 1 asked for"),
        ([{"index": -1, "text": "x"}], 1, "index -1 is not one of the 1"),
        ([{"index": 2**70, "text": "x"}], 1, f"index {str(2**70)[:40]} is not one"),
        ([{"index": 2, "text": "x"}], 2, "index 2 is not one of the 2 asked for"),
        ([{"index": "0", "text": "x"}], 1, "not an integer but str"),
        ([{"index": 0.0, "text": "x"}], 1, "not an integer but float"),
        ([{"index": False, "text": "x"}], 1, "not an integer but bool"),
        ([{"index": None, "text": "x"}], 1, "not an integer but NoneType"),
        ([{"index": 0}, {"index": 0}], 2, "two of its choices have index 0"),
        ([{"index": 0}, {"index": 1}], 1, "index 1 is not one of the 1"),
        ([{"text": "a"}, {"text": "b"}], 1, "index 1 is not one of the 1"),  # by place
        (["x"], 1, "its choice 0 is not an object"),
    ],
)
def test_choices_not_asked_for_are_a_fault(choices: list[Any], n: int, why: str) -> None:
    """Found 2026-12-05 (``choiceidx31``): a node's choices outside ``[0, n)``, of no
    integer index, or twice one index, were read as the answer (its first choice)."""
    fault = choice_fault({"choices": choices}, n)
    assert fault is not None and why in fault
    assert not_an_answer({"choices": choices}, n) is not None


@pytest.mark.parametrize(
    ("obj", "n"),
    [
        ({"choices": [{"index": 0, "text": "x"}]}, 1),
        ({"choices": [{"text": "x"}]}, 1),  # no index: its place
        ({"choices": [{"index": 1, "delta": {"content": "x"}}]}, 2),
        ({"choices": [{"index": 1}, {"index": 0}]}, 2),
        ({"choices": []}, 1),
        ({"usage": {}}, 1),
    ],
)
def test_the_choices_asked_for_are_no_fault(obj: dict[str, Any], n: int) -> None:
    assert choice_fault(obj, n) is None


def test_the_choices_of_a_request_of_one_are_judged_by_default() -> None:
    """A caller that names no ``n`` judges a request of one choice: an ``index`` 1 is a
    fault (a default of 2 would pass the ``choiceidx31`` stream on)."""
    obj = {"choices": [{"index": 1, "text": "x"}]}
    assert choice_fault(obj) == "a choice's index 1 is not one of the 1 asked for"
    assert not_an_answer(obj) == (
        "the node's answer breaks the protocol: a choice's index 1 is not one of the 1 asked for"
    )


def test_a_huge_index_is_cut_at_40_digits_in_the_fault() -> None:
    index = 10**60
    assert choice_fault({"choices": [{"index": index}]}, 1) == (
        f"a choice's index {'1' + '0' * 39} is not one of the 1 asked for"
    )


def test_not_an_answer_says_why_in_words() -> None:
    """What the gateway logs of a node's 200 that is no answer (failed over)."""
    assert not_an_answer({"error": {"message": "x"}, "choices": [{"text": "x"}]}) == (
        "the node's answer is an error object"
    )
    for obj in ({"choices": []}, {"choices": "x"}, {"choices": ["x"]}, {"usage": {}}):
        assert not_an_answer(obj) == "the node's answer has no choice"
    assert not_an_answer({"choices": [{"index": 0}, {"index": 0}]}, 2) == (
        "the node's answer breaks the protocol: two of its choices have index 0"
    )


def test_an_answer_of_the_choices_asked_for_is_an_answer() -> None:
    assert not_an_answer({"choices": [{"index": 0, "text": "x"}]}) is None
    assert not_an_answer({"choices": [{"message": {"content": "x"}}]}) is None
    # the n given is the one judged: index 1 of a request of 2
    assert not_an_answer({"choices": [{"index": 0}, {"index": 1}]}, 2) is None
    assert not_an_answer({"choices": [{"index": 1}, {"index": 0}]}, 2) is None
