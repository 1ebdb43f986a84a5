"""A node applies the request limits itself (it does not trust a gateway's checks):
each at its boundary and one past it, refused before the engine is asked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.limits import RequestLimits
from LLM_Mesh.core.schemas import ChatCompletionRequest
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.engines.sim import SimEngine
from tests.node.conftest import MODEL, NODE_URL, asgi_client, sim_engine, started_service

LIMITS = RequestLimits(max_json_depth=4, max_messages=2, max_content_chars=10, max_stop=1)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, SimEngine]]:
    settings = Settings(home=tmp_path / "home", limits=LIMITS)
    engine = sim_engine()
    svc = await started_service(settings, engine)
    async with asgi_client(svc) as c:
        yield c, engine
    await svc.stop()


def chat(messages: int = 1, content: str = "hi", **kw: Any) -> dict[str, Any]:
    msgs = [{"role": "user", "content": content} for _ in range(messages)]
    return {"model": MODEL, "messages": msgs, "max_tokens": 2, **kw}


@pytest.mark.parametrize(
    ("ok", "over", "limit"),
    [
        (chat(2), chat(3), "max_messages"),
        (chat(1, "x" * 10), chat(1, "x" * 11), "max_content_chars"),
        (chat(n=1), chat(n=2), "max_n"),
        (chat(stop="a"), chat(stop=["a", "b"]), "max_stop"),
        (chat(extra=[[[1]]]), chat(extra=[[[[1]]]]), "max_json_depth"),  # body 1, 2, 3, 4
    ],
)
async def test_node_limits_at_the_boundary_and_one_past(
    node: tuple[httpx.AsyncClient, SimEngine], ok: Any, over: Any, limit: str
) -> None:
    client, engine = node
    r = await client.post("/v1/chat/completions", content=json.dumps(over))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["limit"]) == ("limit_exceeded", limit)
    assert engine.tokens_emitted == 0  # the engine never saw it
    r = await client.post("/v1/chat/completions", content=json.dumps(ok))
    assert r.status_code == 200, r.text
    assert engine.tokens_emitted > 0


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/chat/completions",
         b'{"model": "gemma-3-270m", "messages": [{"role": "user", "content": "\\ud800"}]}'),
        ("/v1/completions", b'{"model": "gemma-3-270m", "prompt": "x\\uDC00", "stream": true}'),
    ],
)  # fmt: skip
async def test_a_lone_surrogate_escape_is_a_400_not_an_engine_failure(
    node: tuple[httpx.AsyncClient, SimEngine], path: str, raw: bytes
) -> None:
    """A lone ``\\ud800`` is no character: an engine cannot encode it for its tokenizer, and
    the node answered 500 ``engine_error``, which the gateway counts against the node (a
    client ejecting honest nodes). The node trusts no gateway's checks: refused as 400."""
    client, engine = node
    r = await client.post(path, content=raw)
    assert r.status_code == 400, r.text
    assert "surrogate" in r.json()["error"]["message"]
    assert engine.tokens_emitted == 0


async def test_a_body_nested_past_the_parser_is_a_400_not_a_500(
    node: tuple[httpx.AsyncClient, SimEngine],
) -> None:
    client, _ = node
    r = await client.post("/v1/completions", content=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["limit"] == "max_json_depth"


async def test_validation_errors_do_not_echo_the_request(tmp_path: Path) -> None:
    """The node's FastAPI validation handler quoted each error's ``input`` (the content)."""
    svc = await started_service(Settings(home=tmp_path / "home"), sim_engine())
    app = create_node_app(svc)

    @app.post("/typed")
    async def typed(body: ChatCompletionRequest) -> dict[str, str]:  # a declared body model
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=NODE_URL) as c:
        body = {"model": MODEL, "messages": [{"role": "secret-7f3a", "content": "secret-7f3a"}]}
        r = await c.post("/typed", json=body)
    await svc.stop()
    assert r.status_code == 400, r.text
    assert "secret-7f3a" not in r.text
    assert "Input should be" in r.json()["error"]["message"]
