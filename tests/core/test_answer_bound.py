"""The bound of an honest non-streamed answer (core/answer_bound.py): honest answers of
OpenAI's shapes fit it, with their worst usual tokens; padding past it does not."""

from __future__ import annotations

import json

import pytest

from LLM_Mesh.core.answer_bound import (
    BASE_BYTES,
    ECHO_CHAR_BYTES,
    LOGPROB_BYTES,
    LOGPROB_CONTAINERS,
    AnswerBound,
    alternatives,
    answer_bound,
    over_containers,
)
from LLM_Mesh.core.limits import json_shape

CEILING = 64 << 20
# tokens as a real vocabulary has them: short words, non-ASCII (escaped by ensure_ascii to
# 6 bytes a character), and a long run of spaces (the longest tokens of common vocabularies)
TOKENS = [" the", "ing", "☃", " Привет", "日本", " " * 64, "\n\n", '"', "\\"]


def _entry(tok: str) -> dict[str, object]:
    return {"token": tok, "logprob": -1.2345678901234567, "bytes": list(tok.encode())}


def chat_answer(tokens: int, top: int | None, n: int = 1) -> bytes:
    """An honest chat answer of ``tokens`` tokens a choice, with ``top`` log-probability
    alternatives (``None``: none asked), as an OpenAI-compatible server writes it."""
    choices = []
    for i in range(n):
        toks = [TOKENS[k % len(TOKENS)] for k in range(tokens)]
        choice: dict[str, object] = {
            "index": i,
            "message": {"role": "assistant", "content": "".join(toks)},
            "finish_reason": "length",
        }
        if top is not None:
            content = [{**_entry(t), "top_logprobs": [_entry(t) for _ in range(top)]} for t in toks]
            choice["logprobs"] = {"content": content}
        choices.append(choice)
    body = {
        "id": "chatcmpl-" + "x" * 40, "object": "chat.completion", "created": 1_700_000_000,
        "model": "gemma-3-270m", "choices": choices,
        "usage": {"prompt_tokens": 10, "completion_tokens": tokens * n, "total_tokens": 1},
        "mesh": {"node_id": "n" * 32, "receipt": {"sig": "s" * 200, "sha256": "h" * 64}},
    }  # fmt: skip
    return json.dumps(body).encode()  # ensure_ascii: the most bytes a character


def completion_answer(tokens: int, top: int, echo: str = "") -> bytes:
    toks = [TOKENS[k % len(TOKENS)] for k in range(tokens)]
    lp = {
        "tokens": toks,
        "token_logprobs": [-0.123456789012345] * tokens,
        "top_logprobs": [{f"{t}{j}": -1.23456789012 for j in range(top)} for t in toks],
        "text_offset": list(range(tokens)),
    }
    choice = {"index": 0, "text": echo + "".join(toks), "logprobs": lp, "finish_reason": "length"}
    return json.dumps({"id": "cmpl-1", "object": "text_completion", "created": 1,
                       "model": "m", "choices": [choice]}).encode()  # fmt: skip


def _fits(raw: bytes, bound: AnswerBound) -> None:
    assert len(raw) <= bound.bytes, (len(raw), bound)
    assert json_shape(raw)[1] <= bound.containers, (json_shape(raw), bound)
    assert over_containers(raw, bound.containers) is None


@pytest.mark.parametrize(("tokens", "top"), [(1, None), (256, None), (4096, None), (256, 0),
                                             (256, 5), (4096, 20)])  # fmt: skip
def test_an_honest_chat_answer_fits_its_bound(tokens: int, top: int | None) -> None:
    body = {"logprobs": top is not None, "top_logprobs": top}
    bound = answer_bound(tokens, alternatives=alternatives(body), ceiling=CEILING)
    _fits(chat_answer(tokens, top), bound)
    assert bound.bytes < CEILING  # bounded below the transport's 64 MiB


def test_an_honest_answer_of_several_choices_fits() -> None:
    bound = answer_bound(3 * 512, choices=3, alternatives=2, ceiling=CEILING)  # token_limit x n
    _fits(chat_answer(512, 2, n=3), bound)


def test_an_honest_completion_with_logprobs_and_echo_fits() -> None:
    prompt = "Ünïcode prompt ☃ " * 200
    body = {"logprobs": 5, "echo": True}
    bound = answer_bound(
        128 + 1, alternatives=alternatives(body), echo_chars=len(prompt),
        echo_tokens=len(prompt.encode()) + 16, ceiling=CEILING,
    )  # fmt: skip
    _fits(completion_answer(128 + len(prompt), 5, echo=prompt), bound)


def test_padding_past_the_bound_is_out() -> None:
    """A node padding a field no client reads: bytes of ``[0,0,...]`` or containers of
    ``[{},{},...]`` past what the request can need (found 2026-12-05)."""
    bound = answer_bound(256, ceiling=CEILING)
    honest = chat_answer(256, None)
    assert len(honest) < bound.bytes < 256 * 1024
    zeros = honest[:-1] + b', "pad": [' + b"0," * bound.bytes + b"0]}"
    assert len(zeros) > bound.bytes
    dicts = honest[:-1] + b', "pad": [' + b"{}," * (bound.containers + 1) + b"{}]}"
    assert len(dicts) < bound.bytes  # within the bytes, past the containers
    assert over_containers(dicts, bound.containers) == json_shape(dicts)[1]


def test_brackets_inside_strings_are_not_containers() -> None:
    raw = json.dumps({"choices": [{"text": "[{" * 500}]}).encode()
    assert raw.count(b"[") + raw.count(b"{") > 1000
    assert over_containers(raw, 10) is None  # 3 containers


def test_the_bound_grows_with_the_request_and_stops_at_the_ceiling() -> None:
    small = answer_bound(16, ceiling=CEILING)
    assert small.bytes == BASE_BYTES + 16 * 256
    assert answer_bound(4096, ceiling=CEILING).bytes > small.bytes
    assert answer_bound(4096, alternatives=20, ceiling=CEILING).bytes > 40 << 20
    huge = answer_bound(1 << 20, alternatives=20, ceiling=CEILING)
    assert huge.bytes == CEILING
    assert answer_bound(0, ceiling=CEILING) == AnswerBound(CEILING, CEILING)  # unknown


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ({}, -1),
        ({"logprobs": False, "top_logprobs": 5}, -1),
        ({"logprobs": True}, 0),
        ({"logprobs": True, "top_logprobs": 20}, 20),
        ({"logprobs": True, "top_logprobs": "20"}, 0),
        ({"logprobs": 3}, 3),  # a completion's
        ({"logprobs": 0}, 0),
        ({"logprobs": -1}, -1),
        ({"logprobs": "5"}, -1),
    ],
)
def test_alternatives_read_both_shapes(body: dict[str, object], want: int) -> None:
    assert alternatives(body) == want


# Each term of the documented bound, and the container count's edge (mutation testing, mut31b).
BIG = 1 << 40  # a ceiling that caps nothing


def test_the_echo_counts_once_a_choice() -> None:
    plain = answer_bound(10, ceiling=BIG)
    assert plain == answer_bound(10, choices=1, alternatives=-1, echo_chars=0, echo_tokens=0,
                                 ceiling=BIG)  # fmt: skip
    # by default one choice and no echoed token
    assert answer_bound(10, alternatives=0, echo_chars=100, ceiling=BIG) == answer_bound(
        10, choices=1, alternatives=0, echo_chars=100, echo_tokens=0, ceiling=BIG
    )
    for n in (1, 3):
        echoed = answer_bound(10, choices=n, echo_chars=100, ceiling=BIG)
        assert echoed.bytes - plain.bytes == 100 * n * ECHO_CHAR_BYTES
    assert answer_bound(10, choices=0, echo_chars=100, ceiling=BIG).bytes == (
        answer_bound(10, choices=1, echo_chars=100, ceiling=BIG).bytes
    )  # n of 0 or less is one choice


def test_log_probability_entries_one_a_token_and_alternative_echo_each_choice() -> None:
    plain = answer_bound(10, ceiling=BIG)
    for alt, echo, n, entries in ((0, 0, 1, 10), (2, 0, 1, 30), (0, 5, 2, 20), (1, -3, 1, 20)):
        b = answer_bound(10, alternatives=alt, echo_tokens=echo, choices=n, ceiling=BIG)
        assert b.containers - plain.containers == entries * LOGPROB_CONTAINERS, (alt, echo, n)
        assert b.bytes - plain.bytes == entries * LOGPROB_BYTES
    # echoed tokens without log-probabilities add no entries
    assert answer_bound(10, echo_tokens=5, ceiling=BIG) == plain


def test_a_chats_top_logprobs_of_1_is_one_alternative() -> None:
    assert alternatives({"logprobs": True, "top_logprobs": 1}) == 1


def test_brackets_in_strings_past_the_quick_count_leave_exactly_allowed_containers_in() -> None:
    raw = b'{"a":"[[[{{"}'  # one container, six brackets
    assert over_containers(raw, 1) is None
    assert over_containers(raw, 0) == 1
