"""``core/unsupported.py``'s checks added by the SDK audit of 2026-12-05, pure."""

from __future__ import annotations

from LLM_Mesh.core.unsupported import (
    CHAT_FIELDS,
    COMPLETION_FIELDS,
    unknown_field,
    unsupported_content,
    unsupported_field,
)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_an_unknown_field_is_named_and_a_null_one_asks_nothing() -> None:
    assert unknown_field(CHAT, CHAT_FIELDS) is None
    assert unknown_field({**CHAT, "top_k": 4}, CHAT_FIELDS) == "top_k"
    assert unknown_field({**CHAT, "top_k": None}, CHAT_FIELDS) is None
    done = {"model": "m", "prompt": "p", "max_completion_tokens": 3}
    assert unknown_field(done, COMPLETION_FIELDS) == "max_completion_tokens"


def test_only_text_parts_pass() -> None:
    parts = [{"type": "text", "text": "a"}, {"text": "no type: read as text"}]
    assert unsupported_content({"messages": [{"role": "user", "content": parts}]}) is None
    audio = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    body = {"messages": [{"role": "system", "content": "s"},
                         {"role": "user", "content": [*parts, audio]}]}  # fmt: skip
    assert unsupported_content(body) == (
        "messages.1.content.2",
        "input_audio content (only text is read)",
    )


def test_the_fields_for_models_the_mesh_lacks_pass_only_off() -> None:
    for field, off, on in [
        ("reasoning_effort", None, "low"),
        ("verbosity", "medium", "high"),
        ("service_tier", "default", "flex"),
        ("web_search_options", None, {}),
    ]:
        assert unsupported_field({**CHAT, field: off}) is None
        found = unsupported_field({**CHAT, field: on})
        assert found is not None and found[0] == field
