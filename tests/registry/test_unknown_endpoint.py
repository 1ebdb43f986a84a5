"""A request to a path the gateway has no endpoint for, or with the wrong method, is told
what it asked and what the gateway serves (found 2026-12-05, newuser32: the openai SDK's
``client.embeddings.create`` got 404 ``Not Found`` and a browser's GET of
``/v1/chat/completions`` 405 ``Method Not Allowed``: nothing said that the mesh has no
embeddings, nor which endpoints it does have, nor that a completion is a POST)."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from LLM_Mesh.core.schemas import MAX_MODEL_ID_CHARS
from tests.registry.helpers import running
from tests.registry.sdk_client import sdk_client


async def test_the_sdks_embeddings_call_is_told_the_mesh_has_none(tmp_path: Path) -> None:
    async with running(tmp_path) as h, sdk_client(h) as client:
        with pytest.raises(openai.NotFoundError) as refused:
            await client.embeddings.create(model="gemma-3-270m", input="hi")
    message = refused.value.message
    assert "POST /v1/embeddings" in message, message
    for served in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/openapi.json"):
        assert served in message, message
    assert refused.value.response.headers["x-should-retry"] == "false"


async def test_an_unknown_path_is_named_and_a_long_one_cut(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        short = await h.client.get("/v1/nope")
        long = await h.client.get("/v1/" + "x" * 5000)
    assert short.status_code == 404
    assert short.json()["error"]["message"].startswith("no endpoint GET /v1/nope")
    assert long.status_code == 404
    assert len(long.json()["error"]["message"]) < 600, long.json()


async def test_the_root_a_browser_opens_names_the_dashboard(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        r = await h.client.get("/")
    assert r.status_code == 404
    assert "/dashboard/" in r.json()["error"]["message"], r.json()


async def test_a_base_url_without_v1_is_told_to_add_it(tmp_path: Path) -> None:
    """``OpenAI(base_url="http://127.0.0.1:8800")``: the SDK posts ``/chat/completions``."""
    async with running(tmp_path) as h:
        client = openai.AsyncOpenAI(
            base_url="http://mesh", api_key="anonymous", max_retries=0,
            http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app)),
        )  # fmt: skip
        async with client:
            with pytest.raises(openai.NotFoundError) as refused:
                await client.chat.completions.create(
                    model="gemma-3-270m", messages=[{"role": "user", "content": "hi"}]
                )
        other = await h.client.post("/v2/chat/completions", json={})
    message = refused.value.message
    assert "no endpoint POST /chat/completions" in message, message
    assert "base_url ends in /v1" in message and "http://mesh/v1" in message, message
    assert "base_url" not in other.json()["error"]["message"]


async def test_a_get_of_a_post_endpoint_says_to_post(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        r = await h.client.get("/v1/chat/completions")
    assert r.status_code == 405
    message = r.json()["error"]["message"]
    assert "GET /v1/chat/completions" in message and "POST" in message, message
    assert r.headers["allow"] == "POST"


async def test_a_handlers_own_404_keeps_its_words(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        r = await h.client.get("/v1/models/no-such-model")
    assert r.status_code == 404
    assert "no-such-model" in r.json()["error"]["message"]


async def test_a_model_id_longer_than_any_models_is_not_said_back(tmp_path: Path) -> None:
    # found 2026-12-07, attack45: ``GET /v1/models/{id}`` with an id of 60 KB answered a
    # 404 that said the whole id back (a request's ``model`` is bounded by its schema)
    huge = "x" * 60_000
    async with running(tmp_path) as h:
        r = await h.client.get(f"/v1/models/{huge}")
        at_bound = await h.client.get(f"/v1/models/{'y' * MAX_MODEL_ID_CHARS}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    message = r.json()["error"]["message"]
    assert "x" * 100 not in message and len(r.content) < 2_000, len(r.content)
    assert "60000 characters" in message and "gemma-3-270m" in message, message
    assert at_bound.status_code == 404  # an id as long as one may be is still said back
    assert "y" * MAX_MODEL_ID_CHARS in at_bound.json()["error"]["message"]
