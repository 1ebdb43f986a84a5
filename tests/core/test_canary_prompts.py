"""The canary prompt pool: distinct, ordinary-sized prompts, code and text alike; an
admin's private pool read from a file, mixed with it or replacing it."""

from __future__ import annotations

import json

import pytest

from LLM_Mesh.core.canary_prompts import MAX_PROMPT_CHARS, PROMPTS, parse_pool, pool_for


def test_the_pool_is_distinct_everyday_prompts() -> None:
    assert len(PROMPTS) >= 64 and len(set(PROMPTS)) == len(PROMPTS)
    assert all(p.strip() and len(p) <= 200 for p in PROMPTS)
    code = [p for p in PROMPTS if any(c in p for c in "(){}=<>;#/")]
    # both kinds, so a probe is neither always code nor always prose
    assert len(PROMPTS) // 4 <= len(code) <= 3 * len(PROMPTS) // 4


def test_a_private_pool_is_read_from_a_json_array_or_json_lines() -> None:
    code = "def f(x):\n    return"
    assert parse_pool(json.dumps([code, "The sky is", code])) == (code, "The sky is")
    lines = "\n".join([json.dumps(code), "", json.dumps("The sky is")]) + "\n"
    assert parse_pool(lines) == (code, "The sky is")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "no prompts"),
        ("[]", "no prompts"),
        ("[1, 2]", "item 1 is not a non-empty string"),
        ('["ok", "  "]', "item 2 is not a non-empty string"),
        ('["ok",', "not a JSON array of strings"),
        ('"ok"\nplain text', "line 2 is not a JSON string"),
        ('{"prompt": "x"}', "line 1 is not a non-empty string"),
        (json.dumps(["x" * (MAX_PROMPT_CHARS + 1)]), f"at most {MAX_PROMPT_CHARS}"),
    ],
)
def test_an_invalid_private_pool_is_an_error_naming_the_file_and_place(
    text: str, said: str
) -> None:
    with pytest.raises(ValueError, match=r"^the file: ") as info:
        parse_pool(text, "the file")
    assert said in str(info.value)


def test_the_pool_mixes_or_replaces() -> None:
    private = ("secret one", PROMPTS[0], "secret two")
    mixed = pool_for(private, "mix")
    assert mixed[: len(PROMPTS)] == PROMPTS and mixed[len(PROMPTS) :] == (
        "secret one",
        "secret two",
    )
    assert pool_for((), "mix") == PROMPTS
    assert pool_for(private, "replace") == private
    with pytest.raises(ValueError, match="needs a prompt file"):
        pool_for((), "replace")
    with pytest.raises(ValueError, match="mix or replace"):
        pool_for(private, "both")
