"""An openai SDK user's audit of the gateway (2026-12-05): every request field either works
(reaches the node) or is refused by name (400), never dropped without a word or a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.registry.helpers import running
from tests.registry.sdk_client import sdk_client

HI = [{"role": "user", "content": "hi"}]
MODEL = "gemma-3-270m"


async def test_penalties_reach_the_node_and_are_checked_in_range(tmp_path: Path) -> None:
    """``presence_penalty`` / ``frequency_penalty`` were accepted and ignored (found
    2026-12-05); now forwarded to the node, which applies them, in OpenAI's range."""
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        async with sdk_client(h) as client:
            await client.chat.completions.create(
                model=MODEL, messages=HI, presence_penalty=0.5, frequency_penalty=-1.25
            )
            await client.completions.create(model=MODEL, prompt="def", frequency_penalty=2)
            for field in ("presence_penalty", "frequency_penalty"):
                for value in (2.01, -2.5):
                    with pytest.raises(openai.BadRequestError) as bad:
                        await client.chat.completions.create(
                            model=MODEL, messages=HI, **{field: value}
                        )
                    assert bad.value.param == field and field in bad.value.message
    chat, done = (call["body"] for call in node.calls)
    assert chat["presence_penalty"] == 0.5 and chat["frequency_penalty"] == -1.25
    assert done["frequency_penalty"] == 2
    assert len(node.calls) == 2  # the refused ones never reached it


REFUSED_CHAT: list[tuple[str, str, dict[str, Any]]] = [
    # a field no OpenAI endpoint has (extra_body: vLLM's top_k): was forwarded and ignored
    ("frobnicate", "unsupported_parameter", {"extra_body": {"frobnicate": 1}}),
    ("top_k", "unsupported_parameter", {"extra_body": {"top_k": 5}}),
    # OpenAI's, for models the mesh has none of: were forwarded (or withheld) and ignored
    ("reasoning_effort", "unsupported_parameter", {"reasoning_effort": "high"}),
    ("verbosity", "unsupported_parameter", {"verbosity": "low"}),
    ("web_search_options", "unsupported_parameter", {"web_search_options": {}}),
    ("service_tier", "unsupported_parameter", {"service_tier": "priority"}),
    # an image was dropped: the answer as if none had been sent
    ("messages.0.content.1", "unsupported_parameter", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}]}),
    # OpenAI refuses these (400); the mesh ignored them
    ("top_logprobs", "invalid_request", {"top_logprobs": 3}),
    ("stream_options", "invalid_request", {"stream_options": {"include_usage": True}}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("param", "code", "extra"), REFUSED_CHAT, ids=[p for p, *_ in REFUSED_CHAT]
)
async def test_what_the_mesh_would_ignore_is_refused_by_name(
    tmp_path: Path, param: str, code: str, extra: dict[str, Any]
) -> None:
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        async with sdk_client(h) as client:
            with pytest.raises(openai.BadRequestError) as bad:
                await client.chat.completions.create(**{"model": MODEL, "messages": HI, **extra})
    assert bad.value.code == code and bad.value.param == param, bad.value.message
    assert param.split(".")[0] in bad.value.message
    assert bad.value.request_id is not None
    assert not node.calls


async def test_a_completions_field_of_chat_only_is_refused(tmp_path: Path) -> None:
    """``max_completion_tokens`` is chat's: on /v1/completions it was forwarded and ignored
    (the answer ran to the node's default length)."""
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with sdk_client(h) as client:
            with pytest.raises(openai.BadRequestError) as bad:
                await client.completions.create(
                    model=MODEL, prompt="def", extra_body={"max_completion_tokens": 3}
                )
    assert bad.value.code == "unsupported_parameter"
    assert bad.value.param == "max_completion_tokens"


async def test_the_off_values_and_harmless_hints_still_pass(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        async with sdk_client(h) as client:
            await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                service_tier="auto",
                parallel_tool_calls=False,
                reasoning_effort=None,
                logprobs=False,
                top_logprobs=0,
                user="someone",
                store=False,
                metadata={"k": "v"},
                prompt_cache_key="abc",
                stream=False,
                extra_body={"mesh_wait_s": 1, "trusted_only": False, "task_type": "chat",
                            "prompt_cache_retention": "in_memory"},
            )  # fmt: skip
            stream = await client.completions.create(
                model=MODEL, prompt="def", stream=True, stream_options={"include_usage": True}
            )
            assert [c async for c in stream]
    forwarded = node.calls[0]["body"]
    assert forwarded["service_tier"] == "auto" and "user" not in forwarded


async def test_echo_with_logprobs_is_refused_not_answered_without_the_prompts(
    tmp_path: Path,
) -> None:
    """OpenAI's ``echo`` with ``logprobs`` gives the echoed prompt's tokens their entries
    too; the nodes give the generated tokens' only, their ``text_offset`` counted from the
    start of the text, the prompt (found 2026-12-05: the offsets pointed into the prompt)."""
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        async with sdk_client(h) as client:
            with pytest.raises(openai.BadRequestError) as bad:
                await client.completions.create(model=MODEL, prompt="def", echo=True, logprobs=2)
            assert bad.value.code == "unsupported_parameter" and bad.value.param == "logprobs"
            assert not node.calls
            await client.completions.create(model=MODEL, prompt="def", echo=True)
            await client.completions.create(model=MODEL, prompt="def", logprobs=2)


async def test_a_prompt_of_token_ids_is_refused_by_name(tmp_path: Path) -> None:
    """OpenAI takes a prompt as token ids; the mesh, text only: it answered 400 naming
    ``prompt.str`` with pydantic's words (and 3 more problems), not what was unsupported."""
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with sdk_client(h) as client:
            for prompt in ([1, 2, 3], [[1, 2]]):
                with pytest.raises(openai.BadRequestError) as bad:
                    await client.completions.create(model=MODEL, prompt=prompt)
                assert bad.value.code == "unsupported_parameter" and bad.value.param == "prompt"
                assert "token ids" in bad.value.message


async def test_openais_sampling_ranges_through_the_sdk(tmp_path: Path) -> None:
    """``top_p: 0`` (the smallest nucleus: greedy) was refused 400 though OpenAI takes it
    (found 2026-12-05); each range's ends reach the node, a step past them is refused by
    name."""
    taken = {"top_p": (0, 1), "temperature": (0, 2), "seed": (-(2**63), 2**63 - 1)}
    refused = {"top_p": (-0.01, 1.01), "temperature": (-0.01, 2.01), "seed": (2**63,)}
    async with running(tmp_path) as h:
        node = await h.register("node-a")
        async with sdk_client(h) as client:
            for field, values in taken.items():
                for value in values:
                    await client.chat.completions.create(model=MODEL, messages=HI,
                                                         **{field: value})  # fmt: skip
                    assert node.calls[-1]["body"][field] == value
            await client.completions.create(model=MODEL, prompt="def", top_p=0)
            assert node.calls[-1]["body"]["top_p"] == 0
            sent = len(node.calls)
            for field, values in refused.items():
                for value in values:
                    with pytest.raises(openai.BadRequestError) as bad:
                        await client.chat.completions.create(
                            model=MODEL, messages=HI, **{field: value}
                        )
                    assert bad.value.param == field, (field, value, bad.value.message)
            assert len(node.calls) == sent  # the refused ones never reached it
