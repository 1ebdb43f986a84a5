"""The official openai client, against the app over ASGITransport."""

from __future__ import annotations

import ast
from pathlib import Path

import openai
import pytest

from tests.registry.helpers import running
from tests.registry.sdk_client import sdk_client as _client


async def test_openai_non_stream_and_stream(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            resp = await client.chat.completions.create(
                model="gemma-3-270m", messages=[{"role": "user", "content": "hi"}], max_tokens=8
            )
            assert resp.choices[0].message.content == "Hello!"
            assert resp.usage is not None and resp.usage.completion_tokens == 5
            mesh = (resp.model_extra or {})["mesh"]
            assert mesh["node_id"] == "node-a" and mesh["cost"] > 0

            stream = await client.chat.completions.create(
                model="gemma-3-270m",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
            )
            text, usage, mesh = "", None, None
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                if chunk.usage is not None:
                    usage = chunk.usage
                    mesh = (chunk.model_extra or {}).get("mesh")
            assert text == "Hello!"
            assert usage is not None and usage.completion_tokens == 3
            assert mesh is not None and mesh["node_id"] == "node-a" and mesh["ttft_ms"] is not None

            models = await client.models.list()
            assert "gemma-3-270m" in [m.id for m in models.data]

            done = await client.completions.create(model="gemma-3-270m", prompt="def")
            assert done.choices[0].text == "def f(): pass"


async def test_openai_errors(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            with pytest.raises(openai.NotFoundError) as nf:
                await client.chat.completions.create(
                    model="nope", messages=[{"role": "user", "content": "hi"}]
                )
            assert nf.value.code == "model_not_found"
            with pytest.raises(openai.InternalServerError) as un:
                await client.chat.completions.create(
                    model="mistral-7b", messages=[{"role": "user", "content": "hi"}]
                )
            assert un.value.status_code == 503
            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(
                    model="gemma-3-270m", messages=[], temperature=9
                )


def _readme_stream_print() -> ast.expression:
    """The expression the README's "Any OpenAI client" example prints for each chunk."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("### Any OpenAI client", 1)[1].split("```python", 1)[1].split("```")[0]
    loop = next(n for n in ast.walk(ast.parse(block)) if isinstance(n, ast.For))
    assert isinstance(loop.target, ast.Name) and loop.target.id == "chunk"
    call = loop.body[0].value  # type: ignore[attr-defined]
    assert isinstance(call, ast.Call) and call.func.id == "print"  # type: ignore[attr-defined]
    return ast.Expression(call.args[0])


async def test_the_readme_stream_example_prints_the_text_only(tmp_path: Path) -> None:
    """Found 2026-12-02: the README's loop printed ``chunk.choices[0].delta.content``, which
    is None in the chunk that carries ``finish_reason`` (as in OpenAI's API), so the example
    ended its answer with "None"."""
    shown = compile(_readme_stream_print(), "README.md", "eval")
    async with running(tmp_path) as h:
        await h.register("node-a")
        async with _client(h) as client:
            stream = await client.chat.completions.create(
                model="gemma-3-270m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            printed = [str(eval(shown, {"chunk": chunk})) async for chunk in stream]
    assert "".join(printed) == "Hello!", printed
