"""The OpenAI request fields the mesh does not support, refused rather than ignored.

No engine of the mesh (``llama-cpp``, ``openai``: its upstream body is rebuilt from the
fields the mesh knows, ``sim``) calls tools, constrains its output to JSON, biases
tokens, writes audio or fills in a suffix. A request that asks for one of these and gets
plain text back would be wrong without saying so, so the gateway answers 400
``unsupported_parameter`` naming the field (OpenAI's code for it) before any node is
chosen. A field set to its "off" value (``tools: []``, ``tool_choice: "none"``,
``response_format: {"type": "text"}``, ``logit_bias: {}``, ``best_of: 1``,
``modalities: ["text"]``, ``suffix: ""``, ``null``) asks for nothing and passes, as
clients and frameworks often send those.

``presence_penalty`` and ``frequency_penalty`` are applied (in OpenAI's range, -2 to 2:
``core/schemas.py``; the engines: ``node/engines/llama_cpp.py``; until 2026-12-05 accepted
and ignored). Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["UNSUPPORTED_FIELDS", "unsupported_field"]


def _empty(value: Any) -> bool:
    return value is None or value in ("", [], {})


def _tool_choice_off(value: Any) -> bool:
    return value is None or value == "none"


def _text_format(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and value.get("type") == "text")


def _text_only(value: Any) -> bool:
    return value is None or value == ["text"]


def _one(value: Any) -> bool:
    return value is None or (value == 1 and not isinstance(value, bool))


# field -> whether its value asks for nothing; what the refusal says it is
_OFF: dict[str, tuple[Callable[[Any], bool], str]] = {
    "tools": (_empty, "tool calling"),
    "functions": (_empty, "tool calling"),
    "tool_choice": (_tool_choice_off, "tool calling"),
    "function_call": (_tool_choice_off, "tool calling"),
    "response_format": (_text_format, "structured output (JSON mode, json_schema)"),
    "logit_bias": (_empty, "logit bias"),
    "audio": (_empty, "audio output"),
    "modalities": (_text_only, "output other than text"),
    "prediction": (_empty, "predicted outputs"),
    "best_of": (_one, "best_of (server-side candidates)"),
    "suffix": (_empty, "a suffix (insertion)"),
}
UNSUPPORTED_FIELDS = tuple(_OFF)
_FIELDS = frozenset(_OFF)


def unsupported_field(body: dict[str, Any]) -> tuple[str, str] | None:
    """The first field of ``body`` asking for what no engine does, and what it asks for;
    ``None`` when it asks for nothing unsupported (cheap for a plain body: a set test)."""
    if _FIELDS.isdisjoint(body):
        return None
    for name, (off, what) in _OFF.items():
        if name in body and not off(body[name]):
            return name, what
    return None
