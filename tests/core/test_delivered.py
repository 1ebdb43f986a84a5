"""The completion tokens priced for a node's part: at most the bytes it delivered + slack."""

from __future__ import annotations

from LLM_Mesh.core.delivered import (
    SLACK_PER_CHOICE,
    answer_bytes,
    chunk_bytes,
    priced_completion,
)


def test_a_count_past_the_bytes_delivered_is_priced_at_the_bytes_plus_the_slack() -> None:
    assert SLACK_PER_CHOICE == 16
    assert priced_completion(512, 2) == 2 + 16  # "Hi" reported as max_tokens
    assert priced_completion(512, 2, choices=3) == 2 + 3 * 16  # the slack is per choice
    assert priced_completion(0, 0) == 0


def test_an_honest_count_is_priced_as_reported() -> None:
    assert priced_completion(5, 6) == 5  # "Hello!": 6 bytes, 5 tokens
    assert priced_completion(17, 1) == 17  # an end token and special tokens: within the slack
    assert priced_completion(300, 1200) == 300
    assert priced_completion(3, 0, choices=0) == 3  # no n: one choice's slack


def test_every_choice_and_every_generated_field_counts_multibyte_as_its_bytes() -> None:
    answer = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi"}},
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": "é",  # 2 bytes
                    "reasoning_content": "🙂",
                },
            },  # 2 + 4 bytes
            {
                "index": 2,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                },
            },  # 1 + 7 bytes
        ],
        "usage": {"completion_tokens": 10**6},
        "mesh": {"note": "x" * 100},  # not a choice's text
    }
    assert answer_bytes(answer) == 2 + 2 + 4 + 1 + 7  # role, id and type are no text
    assert answer_bytes({"choices": [{"text": "abc"}]}) == 3  # a completion
    for nothing in (None, [], "x", {"choices": "x"}, {"choices": [1, None]}):
        assert answer_bytes(nothing) == 0


def test_a_streams_chunks_count_every_choices_delta() -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"choices": [{"index": 1, "delta": {"content": "yo"}}]},
        {"choices": [{"index": 0, "delta": {"reasoning": "hmm"}}]},
        {"choices": [{"index": 0, "text": "ab"}]},  # a completion's
        {"choices": [], "usage": {"completion_tokens": 500}},
        "not an object",
    ]
    assert chunk_bytes(chunks) == 2 + 2 + 3 + 2
    assert chunk_bytes([]) == 0


def test_deep_json_is_walked_without_recursion() -> None:
    deep: object = "abc"
    for _ in range(50_000):
        deep = [deep]
    assert answer_bytes({"choices": [{"message": {"content": deep}}]}) == 3


def test_a_lone_surrogate_is_counted_not_raised() -> None:
    assert answer_bytes({"choices": [{"message": {"content": "\ud800"}}]}) == 3
