"""What a user of the official openai SDK expects of the gateway (found 2026-12-05).

Each failed before its fix: ``_request_id`` was ``None`` (no ``X-Request-Id``, on an
answer or a refusal after parsing),
``models.retrieve`` was a bare 404 (no ``GET /v1/models/{id}``), and ``tools``,
``response_format``, ``logit_bias``, ``best_of``, ``suffix`` were ignored: a plain-text
answer to a request for a tool call or JSON, without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.registry.helpers import running
from tests.registry.sdk_client import sdk_client as _client

HI = [{"role": "user", "content": "hi"}]
MODEL = "gemma-3-270m"


async def test_the_sdks_request_id_is_the_mesh_request_id(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=HI, max_tokens=4
            )
            resp = raw.parse()
            assert resp._request_id is not None
            assert resp._request_id == raw.headers["x-mesh-request-id"]
            async with client.chat.completions.with_streaming_response.create(
                model=MODEL, messages=HI, stream=True
            ) as streamed:
                assert streamed.headers["x-request-id"] == streamed.headers["x-mesh-request-id"]
                async for _ in await streamed.parse():
                    pass


async def test_models_retrieve(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            model = await client.models.retrieve(MODEL)
            assert model.id == MODEL and model.object == "model"
            assert (model.model_extra or {})["available"] is True
            listed = {m.id: m for m in (await client.models.list()).data}
            assert listed[MODEL] == model
            with pytest.raises(openai.NotFoundError) as nf:
                await client.models.retrieve("nope")
            assert nf.value.code == "model_not_found" and MODEL in str(nf.value.message)


UNSUPPORTED: list[tuple[str, dict[str, Any]]] = [
    ("tools", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
    ("tool_choice", {"tool_choice": "required"}),
    ("response_format", {"response_format": {"type": "json_object"}}),
    ("logit_bias", {"logit_bias": {"15": 100}}),
    ("modalities", {"modalities": ["text", "audio"]}),
]


@pytest.mark.parametrize(("param", "extra"), UNSUPPORTED, ids=[p for p, _ in UNSUPPORTED])
async def test_unsupported_chat_fields_are_refused_by_name(
    tmp_path: Path, param: str, extra: dict[str, Any]
) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            for stream in (False, True):
                with pytest.raises(openai.BadRequestError) as bad:
                    await client.chat.completions.create(
                        model=MODEL, messages=HI, stream=stream, **extra
                    )
                assert bad.value.code == "unsupported_parameter"
                assert bad.value.param == param and param in bad.value.message


async def test_unsupported_completion_fields_are_refused_by_name(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            for param, extra in (("best_of", {"best_of": 3}), ("suffix", {"suffix": "end"})):
                with pytest.raises(openai.BadRequestError) as bad:
                    await client.completions.create(model=MODEL, prompt="def", **extra)
                assert bad.value.code == "unsupported_parameter" and bad.value.param == param


async def test_the_off_values_frameworks_send_pass(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            resp = await client.chat.completions.create(
                model=MODEL,
                messages=HI,
                tools=[],
                tool_choice="none",
                response_format={"type": "text"},
                logit_bias={},
                modalities=["text"],
                presence_penalty=0.0,  # applied (tests/registry/test_openai_sdk_audit.py)
                frequency_penalty=0.0,
            )
            assert resp.choices[0].message.content == "Hello!"
            done = await client.completions.create(model=MODEL, prompt="def", best_of=1)
            assert done.choices[0].text == "def f(): pass"


async def test_a_refusal_after_parsing_carries_the_request_id(tmp_path: Path) -> None:
    """A 503 (no node serves the model) is the request the gateway logged and recorded: its
    id in ``X-Request-Id``, the SDK's ``request_id`` of the error, to quote in a report."""
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            with pytest.raises(openai.InternalServerError) as un:
                await client.chat.completions.create(model="mistral-7b", messages=HI)
            assert un.value.status_code == 503 and un.value.response.headers["retry-after"]
            assert un.value.request_id is not None
            assert un.value.request_id == un.value.response.headers["x-mesh-request-id"]


async def test_logprobs_on_a_stream_are_refused_not_dropped(tmp_path: Path) -> None:
    """Stream chunks carry ``logprobs: null``: a stream asking for them was answered
    without them, without a word (found 2026-12-05 with the real gemma-3-270m)."""
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            with pytest.raises(openai.BadRequestError) as chat:
                await client.chat.completions.create(
                    model=MODEL, messages=HI, stream=True, logprobs=True, top_logprobs=2
                )
            with pytest.raises(openai.BadRequestError) as done:
                await client.completions.create(model=MODEL, prompt="def", stream=True, logprobs=0)
            for bad in (chat.value, done.value):
                assert bad.code == "unsupported_parameter" and bad.param == "logprobs"
            streamed = await client.chat.completions.create(
                model=MODEL, messages=HI, stream=True, logprobs=False
            )
            assert [c async for c in streamed]
