"""Wire models (core/schemas.py): tolerant of unknown fields, strict on values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from LLM_Mesh.core.schemas import (
    MAX_TOKENS_LIMIT,
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    Heartbeat,
    HostedModel,
    MeshMeta,
    NodeRegistration,
    NodeState,
    NodeView,
)


def registration(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "node_id": "n1",
        "url": "http://10.0.0.2:8801",
        "models": [{"id": "gemma-3-270m"}],
    }
    body.update(kw)
    return body


def chat(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(kw)
    return body


# --- unknown fields -----------------------------------------------------------------


def test_registration_tolerates_unknown_fields_and_keeps_them() -> None:
    reg = NodeRegistration.model_validate(
        registration(future_field={"x": 1}, models=[{"id": "m", "new_flag": True}])
    )
    assert reg.model_dump()["future_field"] == {"x": 1}
    assert reg.models[0].model_dump()["new_flag"] is True


@pytest.mark.parametrize(
    ("cls", "body"),
    [
        (Heartbeat, {"in_flight": 1, "gpu_temp_c": 71}),
        (MeshMeta, {"node_id": "n", "model": "m", "carbon_g": 0.1}),
        (HostedModel, {"id": "m", "quant": "Q4"}),
        (ChatCompletionRequest, chat(logprobs=True, response_format={"type": "text"})),
        (CompletionRequest, {"model": "m", "prompt": "x", "suffix": "y"}),
        (ChatMessage, {"role": "user", "content": "x", "name": "bob"}),
    ],
)
def test_unknown_fields_tolerated(cls: Any, body: dict[str, Any]) -> None:
    obj = cls.model_validate(body)
    dumped = obj.model_dump()
    for k, v in body.items():
        if k not in ("messages",):
            assert dumped[k] == v


def test_node_view_unknown_state_rejected_known_accepted() -> None:
    base = {"node_id": "n", "url": "http://x", "healthy": True, "models": [{"id": "m"}]}
    assert NodeView.model_validate({**base, "state": "draining"}).state is NodeState.DRAINING
    with pytest.raises(ValidationError):
        NodeView.model_validate({**base, "state": "exploded"})


def test_registration_defaults() -> None:
    reg = NodeRegistration.model_validate(registration())
    assert reg.state is NodeState.ONLINE
    assert reg.max_concurrency == 1
    assert reg.max_queue == 8
    assert reg.models[0].engine == "llama-cpp"
    assert reg.models[0].simulated is False


# --- NodeRegistration ---------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://10.0.0.2:8801", "https://node.example.org"])
def test_registration_url_http_ok(url: str) -> None:
    assert NodeRegistration.model_validate(registration(url=url)).url == url


def test_registration_url_trailing_slash_stripped() -> None:
    reg = NodeRegistration.model_validate(registration(url="http://10.0.0.2:8801/"))
    assert reg.url == "http://10.0.0.2:8801"


@pytest.mark.parametrize("url", ["ftp://x", "10.0.0.2:8801", "", "file:///etc/passwd", "HTTPX://a"])
def test_registration_url_rejected(url: str) -> None:
    with pytest.raises(ValidationError):
        NodeRegistration.model_validate(registration(url=url))


def test_registration_needs_models_and_id() -> None:
    with pytest.raises(ValidationError):
        NodeRegistration.model_validate(registration(models=[]))
    with pytest.raises(ValidationError):
        NodeRegistration.model_validate(registration(node_id=""))
    with pytest.raises(ValidationError):
        NodeRegistration.model_validate(registration(node_id="x" * 129))
    with pytest.raises(ValidationError):
        NodeRegistration.model_validate(registration(max_concurrency=0))


def test_heartbeat_counts_non_negative() -> None:
    with pytest.raises(ValidationError):
        Heartbeat.model_validate({"in_flight": -1})
    with pytest.raises(ValidationError):
        Heartbeat.model_validate({"queued": -1})


# --- OpenAI request bodies ----------------------------------------------------------


def test_empty_messages_rejected() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(chat(messages=[]))


def test_missing_messages_rejected() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({"model": "m"})


def test_bad_role_rejected() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(chat(messages=[{"role": "wizard", "content": "x"}]))


@pytest.mark.parametrize("bad", [0, -1, -100, MAX_TOKENS_LIMIT + 1, 10**9])
def test_max_tokens_out_of_range_rejected(bad: int) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(chat(max_tokens=bad))
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(chat(max_completion_tokens=bad))
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"model": "m", "prompt": "p", "max_tokens": bad})


@pytest.mark.parametrize("ok", [1, 128, MAX_TOKENS_LIMIT])
def test_max_tokens_in_range_ok(ok: int) -> None:
    assert ChatCompletionRequest.model_validate(chat(max_tokens=ok)).max_tokens == ok


def test_model_required_non_empty() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(chat(model=""))


BAD_SAMPLING = [
    ("temperature", -0.1), ("temperature", 2.1), ("top_p", -0.01), ("top_p", 1.01), ("n", 0),
    ("seed", 2**63), ("seed", -(2**63) - 1), ("max_tokens", 0),
]  # fmt: skip


@pytest.mark.parametrize(("field", "bad"), BAD_SAMPLING)
def test_sampling_bounds(field: str, bad: float) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(chat(**{field: bad}))


GOOD_SAMPLING = [
    ("temperature", 0), ("temperature", 2), ("top_p", 0), ("top_p", 1), ("n", 1),
    ("seed", 2**63 - 1), ("seed", -(2**63)), ("presence_penalty", -2), ("frequency_penalty", 2),
]  # fmt: skip


@pytest.mark.parametrize(("field", "good"), GOOD_SAMPLING)
def test_openais_sampling_ranges_are_taken_whole(field: str, good: float) -> None:
    """OpenAI's documented ranges, ends included (``top_p: 0`` was refused until
    2026-12-05)."""
    req = ChatCompletionRequest.model_validate(chat(**{field: good}))
    assert getattr(req, field) == good


def test_effective_max_tokens() -> None:
    assert ChatCompletionRequest.model_validate(chat()).effective_max_tokens(64) == 64
    assert ChatCompletionRequest.model_validate(chat(max_tokens=10)).effective_max_tokens(64) == 10
    assert (
        ChatCompletionRequest.model_validate(
            chat(max_tokens=10, max_completion_tokens=20)
        ).effective_max_tokens(64)
        == 20
    )
    assert (
        CompletionRequest.model_validate({"model": "m", "prompt": "p"}).effective_max_tokens(7) == 7
    )


def test_stop_list() -> None:
    assert ChatCompletionRequest.model_validate(chat()).stop_list() == []
    assert ChatCompletionRequest.model_validate(chat(stop="\n")).stop_list() == ["\n"]
    assert ChatCompletionRequest.model_validate(chat(stop=["a", "b"])).stop_list() == ["a", "b"]


def test_message_text_from_parts() -> None:
    m = ChatMessage.model_validate(
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"text": "b"}],
        }
    )
    assert m.text() == "ab"
    assert ChatMessage.model_validate({"role": "assistant", "content": None}).text() == ""
    assert ChatMessage.model_validate({"role": "user", "content": "x"}).text() == "x"


def test_completion_prompt_list_of_two_rejected() -> None:
    with pytest.raises(ValidationError, match="exactly one prompt"):
        CompletionRequest.model_validate({"model": "m", "prompt": ["a", "b"]})


def test_completion_prompt_empty_list_rejected() -> None:
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"model": "m", "prompt": []})


def test_completion_prompt_list_of_one_ok() -> None:
    req = CompletionRequest.model_validate({"model": "m", "prompt": ["def f():"]})
    assert req.prompt_text() == "def f():"
    assert CompletionRequest.model_validate({"model": "m", "prompt": "x"}).prompt_text() == "x"


def test_task_type_extension() -> None:
    req = CompletionRequest.model_validate({"model": "m", "prompt": "x", "task_type": "python"})
    assert req.task_type == "python"
    assert req.stream is False


def test_mesh_meta_defaults() -> None:
    meta = MeshMeta.model_validate({"node_id": "n", "model": "m"})
    assert meta.currency == "micro-NetworkToken"
    assert meta.attempts == 1
    assert meta.cost == 0 and type(meta.cost) is int
    assert meta.fallback_from is None


def test_stop_and_prompt_as_a_string_or_a_list() -> None:
    req = CompletionRequest(model="m", prompt="Hello", stop="END")
    assert req.prompt_text() == "Hello" and req.stop_list() == ["END"]
    req = CompletionRequest(model="m", prompt=["Hello"], stop=["END", "\n\n"])
    assert req.prompt_text() == "Hello" and req.stop_list() == ["END", "\n\n"]
    assert CompletionRequest(model="m", prompt="x").stop_list() == []


# written against the module's mutants (mut33, 2026-12-06)


@pytest.mark.parametrize("name", ["gemma\x1b[2J", "a\nb", "x\u202ey"])
def test_a_model_or_engine_name_with_control_or_format_characters_is_refused(name: str) -> None:
    for fields in ({"id": name}, {"id": "m", "engine": name}):
        with pytest.raises(ValidationError) as caught:
            HostedModel(**fields)  # type: ignore[arg-type]
        assert [e["msg"] for e in caught.value.errors()] == [
            "Value error, must be printable: no control or format characters"
        ]
    assert HostedModel(id="gemma-3 270m é").id == "gemma-3 270m é"


def test_a_chat_request_wants_top_candidates_only_with_logprobs() -> None:
    base: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert ChatCompletionRequest(**base).top_logprobs_wanted() is None
    assert ChatCompletionRequest(**base, logprobs=False).top_logprobs_wanted() is None
    assert ChatCompletionRequest(**base, logprobs=True).top_logprobs_wanted() == 0
    assert ChatCompletionRequest(**base, logprobs=True, top_logprobs=3).top_logprobs_wanted() == 3


# written against the module's mutants (mut42, 2026-12-07): NodeState.stored had no core test


def test_a_stored_state_is_read_as_itself_an_unknown_one_as_offline() -> None:
    """review42: a state this version does not know (a newer replica's, or written by hand)
    reads as ``OFFLINE`` (never routed), never a ``ValueError``; a known one as itself."""
    for state in NodeState:
        assert NodeState.stored(state.value) is state
    for unknown in ("retired", "", "ONLINE", "online "):
        assert NodeState.stored(unknown) is NodeState.OFFLINE
