"""The naive openai SDK loop over a stream (found 2026-12-05).

``for chunk in stream: chunk.choices[0].delta.content`` raised IndexError at the end: the
gateway ended every stream with a ``"choices": []`` chunk (``usage`` and ``mesh``) even
when the client did not ask ``stream_options.include_usage``. Unasked, ``usage`` and
``mesh`` now ride on the last chunk with choices (the one with ``finish_reason``); asked,
the stream's shape is OpenAI's (and was the gateway's): the empty-choices chunk last.
Completions streams: ``test_relay_stream_end.py`` (this harness's node answers in chat's shape).
"""

from __future__ import annotations

from pathlib import Path

from tests.registry.helpers import running
from tests.registry.sdk_client import sdk_client as _client

HI = [{"role": "user", "content": "hi"}]
MODEL = "gemma-3-270m"


async def test_the_naive_loop_reads_every_chunk_and_the_last_carries_mesh(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            stream = await client.chat.completions.create(model=MODEL, messages=HI, stream=True)
            chunks = [c async for c in stream]
            text = "".join(c.choices[0].delta.content or "" for c in chunks)  # the naive loop
            assert text == "Hello!"
            last = chunks[-1]
            assert last.choices[0].finish_reason == "stop"
            assert last.usage is not None and last.usage.completion_tokens > 0
            extra = last.model_extra or {}
            assert extra["mesh"]["receipt"]["request_id"]
            assert all("mesh" not in (c.model_extra or {}) for c in chunks[:-1])


async def test_include_usage_keeps_the_empty_choices_chunk_last(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            stream = await client.chat.completions.create(
                model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True}
            )
            chunks = [c async for c in stream]
            assert chunks[-1].choices == [] and chunks[-1].usage is not None
            assert (chunks[-1].model_extra or {})["mesh"]["receipt"]
            assert chunks[-2].choices[0].finish_reason == "stop"
            assert chunks[-2].usage is None
