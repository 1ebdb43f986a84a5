"""``llm-mesh ask --stream --fallback``: a model that is not up is answered by another of
the same specialty, streamed; a stream that breaks after part of the answer is printed
says so and prints no second answer (found 2026-12-04: ``--stream`` ignored ``--fallback``)."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from rich.console import Console

from LLM_Mesh.cli.demo import ask_once
from LLM_Mesh.errors import ModelUnavailable, UpstreamError
from tests.distributed_models_fixtures import FirstReplicaDown
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh

UNAVAILABLE = {
    "error": {
        "message": "code-llama-7b is not up",
        "type": "service_unavailable",
        "code": "model_unavailable",
        "model": "code-llama-7b",
        "available": ["gemma-3-270m"],
    }
}


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, color_system=None), buf


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def _piece(text: str) -> dict[str, Any]:
    return {"object": "text_completion", "choices": [{"index": 0, "text": text}]}


async def _ask(http: httpx.AsyncClient, console: Console, **kw: Any) -> None:
    await ask_once(
        console, REGISTRY_URL, "def f():", model="code-llama-7b", task="python", stream=True,
        chat=False, max_tokens=16, temperature=None, api_key=None, http_client=http, **kw,
    )  # fmt: skip


async def test_stream_falls_back_to_a_model_that_is_up(inprocess_mesh: InProcessMesh) -> None:
    inprocess_mesh.add_nodes("gemma-3-270m")
    console, buf = _console()
    await _ask(inprocess_mesh.client(), console, fallback=True)
    out = buf.getvalue()
    assert [c["model"] for c in inprocess_mesh.completions] == ["code-llama-7b", "gemma-3-270m"]
    assert inprocess_mesh.completions[-1]["stream"] is True
    assert out.startswith("def f():") and out.count("def f():") == 1  # the prompt echoed once
    assert "(fallback from code-llama-7b)" in out


@pytest.mark.parametrize("stream", [True, False])
async def test_without_fallback_the_error_names_the_flag(
    inprocess_mesh: InProcessMesh, stream: bool
) -> None:
    """The CLI's option is --fallback (the seed API's words, fallback=True, were shown)."""
    inprocess_mesh.add_nodes("gemma-3-270m")
    console, _ = _console()
    with pytest.raises(ModelUnavailable) as info:
        await ask_once(
            console, REGISTRY_URL, "def f():", model="code-llama-7b", task="python",
            stream=stream, chat=False, max_tokens=16, temperature=None, fallback=False,
            http_client=inprocess_mesh.client(),
        )  # fmt: skip
    assert "with --fallback gemma-3-270m answers" in info.value.message
    assert "fallback=True" not in info.value.message
    assert [c["model"] for c in inprocess_mesh.completions] == ["code-llama-7b"]


@pytest.mark.parametrize(
    "failure",
    [
        UNAVAILABLE,
        {"error": {"message": "node gone", "type": "api_error", "code": "upstream_error"}},
    ],
)
async def test_a_stream_broken_after_output_is_not_answered_twice(failure: dict[str, Any]) -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        asked.append(model)
        if model != "code-llama-7b":
            return httpx.Response(200, content=_sse(_piece("SECOND ANSWER")) + b"data: [DONE]\n\n")
        body = _sse(_piece("\n    return"), _piece(" 4"), failure)
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    console, buf = _console()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(UpstreamError) as info:
            await _ask(http, console, fallback=True)
    out = buf.getvalue()
    assert asked == ["code-llama-7b"]  # the fallback model was never asked
    assert out == "def f():\n    return 4\n" and "SECOND ANSWER" not in out
    message = info.value.message
    assert "the stream broke after part of the answer was printed" in message
    assert "incomplete" in message and failure["error"]["message"] in message


async def test_a_stream_that_fails_before_any_output_falls_back() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        asked.append(model)
        if model == "code-llama-7b":
            return httpx.Response(503, json=UNAVAILABLE)
        body = _sse(_piece("\n    pass")) + b"data: [DONE]\n\n"
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    console, buf = _console()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        await _ask(http, console, fallback=True)
    assert asked == ["code-llama-7b", "gemma-3-270m"]
    assert buf.getvalue().startswith("def f():\n    pass\n")
    assert "(fallback from code-llama-7b)" in buf.getvalue()


async def test_the_stream_begins_at_the_replica_that_answered_the_routing(
    inprocess_mesh: InProcessMesh,
) -> None:
    """``ask --stream`` without ``--model``: found 2026-12-05, the routing's refresh left
    the first replica (hung: ~9 s), then the stream began at it again (~9 s more)."""
    inprocess_mesh.add_nodes("gemma-3-270m")
    replicas = FirstReplicaDown(inprocess_mesh)
    console, buf = _console()
    await ask_once(
        console, f"{FirstReplicaDown.DOWN},{REGISTRY_URL}", "def f():", model=None,
        task="python", stream=True, chat=False, max_tokens=8, temperature=None, fallback=False,
        api_key=None, http_client=httpx.AsyncClient(transport=replicas),
    )  # fmt: skip
    assert [c["model"] for c in inprocess_mesh.completions] == ["gemma-3-270m"]
    assert replicas.asked_down == ["/mesh/models"]  # left once, by the routing's refresh
    assert buf.getvalue().startswith("def f():")


async def test_stream_fallback_when_the_replica_left_answers_last(
    inprocess_mesh: InProcessMesh,
) -> None:
    """The stream's "model not up" is kept over a 503 replica asked after it (found
    2026-12-05, once the stream began at the replica that answered the routing)."""
    inprocess_mesh.add_nodes("gemma-3-270m")
    replicas = FirstReplicaDown(inprocess_mesh)
    urls = [REGISTRY_URL, FirstReplicaDown.DOWN]  # as the stream's client then orders them
    console, buf = _console()
    await ask_once(
        console, ",".join(urls), "def f():", model="code-llama-7b", task="python",
        stream=True, chat=False, max_tokens=8, temperature=None, fallback=True, api_key=None,
        http_client=httpx.AsyncClient(transport=replicas),
    )  # fmt: skip
    assert [c["model"] for c in inprocess_mesh.completions] == ["code-llama-7b", "gemma-3-270m"]
    assert "(fallback from code-llama-7b)" in buf.getvalue()


@pytest.mark.parametrize("stream", [True, False])
async def test_a_sim_nodes_completion_is_printed_a_space_after_the_prompt(
    inprocess_mesh: InProcessMesh, stream: bool
) -> None:
    """Found 2026-12-07 (newuser45): ``ask hello`` on a SIMULATED node printed
    ``helloreturn ...``: the sim's continuation began with no space, as no model's first
    token after a word does (``node/engines/sim.py``); the prompt is echoed as written."""
    inprocess_mesh.add_nodes("gemma-3-270m")
    console, buf = _console()
    await ask_once(
        console, REGISTRY_URL, "hello", model="gemma-3-270m", task=None, stream=stream,
        chat=False, max_tokens=4, temperature=None, fallback=False,
        http_client=inprocess_mesh.client(),
    )  # fmt: skip
    out = buf.getvalue()
    assert out.startswith("hello ") and out[6:7].isalpha(), out
