"""core/unsupported.py: what is refused, and the "off" values that pass."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.core.unsupported import UNSUPPORTED_FIELDS, unsupported_content, unsupported_field


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": []},
        {"tools": [], "functions": None, "tool_choice": "none", "function_call": "none"},
        {"response_format": {"type": "text"}, "logit_bias": {}, "audio": None},
        {"modalities": ["text"], "prediction": None, "best_of": 1, "suffix": ""},
        {"presence_penalty": 1.0, "frequency_penalty": -1.0, "parallel_tool_calls": True},
    ],
)
def test_nothing_asked(body: dict[str, Any]) -> None:
    assert unsupported_field(body) is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"function_call": {"name": "f"}}, "function_call"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"response_format": "json"}, "response_format"),
        ({"logit_bias": {"1": -100}}, "logit_bias"),
        ({"audio": {"voice": "alloy"}}, "audio"),
        ({"modalities": ["audio"]}, "modalities"),
        ({"prediction": {"type": "content"}}, "prediction"),
        ({"best_of": 2}, "best_of"),
        ({"best_of": True}, "best_of"),
        ({"suffix": "}"}, "suffix"),
    ],
)
def test_refused_by_name(body: dict[str, Any], field: str) -> None:
    found = unsupported_field(body)
    assert found is not None and found[0] == field and found[1]
    assert field in UNSUPPORTED_FIELDS


# (mutation testing, mut31b)


def test_a_default_service_tier_is_no_ask_another_is_refused() -> None:
    for tier in (None, "auto", "default"):
        assert unsupported_field({"service_tier": tier}) is None, tier
    found = unsupported_field({"service_tier": "flex"})
    assert found is not None and found[0] == "service_tier"


def test_a_prompt_of_token_ids_is_refused_in_words_one_of_text_is_not() -> None:
    said = ("prompt", "a prompt of token ids (send it as text)")
    assert unsupported_content({"prompt": [1, 2, 3]}) == said
    assert unsupported_content({"prompt": [[1, 2], [3]]}) == said
    assert unsupported_content({"prompt": ["a", "b"]}) is None
    assert unsupported_content({"prompt": "a"}) is None


def test_a_message_or_part_that_is_no_object_is_left_to_the_parser() -> None:
    body = {"messages": ["hi", {"role": "user", "content": ["a part that is text", {"text": "x"}]}]}
    assert unsupported_content(body) is None
    body["messages"].append({"role": "user", "content": [{"type": "image_url"}]})
    assert unsupported_content(body) == (
        "messages.2.content.0",
        "image_url content (only text is read)",
    )
