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

Fields of OpenAI's API for models the mesh has none of are refused the same way
(``reasoning_effort``, ``verbosity`` other than ``"medium"``, ``web_search_options``,
``service_tier`` other than ``"auto"`` / ``"default"``), as is a chat message's content
part other than text (:func:`unsupported_content`: an image or audio was dropped, the
answer as if none had been sent), and a field that is no request field of the endpoint
(:func:`unknown_field`: ``top_k`` sent for vLLM, ``max_completion_tokens`` to
``/v1/completions``; was forwarded and ignored). Found 2026-12-05 by an SDK user's audit.

``presence_penalty`` and ``frequency_penalty`` are applied (in OpenAI's range, -2 to 2:
``core/schemas.py``; the engines: ``node/engines/llama_cpp.py``; until 2026-12-05 accepted
and ignored). Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "CHAT_FIELDS",
    "COMPLETION_FIELDS",
    "UNSUPPORTED_FIELDS",
    "unknown_field",
    "unsupported_content",
    "unsupported_field",
]


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


def _none(value: Any) -> bool:
    return value is None


def _medium(value: Any) -> bool:
    return value is None or value == "medium"


def _default_tier(value: Any) -> bool:
    return value is None or value in ("auto", "default")


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
    "reasoning_effort": (_none, "reasoning effort (no model of the mesh reasons)"),
    "verbosity": (_medium, "verbosity"),
    "web_search_options": (_none, "web search"),
    "service_tier": (_default_tier, "a service tier other than auto"),
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


# every request field of OpenAI's two endpoints (its API reference, 2026), applied,
# refused above or withheld (core/withheld.py); and the mesh's own in the request model
_COMMON = frozenset({
    "model", "frequency_penalty", "logit_bias", "logprobs", "max_tokens", "n",
    "presence_penalty", "seed", "stop", "stream", "stream_options", "temperature", "top_p",
    "user", "task_type",
})  # fmt: skip
CHAT_FIELDS = _COMMON | {
    "messages", "audio", "function_call", "functions", "max_completion_tokens", "metadata",
    "modalities", "parallel_tool_calls", "prediction", "prompt_cache_key",
    "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier",
    "service_tier", "store", "tool_choice", "tools", "top_logprobs", "verbosity",
    "web_search_options",
}  # fmt: skip
COMPLETION_FIELDS = _COMMON | {
    "prompt", "best_of", "echo", "suffix", "service_tier", "prompt_cache_key",
    "prompt_cache_retention", "safety_identifier", "metadata", "store",
}  # fmt: skip


def unknown_field(body: dict[str, Any], known: frozenset[str]) -> str | None:
    """The first field of ``body`` set (not ``null``) that is not in ``known`` (the
    endpoint's fields and the mesh's extensions): what the mesh would forward and no node
    would read."""
    if known.issuperset(body):
        return None
    for name, value in body.items():
        if name not in known and value is not None:
            return name
    return None


def unsupported_content(body: dict[str, Any]) -> tuple[str, str] | None:
    """The first chat content part that is not text (``messages.I.content.J``) and its
    type: the engines read a message's text parts only (``ChatMessage.text``); or a
    completion's prompt of token ids (``prompt``: the mesh takes text)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and any(isinstance(p, (int, list)) for p in prompt):
        return "prompt", "a prompt of token ids (send it as text)"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            kind = part.get("type", "text") if isinstance(part, dict) else "text"
            if kind != "text":  # (no type: its text is read; not an object: refused later)
                return f"messages.{i}.content.{j}", f"{kind} content (only text is read)"
    return None
