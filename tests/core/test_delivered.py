"""The completion tokens priced for a node's part: at most the bytes it delivered + slack."""

from __future__ import annotations

from LLM_Mesh.core.delivered import (
    MAX_STOP_SLACK,
    SLACK_PER_CHOICE,
    answer_bytes,
    chunk_bytes,
    counted_completion,
    priced_completion,
    states_completion,
    stop_slack,
)


def test_a_count_past_the_bytes_delivered_is_priced_at_the_bytes_plus_the_slack() -> None:
    assert SLACK_PER_CHOICE == 16
    assert priced_completion(512, 2) == 2 + 16  # "Hi" reported as max_tokens
    assert priced_completion(512, 2, choices=3) == 2 + 3 * 16  # the slack is per choice
    assert priced_completion(0, 0) == 0


def test_a_requests_longest_stop_string_adds_its_bytes_to_each_choices_slack() -> None:
    """A 40-byte stop string an honest engine generated and cut off: its tokens (up to one
    a byte) are counted by vLLM / a llama.cpp server; 16 a choice under-paid it (found
    2026-12-04, review). Without stop strings the cap is as tight as before."""
    stop = "</answer-of-the-model-ends-here-really>."
    assert stop_slack([stop, "\n"]) == len(stop) == 40
    assert priced_completion(2 + 40 + 1, 2, stop_bytes=stop_slack([stop])) == 43
    assert priced_completion(512, 2, choices=2, stop_bytes=40) == 2 + 2 * (16 + 40)
    assert stop_slack(["é" * 10]) == 20  # its UTF-8 bytes, not its characters
    assert stop_slack([]) == 0 and priced_completion(512, 2, stop_bytes=0) == 2 + 16
    # bounded: an operator's larger max_stop_chars widens it no further
    assert stop_slack(["x" * 5000]) == MAX_STOP_SLACK == 1024
    assert priced_completion(10**6, 0, stop_bytes=10**6) == 16 + MAX_STOP_SLACK


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
    assert answer_bytes(answer) == 2  # n is 1: the first choice only
    assert answer_bytes(answer, choices=3) == 2 + 2 + 4 + 1 + 7  # role, id, type: no text
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
    assert chunk_bytes(chunks) == 2 + 3 + 2  # n is 1: index 1 is no choice asked for
    assert chunk_bytes(chunks, choices=2) == 2 + 2 + 3 + 2
    assert chunk_bytes([]) == 0


def test_padding_no_client_reads_is_not_counted() -> None:
    """Found 2026-12-04 (review): every string of a choice counted, so a node padded its
    "Hi" with a key no client reads, or a choice the request did not ask for, and was paid
    its claim of 400 tokens."""
    padded = {
        "choices": [
            {"index": 0, "message": {"content": "Hi", "x_pad": " " * 400, "extra": ["y" * 99]}},
            {"index": 7, "message": {"content": "z" * 400}},  # n is 1
            {"index": "0", "message": {"content": "w" * 400}},  # not an index
        ]
    }
    assert answer_bytes(padded) == 2
    assert priced_completion(400, answer_bytes(padded)) == 2 + SLACK_PER_CHOICE
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Hi", "pad": " " * 400}}]},
        {"choices": [{"index": 3, "delta": {"content": "z" * 400}}]},
    ]
    assert chunk_bytes(chunks) == 2


def test_content_parts_and_calls_count_their_text() -> None:
    message = {
        "content": [{"type": "text", "text": "ab"}, {"type": "image_url", "image_url": "u" * 50}],
        "function_call": {"name": "g", "arguments": "{}"},
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "1"}},
            "odd",
        ],
    }
    assert answer_bytes({"choices": [{"message": message}]}) == 2 + 1 + 2 + 1 + 1


def test_a_lone_surrogate_is_counted_not_raised() -> None:
    assert answer_bytes({"choices": [{"message": {"content": "\ud800"}}]}) == 3


def _answer(*texts: str) -> dict[str, object]:
    return {
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}}
            for i, t in enumerate(texts)
        ]
    }


def test_an_answer_without_a_stated_count_is_counted_at_three_characters_a_token() -> None:
    """A node that sent no ``usage`` (a node of another make): ⌈characters / 3⌉ of the
    choices asked for, never above their bytes, at most the request's token limit."""
    assert not states_completion(None) and not states_completion({"prompt_tokens": 3})
    assert not states_completion({"completion_tokens": "7"}) and states_completion(
        {"completion_tokens": 0}
    )
    assert counted_completion(_answer("Hello!")) == 2
    assert counted_completion(_answer("é" * 7)) == 3 <= answer_bytes(_answer("é" * 7))
    assert counted_completion(_answer("abcd", "abcdefg"), choices=2) == 4  # 11 characters
    assert counted_completion(_answer("abcd", "abcdefg"), choices=1) == 2  # a choice past n
    assert counted_completion(_answer("x" * 3000), limit=100) == 100  # max_tokens x n
    assert counted_completion(_answer("")) == counted_completion({"choices": "no"}) == 0
    echo = {"choices": [{"index": 0, "text": "Once upon a time, there"}]}  # the prompt echoed
    assert counted_completion(echo, echoed="Once upon a time,") == 2  # " there": 6 characters
    # the defaults: choice 0 only, nothing echoed, no limit; a limit of 1 token holds
    assert counted_completion(_answer("abcdef", "ghijklmnop")) == 2
    assert counted_completion({"choices": [{"index": 0, "text": "XXXXXX"}]}) == 2
    assert counted_completion(_answer("x" * 30), limit=1) == 1
    # a choice that is not an object, or not asked for, is skipped: the next still counts
    assert counted_completion({"choices": ["junk", {"index": 0, "text": "abcdef"}]}) == 2
    skipped = [{"index": 5, "text": "zzz"}, {"index": 0, "text": "abcdef"}]
    assert counted_completion({"choices": skipped}) == 2


def test_echo_advance_follows_a_choice_piece_by_piece() -> None:
    """attack34: a stream's echo is taken off each choice that begins with it."""
    from LLM_Mesh.core.delivered import echo_advance

    assert echo_advance(0, "ab", "abcd") == 2
    assert echo_advance(2, "cdHi", "abcd") == 4  # the echo's end and text after it
    assert echo_advance(4, "zz", "abcd") == 4  # whole: it stays
    assert echo_advance(2, "x", "abcd") == -1  # not the prompt
    assert echo_advance(-1, "cd", "abcd") == -1
    assert echo_advance(0, "", "abcd") == 0
