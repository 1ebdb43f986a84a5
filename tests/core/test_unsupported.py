"""core/unsupported.py: what is refused, and the "off" values that pass."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.core.unsupported import UNSUPPORTED_FIELDS, unsupported_field


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
